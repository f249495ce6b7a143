"""Benchmark GridDriving against MiniGrid, Taxi and highway-env, measured in the same run.

- ``symbolic`` steps/s with random actions (single env through ``gym.make``, so with the same wrappers as
  the references), vs MiniGrid-Empty-8x8-v0 and Taxi-v4; medians of several interleaved repeats.
- ``rgb_array`` render time per frame at the default size, vs MiniGrid, Taxi and highway-env.
- Memory: resident set size over a long symbolic run (it must stay flat).

Run it alone on the machine (``flock /tmp/perceptgym-cpu.lock python -m perceptgym.benchmark_grid_driving``);
targets: >= 5x MiniGrid and >= 0.5x Taxi steps/s, <= 1 ms per frame.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gymnasium as gym
import numpy as np

import perceptgym.envs  # noqa: F401 - registers perceptgym/GridDriving-v0
from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.supervised.checkpoint import write_json

GRID_ID = "perceptgym/GridDriving-v0"
MINIGRID_ID = "MiniGrid-Empty-8x8-v0"
TAXI_ID = "Taxi-v4"
HIGHWAY_ID = "highway-v0"


@dataclass
class Args:
    steps: int = 100_000
    """random steps per repeat and env"""
    repeats: int = 5
    """repeats (the median is reported)"""
    frames: int = 300
    """rendered frames per repeat and env"""
    memory_steps: int = 1_000_000
    """steps of the memory run (0 skips it)"""
    digit_source: str = "mnist-train"
    """handwriting for the rendered frames; a synthetic one is used if the shipped source is not available"""
    out: Path | None = None
    """write the results as JSON here"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"steps": 1, "repeats": 1, "frames": 1, "memory_steps": 0})
        from perceptgym.envs.digits import check_source_name

        check_source_name(self.digit_source)


def synthetic_source(labels, rng):
    """Bars instead of digits, used only if the shipped MNIST source cannot be loaded (same timing)."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 5:23, 8 + int(k) : 12 + int(k)] = 255
    return images


def grid_source(name: str):
    from perceptgym.envs.digits import resolve_source

    try:
        return resolve_source(name)
    except ImportError as e:
        print(f"note: digit source {name!r} not available ({e}); rendering synthetic digits")
        return synthetic_source


def make(env_id: str, **kwargs) -> gym.Env:
    if env_id.startswith("MiniGrid"):
        import minigrid  # noqa: F401 - registers MiniGrid
    if env_id.startswith("highway"):
        import highway_env

        gym.register_envs(highway_env)
    return gym.make(env_id, **kwargs)


def steps_per_second(env: gym.Env, n: int, seed: int) -> float:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    start = time.perf_counter()
    for _ in range(n):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    return n / (time.perf_counter() - start)


def ms_per_frame(env: gym.Env, n: int, seed: int) -> float:
    """Time of ``render()`` alone; the env steps between frames so that dynamic parts change."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.render()  # the first frame builds caches (fonts, background)
    total = 0.0
    for _ in range(n):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
        start = time.perf_counter()
        env.render()
        total += time.perf_counter() - start
    return 1e3 * total / n


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(args: Args) -> dict:
    results: dict = {"args": {k: str(v) for k, v in asdict(args).items()}}

    # ---- steps/s: interleaved repeats, so background load hits every env alike ----
    step_envs = {GRID_ID: make(GRID_ID), MINIGRID_ID: make(MINIGRID_ID), TAXI_ID: make(TAXI_ID)}
    runs: dict[str, list[float]] = {k: [] for k in step_envs}
    for r in range(args.repeats):
        for env_id, env in step_envs.items():
            runs[env_id].append(steps_per_second(env, args.steps, seed=r))
    sps = {k: statistics.median(v) for k, v in runs.items()}
    results["steps_per_s"] = sps
    print(f"\nrandom-action steps/s (median of {args.repeats} x {args.steps} steps, gym.make wrappers)")
    for env_id, v in sps.items():
        print(f"  {env_id:28s} {v:10,.0f}   runs: {', '.join(f'{x:,.0f}' for x in runs[env_id])}")
    ratio_mg, ratio_taxi = sps[GRID_ID] / sps[MINIGRID_ID], sps[GRID_ID] / sps[TAXI_ID]
    results["ratios"] = {"vs_minigrid": ratio_mg, "vs_taxi": ratio_taxi}
    print(
        f"  GridDriving / MiniGrid = {ratio_mg:.1f}x (target >= 5x)   GridDriving / Taxi = {ratio_taxi:.2f}x "
        f"(target >= 0.5x)"
    )

    # ---- rgb_array frames ----
    source = grid_source(args.digit_source)
    render_envs = {
        GRID_ID: make(GRID_ID, render_mode="rgb_array", digit_source=source),
        MINIGRID_ID: make(MINIGRID_ID, render_mode="rgb_array"),
        TAXI_ID: make(TAXI_ID, render_mode="rgb_array"),
        HIGHWAY_ID: make(HIGHWAY_ID, render_mode="rgb_array"),
    }
    frame_runs: dict[str, list[float]] = {k: [] for k in render_envs}
    for r in range(args.repeats):
        for env_id, env in render_envs.items():
            n = args.frames if env_id != HIGHWAY_ID else max(20, args.frames // 10)  # highway steps are slow
            frame_runs[env_id].append(ms_per_frame(env, n, seed=r))
    ms = {k: statistics.median(v) for k, v in frame_runs.items()}
    results["ms_per_frame"] = ms
    print(f"\nrgb_array render, ms/frame (median of {args.repeats} repeats)")
    for env_id, v in ms.items():
        shape = render_envs[env_id].render().shape
        print(f"  {env_id:28s} {v:7.3f} ms   frame {shape}")
    print(f"  GridDriving target <= 1 ms: {'met' if ms[GRID_ID] <= 1.0 else 'NOT met'}")

    # ---- memory over a long run ----
    if args.memory_steps:
        env = make(GRID_ID)
        env.reset(seed=0)
        env.action_space.seed(0)
        checkpoints = {}
        for i in range(1, args.memory_steps + 1):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
            if i in (args.memory_steps // 10, args.memory_steps):
                checkpoints[i] = rss_mib()
        first, last = checkpoints.values()
        results["rss_mib"] = checkpoints
        print(
            f"\nmemory: RSS {first:.1f} MiB after {args.memory_steps // 10:,} steps, "
            f"{last:.1f} MiB after {args.memory_steps:,} (growth {last - first:+.1f} MiB)"
        )

    if args.out is not None:
        write_json(args.out, results)
    return results


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench grid-driving") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

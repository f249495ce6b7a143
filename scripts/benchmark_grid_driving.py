"""Benchmark GridDriving against MiniGrid, Taxi, highway-env and CartPoleVectorEnv, measured in the same run.

Sections (``--sections``; all by default):

- ``single``: ``symbolic`` steps/s with random actions (single env through ``gym.make``, so with the same
  wrappers as the references), vs MiniGrid-Empty-8x8-v0 and Taxi-v4; medians of several interleaved repeats.
- ``render``: ``rgb_array`` render time per frame at the default size, vs MiniGrid, Taxi and highway-env.
- ``memory``: resident set size over a long symbolic run of the single env (it must stay flat).
- ``vector``: env-steps/s of the native vector env (``gym.make_vec(..., "vector_entry_point")``) at each N in
  every obs mode, beside Gymnasium's ``CartPoleVectorEnv`` and ``gym.make_vec(..., "sync")`` of the single
  env at the same N, and the single raw env; the perceived mode reads with the shipped CNN, its reading
  cache warmed first (the steady state of a long run).
- ``sb3``: SB3 PPO env-steps/s (updates included, one torch thread) on ``dict``: the pixels-rung recipe
  (ppo.yml's GridDriving-v0 entry, 64 envs) through the native vector env and through ``DummyVecEnv``, and
  the ladder's recipe before it (8 × ``DummyVecEnv``).
- ``vector-memory``: RSS over a long run of the native vector env at N = 1024 (it must stay flat).

The MiniGrid and highway-env references need ``pip install perceptgym[bench]``; without them they are
skipped with a note. ``--short`` runs every section with tiny budgets, to check that it runs (its numbers
mean little). Run it alone on the machine (``flock /tmp/perceptgym-cpu.lock python -m
perceptgym.benchmark_grid_driving``); targets: >= 5x MiniGrid and >= 0.5x Taxi steps/s, <= 1 ms per frame,
and issue 14's for the vector env (printed beside the numbers).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gymnasium as gym
import numpy as np

import perceptgym.envs  # noqa: F401 - registers perceptgym/GridDriving-v0
from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.experiments.speed import random_steps_per_s
from perceptgym.agents.training import RUN_KEYS, load_hyperparams
from perceptgym.envs.grid_driving.constants import OBS_MODES
from perceptgym.supervised.checkpoint import write_json

GRID_ID = "perceptgym/GridDriving-v0"
MINIGRID_ID = "MiniGrid-Empty-8x8-v0"
TAXI_ID = "Taxi-v4"
HIGHWAY_ID = "highway-v0"
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
SECTIONS = ("single", "render", "memory", "vector", "sb3", "vector-memory")
# PPO recipes on dict: the pixels rung's is ppo.yml's GridDriving-v0 entry (64 native envs, one digit encoder
# for card and sign); LADDER_PPO is the ladder's recipe before it (8 envs, a SmallCnn per image), the reference.
PIXELS_PPO = {k: v for k, v in load_hyperparams("ppo", GRID_ID).items() if k not in RUN_KEYS}
LADDER_PPO = {"n_envs": 8, "n_steps": 128, "batch_size": 256, "n_epochs": 4, "ent_coef": 0.01, "gamma": 0.99}


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
    """handwriting for the rendered frames and the image modes; synthetic if the shipped source is not available"""
    sections: tuple[str, ...] = SECTIONS
    """which sections to run"""
    vector_sizes: tuple[int, ...] = (1, 64, 1024, 4096)
    """numbers of sub-envs N of the vector section"""
    vector_modes: tuple[str, ...] = OBS_MODES
    """obs modes of the vector section"""
    vector_env_steps: int = 400_000
    """env-steps per repeat and contender in the vector section (each contender steps at least 20 times)"""
    pixels_envs: int = 256
    """N of the pixels target (native vector env vs the single raw env)"""
    vector_clock: str = "wall"
    """clock of the vector section: wall (perf_counter) or cpu (this process's CPU time, process_time: on a
    shared machine it leaves out the time other processes take from it)"""
    sb3_steps: int = 40_000
    """env steps of each PPO run"""
    vector_memory_steps: int = 10_000_000
    """env-steps of the vector memory run (N = 1024)"""
    short: bool = False
    """tiny budgets everywhere: checks that every section runs (numbers mean little)"""
    out: Path | None = None
    """write the results as JSON here"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"steps": 1, "repeats": 1, "frames": 1, "memory_steps": 0})
        if self.vector_clock not in CLOCKS:
            raise ValueError(f"vector_clock must be one of {tuple(CLOCKS)}, got {self.vector_clock!r}")
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


def make(env_id: str, **kwargs) -> gym.Env | None:
    """``gym.make``; None (with a note) for a reference whose package is not installed."""
    try:
        if env_id.startswith("MiniGrid"):
            import minigrid  # noqa: F401 - registers MiniGrid
        if env_id.startswith("highway"):
            import highway_env

            gym.register_envs(highway_env)
    except ImportError as e:
        print(f"note: {env_id} skipped ({e}); pip install perceptgym[bench] to compare with it")
        return None
    return gym.make(env_id, **kwargs)


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


def check(args: Args) -> None:
    for name, values, allowed in (
        ("sections", args.sections, SECTIONS),
        ("vector_modes", args.vector_modes, OBS_MODES),
    ):
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise ValueError(f"unknown {name} {bad}: use some of {allowed}")
    if not args.vector_sizes or min(args.vector_sizes) < 1 or args.pixels_envs < 1:
        raise ValueError("vector_sizes and pixels_envs must be numbers of sub-envs >= 1")


@dataclass(frozen=True)
class Budget:
    """The budgets of a run: the arguments', or tiny ones with ``--short``."""

    steps: int
    repeats: int
    frames: int
    memory_steps: int
    vector_env_steps: int
    vector_sizes: tuple[int, ...]
    sb3_steps: int
    vector_memory_steps: int
    warm_steps: int  # steps of the perceived vector env that fill the reader's cache

    @classmethod
    def of(cls, args: Args) -> Budget:
        if not args.short:  # the arguments' own budgets
            return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}, warm_steps=1000)
        return cls(
            steps=2_000,
            repeats=2,
            frames=10,
            memory_steps=20_000,
            vector_env_steps=20_000,
            vector_sizes=tuple(n for n in args.vector_sizes if n <= 1024),
            sb3_steps=PIXELS_PPO["n_envs"] * PIXELS_PPO["n_steps"],
            vector_memory_steps=200_000,
            warm_steps=5,
        )


def section_single(budget: Budget) -> dict:
    step_envs = {k: make(k) for k in (GRID_ID, MINIGRID_ID, TAXI_ID)}
    step_envs = {k: e for k, e in step_envs.items() if e is not None}
    runs: dict[str, list[float]] = {k: [] for k in step_envs}
    for r in range(budget.repeats):  # interleaved, so background load hits every env alike
        for env_id, env in step_envs.items():
            runs[env_id].append(random_steps_per_s(env, budget.steps, seed=r))
    sps = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nrandom-action steps/s (median of {budget.repeats} x {budget.steps} steps, gym.make wrappers)")
    for env_id, v in sps.items():
        print(f"  {env_id:28s} {v:10,.0f}   runs: {', '.join(f'{x:,.0f}' for x in runs[env_id])}")
    ratios = {f"vs_{k.split('-')[0].lower()}": sps[GRID_ID] / v for k, v in sps.items() if k != GRID_ID}
    targets = {"vs_minigrid": 5.0, "vs_taxi": 0.5}
    print(
        "  "
        + "   ".join(
            f"GridDriving {k.replace('_', ' ')} = {v:.2f}x (target >= {targets[k]}x)" for k, v in ratios.items()
        )
    )
    return {"steps_per_s": sps, "ratios": ratios}


def section_render(budget: Budget, source) -> dict:
    render_envs = {
        GRID_ID: make(GRID_ID, render_mode="rgb_array", digit_source=source),
        MINIGRID_ID: make(MINIGRID_ID, render_mode="rgb_array"),
        TAXI_ID: make(TAXI_ID, render_mode="rgb_array"),
        HIGHWAY_ID: make(HIGHWAY_ID, render_mode="rgb_array"),
    }
    render_envs = {k: e for k, e in render_envs.items() if e is not None}
    frame_runs: dict[str, list[float]] = {k: [] for k in render_envs}
    for r in range(budget.repeats):
        for env_id, env in render_envs.items():
            n = budget.frames if env_id != HIGHWAY_ID else max(20, budget.frames // 10)  # highway steps are slow
            frame_runs[env_id].append(ms_per_frame(env, n, seed=r))
    ms = {k: statistics.median(v) for k, v in frame_runs.items()}
    print(f"\nrgb_array render, ms/frame (median of {budget.repeats} repeats)")
    for env_id, v in ms.items():
        shape = render_envs[env_id].render().shape
        print(f"  {env_id:28s} {v:7.3f} ms   frame {shape}")
    print(f"  GridDriving target <= 1 ms: {'met' if ms[GRID_ID] <= 1.0 else 'NOT met'}")
    return {"ms_per_frame": ms}


def section_memory(budget: Budget) -> dict:
    env = make(GRID_ID)
    env.reset(seed=0)
    env.action_space.seed(0)
    checkpoints = {}
    for i in range(1, budget.memory_steps + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
        if i in (budget.memory_steps // 10, budget.memory_steps):
            checkpoints[i] = rss_mib()
    first, last = checkpoints.values()
    print(
        f"\nmemory: RSS {first:.1f} MiB after {budget.memory_steps // 10:,} steps, "
        f"{last:.1f} MiB after {budget.memory_steps:,} (growth {last - first:+.1f} MiB)"
    )
    return {"rss_mib": checkpoints}


# ---- vector envs ---------------------------------------------------------------------------------------
def vector_rate(env, actions: np.ndarray, steps: int, clock=time.perf_counter) -> float:
    """Env-steps/s of ``steps`` batched steps with pre-drawn random actions (drawing them is not timed)."""
    n = actions.shape[1]
    start = clock()
    for i in range(steps):
        env.step(actions[i % len(actions)])
    return n * steps / (clock() - start)


def raw_rate(env: gym.Env, actions: list[int], steps: int, clock=time.perf_counter) -> float:
    """Steps/s of one raw env (no wrappers), resetting when an episode ends."""
    step, reset = env.step, env.reset
    start = clock()
    for i in range(steps):
        _, _, terminated, truncated, _ = step(actions[i % len(actions)])
        if terminated or truncated:
            reset()
    return steps / (clock() - start)


def perception_kwargs(source, reader) -> dict:
    """One source and one reader object for every env: n single envs must not each load MNIST or the CNN."""
    return {"digit_source": source} if reader is None else {"digit_source": source, "reader": reader}


def native_vec(n: int, obs_mode: str, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec(GRID_ID, num_envs=n, vectorization_mode="vector_entry_point", obs_mode=obs_mode, **kwargs)


def warm_reader(reader, source, budget: Budget) -> str:
    """Fills the reader's cache the way a long perceived run does (the steady state the target is about)."""
    envs = native_vec(1024, "perceived", **perception_kwargs(source, reader))
    envs.reset(seed=12345)
    actions = np.random.default_rng(1).integers(5, size=(16, 1024))
    for i in range(budget.warm_steps):
        envs.step(actions[i % 16])
    envs.close()
    cache = getattr(reader, "_cache", None)
    return "no cache" if cache is None else f"{len(cache):,} readings cached"


def raw_rates(modes: Sequence[str], kw: dict, budget: Budget, clock=time.perf_counter) -> dict[str, float]:
    """The single raw env (no wrappers) in every mode: the per-env rate a vector env multiplies."""
    from perceptgym.envs.grid_driving.env import GridDrivingEnv

    raws = {m: GridDrivingEnv(obs_mode=m, **kw) for m in modes}
    actions = np.random.default_rng(0).integers(5, size=4096).tolist()
    runs: dict[str, list[float]] = {m: [] for m in modes}
    for env in raws.values():
        env.reset(seed=0)
    for _ in range(budget.repeats):
        for m, env in raws.items():
            runs[m].append(raw_rate(env, actions, max(200, budget.vector_env_steps // 20), clock))
    return {m: statistics.median(v) for m, v in runs.items()}


def vector_contenders(n: int, modes: Sequence[str], everything: bool, kw: dict) -> dict[tuple[str, str], tuple]:
    """(kind, mode) -> (vector env, actions) at N = n: native (both info modes), sync and CartPole."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    rng = np.random.default_rng(n)
    actions = rng.integers(5, size=(16, n))
    out: dict[tuple[str, str], tuple] = {}
    for m in modes if everything else ("pixels",):
        out["native", m] = (native_vec(n, m, **kw), actions)
        if m == "symbolic":
            out["native info=final", m] = (native_vec(n, m, info="final", **kw), actions)
        if everything:
            out["sync", m] = (gym.make_vec(GRID_ID, num_envs=n, vectorization_mode="sync", obs_mode=m, **kw), actions)
    if everything:
        out["CartPoleVectorEnv", ""] = (CartPoleVectorEnv(num_envs=n), rng.integers(2, size=(16, n)))
    return out


def section_vector(args: Args, budget: Budget, source, reader) -> dict:
    kw = perception_kwargs(source, reader)
    modes = args.vector_modes
    print(
        f"\nvector envs, env-steps/s (median of {budget.repeats} interleaved repeats; random actions drawn before; "
        f"{args.vector_clock} clock)"
    )
    if "perceived" in modes:
        print(f"  perceived reads with the shipped CNN; warm-up: {warm_reader(reader, source, budget)}")
    clock = CLOCKS[args.vector_clock]
    out: dict = {"raw": raw_rates(modes, kw, budget, clock), "native": {}, "native info=final": {}, "sync": {}}
    out["clock"] = args.vector_clock
    out["CartPoleVectorEnv"] = {}
    print("  single raw env: " + ", ".join(f"{m} {v:,.0f}" for m, v in out["raw"].items()))
    sizes = dict.fromkeys((*budget.vector_sizes, *((args.pixels_envs,) if "pixels" in modes else ())))
    for n in sizes:
        contenders = vector_contenders(n, modes, n in budget.vector_sizes, kw)
        runs: dict[tuple[str, str], list[float]] = {key: [] for key in contenders}
        for env, actions in contenders.values():
            env.reset(seed=0)
            for i in range(3):  # first steps build caches
                env.step(actions[i])
        for _ in range(budget.repeats):  # interleaved, so background load hits every contender alike
            for (kind, mode), (env, actions) in contenders.items():
                sync = kind == "sync"  # ~20x slower: a twentieth of the steps
                steps = max(5, budget.vector_env_steps // (20 * n)) if sync else max(20, budget.vector_env_steps // n)
                runs[kind, mode].append(vector_rate(env, actions, steps, clock))
        for (kind, mode), v in runs.items():
            out[kind].setdefault(mode, {})[n] = statistics.median(v)
        print_size(out, n, list(runs))
        for env, _ in contenders.values():
            env.close()
    out["targets"] = vector_targets(out, args.pixels_envs)
    return out


def print_size(out: dict, n: int, keys: list[tuple[str, str]]) -> None:
    cart = out["CartPoleVectorEnv"].get("", {}).get(n)
    print(f"  N = {n}")
    for kind, mode in keys:
        v = out[kind][mode][n]
        extra = [f"{v / cart:6.2f}x CartPole"] if cart and kind != "CartPoleVectorEnv" else []
        if kind.startswith("native"):
            if n in out["sync"].get(mode, {}):
                extra.append(f"{v / out['sync'][mode][n]:6.1f}x sync")
            extra.append(f"{v / out['raw'][mode]:6.1f}x single raw")
        print(f"    {f'{kind} {mode}':32s} {v:>13,.0f}   {'   '.join(extra)}")


def vector_targets(out: dict, pixels_envs: int) -> dict:
    """Issue 14's targets, from this run's numbers (absent where a mode or N was not measured)."""
    native, cart, raw = out["native"], out["CartPoleVectorEnv"].get("", {}), out["raw"]
    pixels = f"pixels N={pixels_envs} >= 3x the single raw env"
    checks = {
        "symbolic N=1024 >= 2x CartPoleVectorEnv": (native.get("symbolic", {}).get(1024), cart.get(1024), 2.0),
        "symbolic info=final N=1024 >= 2x CartPoleVectorEnv": (
            out["native info=final"].get("symbolic", {}).get(1024),
            cart.get(1024),
            2.0,
        ),
        "dict N=1024 >= 500k env-steps/s": (native.get("dict", {}).get(1024), 1.0, 500_000),
        "perceived N=1024 >= 300k env-steps/s": (native.get("perceived", {}).get(1024), 1.0, 300_000),
        pixels: (native.get("pixels", {}).get(pixels_envs), raw.get("pixels"), 3.0),
    }
    print("  targets:")
    result = {}
    for name, (value, ref, factor) in checks.items():
        if value is None or ref is None:
            continue
        ratio = value / ref
        result[name] = {"measured": ratio, "met": ratio >= factor}  # a ratio, or env-steps/s (ref 1)
        shown = f"{ratio:.2f}x" if ref != 1.0 else f"{value:,.0f}"
        print(f"    {name:52s} {shown:>12}  {'met' if ratio >= factor else 'NOT met'}")
    return result


def section_sb3(budget: Budget, source) -> dict:
    """PPO on dict: env-steps/s of whole learn() calls (rollouts and updates), one torch thread."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from perceptgym.agents.registry import make_agent
    from perceptgym.agents.vec_env import make_sb3_vec_env

    kwargs = {"obs_mode": "dict", "digit_source": source}
    threads = torch.get_num_threads()
    runs = {
        "pixels recipe, native vector env": (PIXELS_PPO, True),
        "pixels recipe, DummyVecEnv": (PIXELS_PPO, False),
        "ladder recipe before, DummyVecEnv": (LADDER_PPO, False),
    }
    out = {}
    print(f"\nSB3 PPO on dict, env-steps/s including updates (one torch thread, {budget.sb3_steps:,} steps each)")
    try:
        for name, (recipe, native) in runs.items():
            n = recipe["n_envs"]
            if native:
                vec = make_sb3_vec_env(GRID_ID, n, seed=0, settings={"env_kwargs": kwargs})
            else:
                vec = make_vec_env(GRID_ID, n_envs=n, seed=0, env_kwargs=kwargs)
            agent = make_agent("ppo", vec.observation_space, vec.action_space, {**recipe, "torch_threads": 1}, seed=0)
            steps = max(budget.sb3_steps, n * recipe["n_steps"])
            start = time.perf_counter()
            agent.learn(vec, steps, seed=0)
            out[name] = steps / (time.perf_counter() - start)
            vec.close()
            print(f"  {name:40s} {out[name]:9,.0f}   ({type(vec).__name__}, {n} envs)")
    finally:
        torch.set_num_threads(threads)  # the agents set one thread; the caller's setting comes back
    native, today = out["pixels recipe, native vector env"], out["ladder recipe before, DummyVecEnv"]
    same = native / out["pixels recipe, DummyVecEnv"]
    met = "met" if native >= 3000 else "NOT met"
    print(f"  native / DummyVecEnv (same recipe) = {same:.2f}x;  native / ladder recipe before = {native / today:.2f}x")
    print(f"  target >= 3,000 steps/s through the native vector env: {met}")
    return out


def section_vector_memory(budget: Budget, source) -> dict:
    out = {}
    for mode in ("symbolic", "dict"):
        envs = native_vec(1024, mode, digit_source=source)
        envs.reset(seed=0)
        actions = np.random.default_rng(0).integers(5, size=(16, 1024))
        steps = max(10, budget.vector_memory_steps // 1024)
        marks = {}
        for i in range(1, steps + 1):
            envs.step(actions[i % 16])
            if i in (steps // 10, steps):
                marks[i * 1024] = rss_mib()
        (a, first), (b, last) = marks.items()
        out[mode] = {"rss_mib": marks, "growth_pct": 100 * (last - first) / first}
        growth = out[mode]["growth_pct"]
        print(f"\nvector memory ({mode}, N = 1024): RSS {first:.1f} MiB after {a:,} env-steps, {last:.1f} MiB")
        print(f"  after {b:,} ({growth:+.1f}%; target within +-5%: {'met' if abs(growth) <= 5 else 'NOT met'})")
        envs.close()
    return out


def run(args: Args) -> dict:
    check(args)
    budget = Budget.of(args)
    results: dict = {"args": {k: str(v) for k, v in asdict(args).items()}}
    sections = args.sections
    source = grid_source(args.digit_source) if {"render", "vector", "sb3", "vector-memory"} & set(sections) else None
    if "single" in sections:
        results["single"] = section_single(budget)
    if "render" in sections:
        results["render"] = section_render(budget, source)
    if "memory" in sections and budget.memory_steps:
        results["memory"] = section_memory(budget)
    if "vector" in sections:
        from perceptgym.envs.digits import resolve_reader

        reader = resolve_reader("cnn") if "perceived" in args.vector_modes else None
        results["vector"] = section_vector(args, budget, source, reader)
    if "sb3" in sections:
        results["sb3"] = section_sb3(budget, source)
    if "vector-memory" in sections and budget.vector_memory_steps:
        results["vector_memory"] = section_vector_memory(budget, source)
    if args.out is not None:
        write_json(args.out, results)
    return results


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench grid-driving") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

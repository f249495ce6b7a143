"""How a sweep scales: the same trials with 1 and with 2 at a time on a local Ray, and what Ray costs per trial.

One config (the agent's GridDriving recipe with a fixed budget) on ``trials`` seeds is a grid sweep of
``trials`` trials. It runs three ways, each repeat interleaved so that load from other processes hits all
alike: ``train_run`` in a loop in this process (the floor: no Ray at all), and the sweep on a local Ray of
``max(concurrency)`` CPUs with ``max_concurrent`` = each entry of ``concurrency``. Wall times include starting
and stopping Ray: that is what a user waits for. Ray's overhead per trial is (sweep at 1 at a time − loop) /
trials: start-up, the worker's imports, Tune's bookkeeping and its reports, spread over the trials.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perceptgym.agents.sweep.spec import SweepSpec

ENV = "perceptgym/GridDriving-v0"
AGENT = "q_learning"
SPEEDUP_FLOOR = 1.6
"""issue 17: 2 trials at a time must be at least this much faster than 1 on a 2-core machine"""


@dataclass(frozen=True)
class ScalingSettings:
    trials: int = 8
    n_episodes: int = 250_000
    """training episodes per trial (~15-25 s of Q-learning on GridDriving: Ray's start-up does not dominate)"""
    eval_episodes: int = 1000
    concurrency: tuple[int, ...] = (1, 2)
    repeats: int = 1


def scaling_spec(settings: ScalingSettings) -> SweepSpec:
    """The benchmark's sweep: the agent's recipe with the benchmark's budget, on seeds 0..trials-1."""
    n = settings.n_episodes
    return SweepSpec(
        envs=(ENV,),
        agents=(AGENT,),
        seeds=tuple(range(settings.trials)),
        fixed={"n_episodes": n, "eval_episodes": settings.eval_episodes, "checkpoint_every": n},
    )


def _loop(spec: SweepSpec, runs_dir: Path) -> tuple[float, list[float]]:
    """Every trial of ``spec`` as a plain ``train_run`` in this process: the total and each trial's wall time."""
    from perceptgym.agents.training import train_run

    per_trial = []
    start = time.perf_counter()
    for trial in spec.grid_trials():
        t = time.perf_counter()
        train_run(
            trial.env,
            trial.agent,
            seed=trial.seed,
            overrides=trial.overrides,
            runs_dir=runs_dir,
            progress=False,
            tensorboard=False,
        )
        per_trial.append(time.perf_counter() - t)
    return time.perf_counter() - start, per_trial


def _sweep(spec: SweepSpec, out: Path, max_concurrent: int, num_cpus: int) -> tuple[float, list[float]]:
    """The sweep on a local Ray started (and stopped) inside the timing: the total and each trial's wall time."""
    from perceptgym.agents.sweep import run_sweep

    start = time.perf_counter()
    result = run_sweep(spec, out, max_concurrent=max_concurrent, num_cpus=num_cpus, progress=False)
    wall = time.perf_counter() - start
    trials = result.results["trials"]
    bad = [t for t in trials if t["status"] != "finished"]
    if bad or len(trials) != len(spec.seeds):
        what = "; ".join(f"seed {t['seed']}: {t['status']} {t.get('error') or ''}".strip() for t in bad)
        raise RuntimeError(
            f"benchmark sweep at {max_concurrent} at a time: {len(trials) - len(bad)} of {len(spec.seeds)} trials "
            f"finished ({what})"
        )
    return wall, [t["metrics"]["time_s"] for t in trials]


def sweep_scaling(
    settings: ScalingSettings, work_dir: str | Path | None = None, log: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Times the loop and the sweep at each concurrency; returns the medians, the speed-up and the overhead."""
    spec = scaling_spec(settings)
    cpus = max(settings.concurrency)
    modes = ["loop", *(f"sweep x{c}" for c in settings.concurrency)]
    walls: dict[str, list[float]] = {m: [] for m in modes}
    trial_s: dict[str, list[float]] = {m: [] for m in modes}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for r in range(settings.repeats):
            for mode in modes:
                folder = Path(tmp) / f"{mode.replace(' ', '_')}_{r}"
                if mode == "loop":
                    wall, each = _loop(spec, folder)
                else:
                    wall, each = _sweep(spec, folder, int(mode.split("x")[1]), cpus)
                walls[mode].append(wall)
                trial_s[mode].extend(each)
                if log is not None:
                    log(f"  repeat {r + 1}/{settings.repeats} {mode:<10} {wall:7.1f} s")
    median = {m: statistics.median(v) for m, v in walls.items()}
    base = f"sweep x{settings.concurrency[0]}"
    out: dict[str, Any] = {
        "settings": asdict(settings),
        "env": ENV,
        "agent": AGENT,
        "cpu_count": os.cpu_count(),
        "ray_cpus": cpus,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "wall_s": walls,
        "median_wall_s": median,
        "median_trial_s": {m: statistics.median(v) for m, v in trial_s.items()},
        "speedup": {m: median[base] / median[m] for m in modes if m.startswith("sweep")},
        "speedup_floor": SPEEDUP_FLOOR,
    }
    if "sweep x1" in median:
        out["overhead_per_trial_s"] = (median["sweep x1"] - median["loop"]) / settings.trials
        out["overhead_fraction"] = out["overhead_per_trial_s"] / (median["loop"] / settings.trials)
    return out


def scaling_lines(result: dict[str, Any]) -> list[str]:
    """The benchmark's result as the lines the program prints."""
    s = result["settings"]
    median, trial = result["median_wall_s"], result["median_trial_s"]
    lines = [
        f"{s['trials']} trials of {result['agent']} on {result['env']}, {s['n_episodes']:,} episodes each; "
        f"local Ray of {result['ray_cpus']} CPUs on a {result['cpu_count']}-CPU machine; median of {s['repeats']} "
        f"interleaved repeat(s); load average before {result['load_before'][0]:.2f}, "
        f"after {result['load_after'][0]:.2f}",
        f"  train_run in a loop     {median['loop']:7.1f} s   ({trial['loop']:.1f} s per trial)",
    ]
    for mode, wall in median.items():
        if mode.startswith("sweep"):
            n = mode.split("x")[1]
            lines.append(
                f"  sweep, {n} at a time     {wall:7.1f} s   ({trial[mode]:.1f} s per trial in its worker; "
                f"Ray start and stop included)"
            )
    base = next(m for m in median if m.startswith("sweep"))
    for mode, speedup in result["speedup"].items():
        if mode != base:
            verdict = "meets" if speedup >= result["speedup_floor"] else "BELOW"
            lines.append(
                f"  speed-up {mode.split('x')[1]} vs {base.split('x')[1]} at a time: {speedup:.2f}x "
                f"({verdict} the floor of {result['speedup_floor']}x)"
            )
    if "overhead_per_trial_s" in result:
        lines.append(
            f"  Ray's overhead per trial (sweep 1 at a time vs the loop): {result['overhead_per_trial_s']:.2f} s "
            f"({100 * result['overhead_fraction']:.1f}% of a trial)"
        )
    return lines

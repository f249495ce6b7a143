"""Learning curves from run directories: each run's ``progress.csv``, smoothed, grouped over seeds.

Runs are grouped by ``{env}__{agent}`` (the run directory name of
:func:`perceptgym.agents.training.train_run` without seed and time); the seeds of a group are aligned by
episode, or by env step (interpolated onto a common grid).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from perceptgym.agents.experiments.files import save_figure, subplots

X_AXES = ("episode", "global_step")
METRICS = {"return": "episode return", "success": "success rate"}
"""what a curve shows -> its axis label"""


def read_progress(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(episode, global_step, return, success) columns of a run's progress.csv."""
    path = Path(run_dir) / "progress.csv"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no progress.csv (not a run directory?)")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no episodes yet")
    return (
        np.array([int(r["episode"]) for r in rows]),
        np.array([int(r["global_step"]) for r in rows]),
        np.array([float(r["return"]) for r in rows]),
        np.array([float(r["success"]) for r in rows]),
    )


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start)."""
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, values.size + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def group_curves(
    run_dirs: list[Path], x: str, smooth: int, metric: str = "return", label: str | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Label -> (x grid, the smoothed ``metric`` with one row per seed); ``label`` names one group of all runs."""
    if x not in X_AXES:
        raise ValueError(f"x={x!r}: use one of {list(X_AXES)}")
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: use one of {list(METRICS)}")
    if smooth < 1:
        raise ValueError(f"smooth={smooth} must be >= 1 (episodes)")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run_dir in map(Path, run_dirs):
        episode, step, ret, success = read_progress(run_dir)
        group = label or "__".join(run_dir.name.split("__")[:2])
        values = ret if metric == "return" else success
        groups[group].append((episode if x == "episode" else step, moving_average(values, smooth)))
    curves = {}
    for name, runs in groups.items():
        if x == "episode":
            n = min(len(r[1]) for r in runs)
            grid, ys = runs[0][0][:n], np.stack([r[1][:n] for r in runs])
        else:
            end = min(r[0][-1] for r in runs)
            grid = np.linspace(0, end, 200)
            ys = np.stack([np.interp(grid, r[0], r[1]) for r in runs])
        curves[name] = (grid, ys)
    return curves


def plot_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out: str | Path,
    x: str,
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
    metric: str = "return",
) -> Path:
    """Mean over seeds with a ± one standard deviation band, one line per group."""
    fig, ax = subplots(figsize=(7, 4.5), dpi=120)
    for label, (grid, ys) in sorted(curves.items()):
        mean, std = ys.mean(axis=0), ys.std(axis=0)
        seeds = f"{ys.shape[0]} seed" + ("s" if ys.shape[0] != 1 else "")
        ax.plot(grid, mean, label=f"{label.split('__')[-1]} ({seeds})")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("episode" if x == "episode" else "env steps")
    ax.set_ylabel(f"{METRICS[metric]} (moving average)")
    ax.set_title(title or ", ".join(sorted({label.split("__")[0] for label in curves})))
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out)

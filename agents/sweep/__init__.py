"""Sweeps: envs × agents × configs × seeds as Ray Tune trials, with honest statistics over seeds.

    from perceptgym.agents.sweep import run_sweep, resume_sweep
    results = run_sweep("agents/sweeps/frozenlake_example.yml", "reports/sweep")

Ray is imported only when a sweep runs (``perceptgym[distributed]`` installs it): importing this package,
reading sweep files and computing the statistics need numpy and PyYAML only. See :mod:`.spec` for the
sweep file, :mod:`.runner` for how trials run and resume, :mod:`.stats` for the statistics and
:mod:`.report` for what the sweep's folder holds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perceptgym.agents.sweep.report import RESULTS, Ledger, write_reports
from perceptgym.agents.sweep.spec import SweepFileError, SweepSpec, Trial, load_sweep, parse_sweep
from perceptgym.agents.sweep.stats import best_by_lower_bound, bootstrap_ci, iqm, summarize

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "sweeps"
"""the sweep files shipped with perceptgym (the tabular tuning searches, a small example)"""

EXTRA = 'pip install "perceptgym[distributed]"'
_LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's local node uses 127.0.0.1


@dataclass(frozen=True)
class SweepResult:
    out: Path
    results: dict[str, Any]
    interrupted: bool
    out_of_time: bool
    unfinished: int
    """trials not finished (interrupted, or the time budget ran out): ``resume_sweep(out)`` runs them"""

    @property
    def errors(self) -> int:
        return sum(t["status"] == "error" for t in self.results["trials"])


def _runner(local: bool):
    try:
        if local and "ray" not in sys.modules:
            # A Ray started for one sweep needs no network: keep it on 127.0.0.1 (Ray otherwise uses the
            # machine's address; it reads this variable once, when imported).
            before = os.environ.get(_LOOPBACK)
            os.environ[_LOOPBACK] = "0"
            try:
                import ray  # noqa: F401
            finally:
                if before is None:
                    os.environ.pop(_LOOPBACK, None)
                else:
                    os.environ[_LOOPBACK] = before
        from perceptgym.agents.sweep import runner
    except ImportError as e:
        raise RuntimeError(f"sweeps need Ray Tune and Optuna ({e}); install them with: {EXTRA}") from e
    return runner


def run_sweep(
    sweep: str | Path | SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    time_budget_s: float | None = None,
    tensorboard: bool = False,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Runs a sweep (a sweep file or a parsed :class:`SweepSpec`) into the new folder ``out``.

    Args:
        address: None starts a local Ray for the sweep (one trial per CPU); ``"HOST:PORT"`` or ``"auto"``
            joins an existing cluster (every node needs perceptgym installed and ``out`` on a shared path).
        num_samples: configs a search tries (overrides the file's ``num_samples``; each runs on every seed).
        max_concurrent: at most this many trials at a time (default: one per CPU of the cluster).
        time_budget_s: stop starting trials after this long; unfinished ones continue on resume.
        tensorboard: also write TensorBoard events in each run (off: ``progress.csv`` has the same numbers).
    """
    out = Path(out)
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    if (out / RESULTS).exists():
        raise ValueError(f"{out} already holds a sweep ({out / RESULTS}); continue it with --resume {out}")
    if num_samples is not None and not spec.is_search:
        raise ValueError("--num-samples needs a sweep with 'search' (a grid runs each of its configs once)")
    runner = _runner(address is None)
    settings = runner.RunSettings(address, num_samples, max_concurrent, time_budget_s, tensorboard, num_cpus, progress)
    ledger = Ledger(out, spec, _saved(settings))
    ledger.save()
    return _finish(ledger, runner.run(spec, ledger, settings, say=print if progress else _quiet))


def resume_sweep(
    out: str | Path,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    time_budget_s: float | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> SweepResult:
    """Continues the sweep in ``out``: runs only the trials not finished (or stopped, or failed) there."""
    ledger = Ledger.load(Path(out))
    runner = _runner(address is None)
    saved = ledger.settings
    settings = runner.RunSettings(
        address,
        saved.get("num_samples"),
        max_concurrent if max_concurrent is not None else saved.get("max_concurrent"),
        time_budget_s,
        bool(saved.get("tensorboard", False)),
        num_cpus,
        progress,
    )
    return _finish(ledger, runner.run(ledger.spec, ledger, settings, say=print if progress else _quiet))


def _saved(settings: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(settings).items() if k in ("num_samples", "max_concurrent", "tensorboard")}


def _quiet(_: str) -> None:
    pass


def _finish(ledger: Ledger, outcome: Any) -> SweepResult:
    results = write_reports(ledger)
    return SweepResult(ledger.out, results, outcome.interrupted, outcome.out_of_time, outcome.unfinished)


__all__ = [
    "SWEEPS_DIR",
    "Ledger",
    "SweepFileError",
    "SweepResult",
    "SweepSpec",
    "Trial",
    "best_by_lower_bound",
    "bootstrap_ci",
    "iqm",
    "load_sweep",
    "parse_sweep",
    "resume_sweep",
    "run_sweep",
    "summarize",
]

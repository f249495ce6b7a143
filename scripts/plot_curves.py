"""Learning curves from run directories: the mean over seeds with a band (± one standard deviation).

``perceptgym plot runs/CliffWalking-v1__sarsa__* runs/CliffWalking-v1__q_learning__* --out cliff.png``

Runs are grouped by ``{env}__{agent}`` (the run directory name without seed and time); each run's
``progress.csv`` return is smoothed with a moving average, then the seeds of a group are aligned by episode
(or by env step with ``--x global_step``, interpolated onto a common grid).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.experiments.curves import group_curves, plot_curves


@dataclass
class Args:
    runs: tyro.conf.Positional[tuple[str, ...]]
    """run directories (each with progress.csv)"""
    out: str = "curves.png"
    """PNG to write"""
    x: str = "episode"
    """episode | global_step"""
    smooth: int = 20
    """moving-average window in episodes"""
    metric: str = "return"
    """return | success (the episodes' success rate)"""
    title: str | None = None
    """figure title (default: the env ids)"""
    ylim: tuple[float, float] | None = None
    """y-axis range, e.g. --ylim -100 0 for CliffWalking as in Sutton & Barto's figure"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"smooth": 1})
        if self.x not in ("episode", "global_step"):
            raise ValueError(f"x={self.x!r}: use episode or global_step")
        if self.metric not in ("return", "success"):
            raise ValueError(f"metric={self.metric!r}: use return or success")
        if not self.runs:
            raise ValueError("give at least one run directory")


def run(args: Args) -> None:
    curves = group_curves([Path(r) for r in args.runs], args.x, args.smooth, args.metric)
    print(f"wrote {plot_curves(curves, args.out, args.x, args.title, args.ylim, args.metric)}")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym plot") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

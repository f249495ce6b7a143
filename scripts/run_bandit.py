"""Run bandit agents on DigitBandit over several seeds; save per-round regret, plot cumulative regret.

    perceptgym bandit --rounds 10000 --seeds 0 1 2 3 4
    perceptgym bandit --agents neural linucb uniform --permute-every 2500   # non-stationary

Writes ``runs/DigitBandit-v0__<exp_name>__<unix_time>/`` with ``config.json``, ``regret.npz`` (per agent an
``(n_seeds, rounds)`` array of per-round regret), ``regret.csv`` (the same, one column per agent and seed),
``summary.json``, ``cumulative_regret.png`` (mean with a 95% confidence band of the mean over seeds) and, when
the task is non-stationary, ``per_round_regret.png`` (moving average, one line per permutation change).
Every agent sees the same digit stream for a given seed, so the comparison is paired.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from perceptgym._cli import run_program
from perceptgym.agents.experiments.bandit_sweep import BanditSweep, run_bandits

Args = BanditSweep


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"DigitBandit, T={summary['rounds']}, seeds {summary['seeds']}")
    for col in ("agent", "regret (mean ± std)", "seconds per run"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for name, s in summary["agents"].items():
        table.add_row(
            name,
            f"{s['final_cumulative_regret_mean']:.1f} ± {s['final_cumulative_regret_std']:.1f}",
            f"{s['seconds_per_run_mean']:.1f}",
        )
    Console().print(table)


def run(args: Args) -> None:
    summary = run_bandits(args)
    print_table(summary)
    print(f"results in {summary['run_dir']}")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bandit") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

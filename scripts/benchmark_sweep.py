"""How a sweep scales on this machine: the same 8 trials with 1 and with 2 at a time on a local Ray.

    perceptgym bench sweep                    # 8 trials of ~15-25 s (Q-learning on GridDriving): ~7 min
    perceptgym bench sweep --short            # tiny trials: checks that it runs (its numbers mean little)
    perceptgym bench sweep --repeats 3 --out reports/bench_sweep.json

Prints the wall time of ``train_run`` in a loop (no Ray), of the sweep 1 at a time and 2 at a time (Ray's
start and stop included), the speed-up of 2 over 1 (issue 17's floor: 1.6x on 2 cores) and Ray's overhead
per trial. Needs the extra: pip install "perceptgym[distributed]". Run it alone on the machine
(``flock -x /tmp/perceptgym-cpu.lock perceptgym bench sweep``): the speed-up needs 2 idle cores.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.sweep.benchmark import ScalingSettings, scaling_lines, sweep_scaling
from perceptgym.supervised.checkpoint import write_json

SHORT_EPISODES = 5_000


@dataclass
class Args:
    trials: int = 8
    """trials of the sweep (seeds of one config)"""
    episodes: int = ScalingSettings.n_episodes
    """training episodes per trial (Q-learning on GridDriving; the default takes ~15-25 s on one core)"""
    concurrency: tuple[int, ...] = (1, 2)
    """trials at a time to compare (the local Ray gets the largest as its CPUs)"""
    repeats: int = 1
    """interleaved repeats of the loop and of each sweep (medians are reported)"""
    short: bool = False
    """tiny trials (5,000 episodes): checks that the benchmark runs"""
    out: Path | None = None
    """also write the numbers as JSON here"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"trials": 1, "episodes": 1, "repeats": 1})
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise ValueError(f"concurrency={list(self.concurrency)!r}: give trial counts >= 1")


def run(args: Args) -> dict:
    settings = ScalingSettings(
        trials=args.trials,
        n_episodes=SHORT_EPISODES if args.short else args.episodes,
        concurrency=tuple(args.concurrency),
        repeats=args.repeats,
    )
    result = sweep_scaling(settings, log=lambda line: print(line, flush=True))
    print("\n".join(scaling_lines(result)))
    if args.out is not None:
        write_json(args.out, result)
    return result


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench sweep") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

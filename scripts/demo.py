"""The main job: from real MNIST to a trained agent that reads handwritten digits to drive, in one command.

    perceptgym demo                 # the full demo (a few minutes, headless), report in reports/demo/
    perceptgym demo --quick         # a reduced run (under a minute): what CI runs
    perceptgym demo --render human  # then watch the trained agent drive in the pygame window
    perceptgym demo --retrain       # retrain the classifier and the GAN instead of the shipped ones

What it does: gets MNIST; loads the shipped CNN reader and GAN (or retrains them); trains Q-learning on
GridDriving in ``perceived`` mode (the trip card and the stop signs are read by the CNN) and, for comparison,
in ``symbolic`` mode (true digits), with the recipe of agents/hyperparams/q_learning.yml; evaluates both
greedily on unseen handwriting (MNIST test digits) against the exact optimum from value iteration; runs
bandit agents on DigitBandit; and writes a report folder: ``report.md`` (the numbers), ``report.json`` (the
same numbers, machine-readable), learning and regret curves, the confusion matrix, a GAN sample grid, a
recorded GridDriving episode (MP4 and GIF) and the agents' run directories (``runs/``) for ``perceptgym evaluate``
and ``perceptgym watch``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from perceptgym._cli import run_program
from perceptgym.agents.experiments.demo import DemoSettings, run_demo, watch_driving


@dataclass
class Args(DemoSettings):
    render: str = "none"
    """"human": after the report, watch the trained perceived-mode agent drive in a pygame window"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.render not in ("none", "human"):
            raise ValueError(f"render must be 'none' or 'human', got {self.render!r}")


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(args: Args) -> None:
    results = run_demo(args, log=say)
    say(f"done in {results['seconds']:.0f} s: {args.out / 'report.md'}")
    if args.render == "human":
        say("watching the perceived-mode agent drive (space pauses, right arrow steps, +/- speed, q or close quits)")
        run_dir = results["driving"]["perceived"]["run_dir"]
        watch_driving(run_dir, seed=args.seed, window_size=args.window_size, log=say)


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym demo") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the viewer's pictures in the README and the docs from the renderer, in one command.

    perceptgym pictures              # writes docs/viewer.png, docs/events.png, docs/digit_bandit.png
    perceptgym pictures --out /tmp/p # somewhere else

viewer.png is GridDriving halfway through an optimal trip on unseen handwriting read by the shipped CNN;
events.png the four events as the viewer draws them (collision, red light, wrong stop, arrival); and
digit_bandit.png DigitBandit's viewer after a wrong answer. Each frame is drawn at the size it is shown at.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perceptgym._cli import run_program
from perceptgym.agents.experiments.pictures import make_pictures


@dataclass
class Args:
    out: Path = Path("docs")
    """folder the pictures are written to"""
    reader: str = "cnn"
    """reader of the digits shown as read: cnn or mlp (shipped), or a classifier checkpoint"""


def run(args: Args) -> None:
    for path in make_pictures(args.out, reader=args.reader):
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym pictures") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

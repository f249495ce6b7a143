"""Ship a trained agent: a run's ``config.json`` and its agent, small, in a folder of its own.

    perceptgym export reports/ladder/runs/pixels-ppo/<run> --out agents/checkpoints/ppo_grid_driving_dict

SB3 agents are written for inference (the policy alone, float16 weights: about a quarter of the run's
``model.pt``, which also holds the optimiser); tabular and bandit agents as they are. The folder opens like
the run directory: ``perceptgym evaluate OUT``, ``perceptgym watch OUT``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from perceptgym._cli import run_program
from perceptgym.agents.playback import export_run


@dataclass
class Args:
    run: tyro.conf.Positional[str]
    """a run directory (or a checkpoint inside one)"""
    out: str
    """the folder to write (config.json and model.*); it must not hold a run already"""


def run(args: Args) -> None:
    path = export_run(args.run, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB) and {path.parent / 'config.json'}")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym export") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

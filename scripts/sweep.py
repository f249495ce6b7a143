"""Run a sweep: envs × agents × configs × seeds as Ray Tune trials, with statistics over seeds.

    perceptgym sweep agents/sweeps/frozenlake_example.yml --out reports/sweep   # a local Ray, one trial per CPU
    perceptgym sweep FILE --out DIR --address 10.0.0.5:6379                      # an existing Ray cluster
    perceptgym sweep --resume DIR                                # after Ctrl-C or kill: the unfinished trials

The sweep file (YAML) names ``env``/``envs``, ``agent``/``agents``, ``seeds``, a ``grid`` (setting -> values)
and/or a ``search`` (setting -> distribution, sampled by Optuna, with ASHA stopping poor trials early) and
``set`` (fixed settings); see ``perceptgym.agents.sweep.spec``. Each trial is an ordinary training run (the
agent's YAML hyperparameters, a run directory under DIR/runs/, checkpoints). DIR gets ``results.json`` (every
trial, per-config mean, IQM and 95% bootstrap CIs over seeds, the best config by its lower bound),
``results.md`` and ``results.png``. Needs the extra: pip install "perceptgym[distributed]".

Exit codes: 0 done, 1 done but some trials failed, 2 bad input, 3 time budget reached (resume to go on),
130 interrupted by Ctrl-C or SIGTERM (resume to go on).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro

from perceptgym._cli import run_program
from perceptgym.agents.sweep import SweepResult, resume_sweep, run_sweep


@dataclass
class Args:
    file: tyro.conf.Positional[Path | None] = None
    """the sweep file (YAML); not with --resume"""
    out: Path | None = None
    """the sweep's folder (new); results.json, results.md, results.png and runs/ go there"""
    resume: Path | None = None
    """continue the sweep in this folder: only its unfinished trials run"""
    address: str | None = None
    """an existing Ray cluster, HOST:PORT or auto (default: a local Ray started for this sweep)"""
    num_samples: int | None = None
    """configs a search tries, each on every seed (default: the file's num_samples, else 10)"""
    max_concurrent: int | None = None
    """at most this many trials at a time (default: one per CPU)"""
    time_budget: float | None = None
    """seconds; then running trials stop and the rest wait for --resume"""
    num_cpus: int | None = None
    """CPUs of the local Ray (default: all of this machine's); not with --address"""
    tensorboard: bool = False
    """also write TensorBoard events in each run (progress.csv has the same numbers)"""
    progress: bool = True
    """print one line per finished trial"""

    def check(self) -> None:
        if self.resume is None and (self.file is None or self.out is None):
            raise ValueError("give a sweep FILE and --out DIR (or --resume DIR)")
        if self.resume is not None and (self.file is not None or self.out is not None):
            raise ValueError("--resume DIR continues the sweep saved there: give no FILE or --out with it")
        if self.resume is not None and self.num_samples is not None:
            raise ValueError("--num-samples cannot change on --resume (the search continues as it started)")
        for name in ("num_samples", "max_concurrent", "num_cpus"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"--time-budget must be > 0 seconds, got {self.time_budget}")
        if self.address is not None and self.num_cpus is not None:
            raise ValueError("--num-cpus sizes a local Ray; a cluster at --address has its own CPUs")


def _summary(result: SweepResult) -> int:
    data = result.results
    counts: dict[str, int] = {}
    for t in data["trials"]:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    print(f"trials: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}")
    for b in data["best"]:
        low, high = b["mean_ci"]
        print(f"best {b['env']} · {b['agent']}: {b['label']}: {b['metric']} {b['mean']:.3f} [{low:.3f}, {high:.3f}]")
    print(f"results: {result.out / 'results.md'}")
    if result.interrupted or result.out_of_time:
        why = "interrupted" if result.interrupted else "time budget reached"
        print(
            f"{why}: {result.unfinished} trials still to run; continue with: perceptgym sweep --resume {result.out}",
            file=sys.stderr,
        )
        return 130 if result.interrupted else 3
    return 1 if result.errors else 0


def run(args: Args) -> int:
    args.check()
    common = {
        "address": args.address,
        "max_concurrent": args.max_concurrent,
        "time_budget_s": args.time_budget,
        "num_cpus": args.num_cpus,
        "progress": args.progress,
    }
    if args.resume is not None:
        return _summary(resume_sweep(args.resume, **common))
    assert args.file is not None and args.out is not None
    return _summary(
        run_sweep(args.file, args.out, num_samples=args.num_samples, tensorboard=args.tensorboard, **common)
    )


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym sweep") -> int:
    return run_program(
        run,
        Args,
        argv,
        prog,
        on_interrupt=lambda args: (
            f"finished trials are saved; continue with perceptgym sweep --resume {args.resume or args.out}"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())

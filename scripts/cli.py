"""The ``perceptgym`` command: one subcommand per program (``perceptgym demo``, ``perceptgym train`` ...).

Each subcommand is also a module: ``perceptgym train ARGS`` is ``python -m perceptgym.train ARGS``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: subcommand -> (module under perceptgym, one-line summary)
PROGRAMS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the whole pipeline on real MNIST: perception models, agents, evaluation, report"),
    "train": ("train", "train any agent on any env (YAML hyperparameters, run directory, resume)"),
    "evaluate": ("evaluate", "evaluate a trained run: return and success over greedy episodes"),
    "watch": ("watch", "watch a trained agent in the pygame window, or record it"),
    "export": ("export", "a trained run as a small folder to ship (SB3: the policy alone, float16 weights)"),
    "play": ("play", "drive GridDriving yourself with the keyboard"),
    "pictures": ("pictures", "regenerate the viewer pictures of the README and docs from the renderer"),
    "ladder": ("ladder", "the perception ladder: one task at every rung, symbols to pixels"),
    "bandit": ("run_bandit", "bandit agents x seeds on DigitBandit, cumulative regret"),
    "sweep": (
        "sweep",
        "envs x agents x configs x seeds as Ray Tune trials, statistics over seeds (extra: distributed)",
    ),
    "plot": ("plot_curves", "learning curves over seeds from run directories"),
    "train-classifier": ("train_classifier", "train the MNIST classifier that reads digits"),
    "evaluate-classifier": ("evaluate_classifier", "accuracy and confusion matrix of a classifier checkpoint"),
    "train-gan": ("train_gan", "train the conditional GAN that writes digits"),
    "evaluate-gan": ("evaluate_gan", "score a GAN: label accuracy and Frechet distance, sample grid"),
}

#: ``perceptgym bench NAME`` -> (module, summary)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "grid-driving": ("benchmark_grid_driving", "GridDriving steps/s and render time vs MiniGrid, Taxi, highway-env"),
    "digit-bandit": ("benchmark_digit_bandit", "DigitBandit rounds/s: raw, wrapped and vector envs"),
    "agents": ("benchmark_agents", "training-loop speed of the agents vs a random agent"),
    "classifier": ("benchmark_classifier", "classifier time to accuracy and reader throughput vs the tutorial MLP"),
    "sweep": ("benchmark_sweep", "sweep wall time with 1 and 2 trials at a time on a local Ray; Ray's cost per trial"),
}


def _usage(table: dict[str, tuple[str, str]], prog: str, extra: str = "") -> str:
    width = max(map(len, table)) + 2
    lines = [f"usage: {prog} COMMAND [ARGS...]   ({prog} COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}{summary}" for name, (_, summary) in table.items()]
    return "\n".join(lines) + extra


def _dispatch(table: dict[str, tuple[str, str]], argv: list[str], prog: str, extra: str = "") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(table, prog, extra), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "bench" and table is PROGRAMS:
        return _dispatch(BENCHMARKS, rest, f"{prog} bench")
    if name == "--version":
        from perceptgym import __version__

        print(f"perceptgym {__version__}")
        return 0
    if name not in table:
        print(
            f"{prog}: error: unknown command {name!r}; commands: {', '.join(table)}"
            + (", bench" if table is PROGRAMS else ""),
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"perceptgym.{table[name][0]}")
    return module.main(rest, prog=f"{prog} {name}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(map(len, PROGRAMS)) + 2
    bench = f"\n  {'bench NAME':<{width}}speed against the reference implementations, in the same run: " + ", ".join(
        BENCHMARKS
    )
    return _dispatch(PROGRAMS, argv, "perceptgym", bench)


if __name__ == "__main__":
    sys.exit(main())

"""Train the class-conditional DCGAN that writes digits, score it with our classifier, export the generator.

    python scripts/train_gan.py --out runs/gan                  # the shipped recipe (see below)
    python scripts/train_gan.py --out runs/gan --minutes 2      # stop cleanly after 2 minutes of optimisation
    python scripts/train_gan.py --out runs/gan --train.steps 20000   # train an existing run further
    python scripts/train_gan.py --out runs/gan --score-every 1000    # score as it trains: <out>/scores.json

Ctrl-C saves ``<out>/gan.pt`` and exits; running the same command again resumes from the saved step and ends
with the same networks as an uninterrupted run. When the ``--minutes`` budget runs out first, training stops
cleanly at a step boundary, saves, and the generator is scored and exported as it is (rerun to continue).
Sample grids (row k = digit k) go to ``<out>/samples/``; at the end the script prints the label accuracy and
the Fréchet distance (with its real-vs-real floor) and writes ``<out>/generator.pt``, the generator-only
checkpoint a digit source loads.

The shipped ``supervised/checkpoints/gan.pt`` was made with the defaults (12,000 steps of batch 32 on two
threads, under 10 minutes on this 2-core machine when nothing else runs):
``python scripts/train_gan.py --out runs/gan --export supervised/checkpoints/gan.pt``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.supervised.checkpoint import load_checkpoint, save_checkpoint, write_json
from perceptgym.supervised.data import load_mnist
from perceptgym.supervised.gan import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    GanConfig,
    GanTrainConfig,
    count_parameters,
    sample_classes,
    save_generator,
    train_gan,
)
from perceptgym.supervised.perception import SHIPPED
from perceptgym.supervised.plots import save_digit_grid


@dataclass
class Args:
    out: Path = Path("runs/gan")
    """run directory: config.json, gan.pt (full, resumable), generator.pt, samples/, grid.png, metrics.json"""
    model: GanConfig = field(default_factory=GanConfig)
    """architecture"""
    train: GanTrainConfig = field(default_factory=GanTrainConfig)
    """optimisation (train.steps is the budget in optimiser steps)"""
    minutes: float | None = None
    """also stop after this many minutes of optimisation in this call (rerun to continue)"""
    sample_every: int = 2000
    """write a sample grid every N steps (0: never)"""
    classifier: Path = SHIPPED["cnn"]
    """classifier that scores the samples (skipped if the file does not exist)"""
    export: Path | None = None
    """also copy the generator-only checkpoint here (e.g. supervised/checkpoints/gan.pt)"""
    per_class: int = 1000
    """generated digits per class for the scores"""
    score_every: int = 0
    """also score the generator every N steps, as the final score does (rows in <out>/scores.json; 0: never)"""
    n_real: int = 10_000
    """real test digits (and training digits, for the floor) the Fréchet distance is measured against"""
    data_dir: Path | None = None
    """folder with the four standard MNIST IDX files (default: the cache, fetched on first use)"""
    progress: bool = True
    """show a progress bar"""

    def __post_init__(self) -> None:
        check_settings(
            self, at_least={"sample_every": 0, "per_class": 2, "n_real": 2, "score_every": 0}, above={"minutes": 0}
        )
        if self.score_every and not self.classifier.exists():
            raise ValueError(f"score_every={self.score_every} needs a classifier, and {self.classifier} does not exist")


def run(args: Args) -> dict:
    data = load_mnist(args.data_dir)  # first: a bad --data-dir leaves nothing on disk
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "config.json", dataclasses.asdict(args))
    ck_path = args.out / "gan.pt"
    if ck_path.exists():
        print(f"resuming from {ck_path}")
    train_args = json.loads(json.dumps(dataclasses.asdict(args), default=str))
    scorer = _Scorer(args, data) if args.classifier.exists() else None
    result = train_gan(
        args.model,
        args.train,
        data.train_images,
        data.train_labels,
        checkpoint_path=ck_path,
        minutes=args.minutes,
        sample_every=args.sample_every,
        sample_dir=args.out / "samples",
        progress=args.progress,
        train_args=train_args,
        score_every=args.score_every,
        on_score=scorer.score_during_training if scorer is not None else None,
    )
    print(
        f"generator {count_parameters(result.generator) / 1e6:.2f}M parameters; step {result.step}/"
        f"{args.train.steps} after {result.seconds:.0f} s of optimisation"
    )
    if not result.finished:
        print(
            f"time budget spent: saved {ck_path}; run the same command again to continue (scoring and "
            "exporting the generator as it is now)"
        )
    metrics: dict = {"step": result.step, "train_seconds": result.seconds, "finished": result.finished}
    if scorer is not None:
        scores = scorer.score(result.generator)
        print(scores.summary())
        metrics |= {**scores.as_dict(), "classifier": str(args.classifier)}
    else:
        print(f"no classifier at {args.classifier}: scores skipped")
    images, _ = sample_classes(result.generator, 10, seed=args.train.seed)
    save_digit_grid(images, args.out / "grid.png", ncols=10)
    write_json(args.out / "metrics.json", metrics)
    full = load_checkpoint(ck_path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    save_checkpoint(
        ck_path,
        CHECKPOINT_FORMAT,
        CHECKPOINT_VERSION,
        {k: v for k, v in full.items() if k not in ("format", "version")} | {"metrics": metrics},
    )
    for path in (args.out / "generator.pt", args.export):
        if path is not None:
            save_generator(path, result.generator, metrics=metrics, train_args=train_args, step=result.step)
            print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return metrics


class _Scorer:
    """The final score's classifier and real-digit statistics, loaded once, for every score of a run."""

    def __init__(self, args: Args, data):
        from perceptgym.supervised.classifier import load_classifier
        from perceptgym.supervised.gan_scores import real_stats

        self.args, self.data = args, data
        self.classifier = load_classifier(args.classifier)
        self.stats = real_stats(self.classifier, data, args.n_real, seed=args.train.seed)
        self.path = args.out / "scores.json"
        # a resumed run keeps the rows of the steps before it (a rerun from an earlier step drops the later ones)
        self.rows = json.loads(self.path.read_text()) if args.score_every and self.path.exists() else []

    def score(self, generator):
        from perceptgym.supervised.gan_scores import score_generator

        a = self.args
        return score_generator(
            generator,
            self.classifier,
            self.data,
            per_class=a.per_class,
            n_real=a.n_real,
            seed=a.train.seed,
            stats=self.stats,
        )

    def score_during_training(self, step: int, seconds: float, generator) -> None:
        scores = self.score(generator)
        row = {"step": step, "train_seconds": seconds, **scores.as_dict()}
        self.rows = [r for r in self.rows if r["step"] < step] + [row]
        write_json(self.path, self.rows)
        from tqdm.auto import tqdm

        tqdm.write(  # under the progress bar, not through it
            f"step {step} ({seconds:.0f} s): label accuracy {scores.label_accuracy:.2%}, "
            f"Fréchet {scores.frechet:.3f} = {scores.ratio:.2f}x the floor"
        )


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym train-gan") -> int:
    return run_program(
        run,
        Args,
        argv,
        prog,
        on_interrupt=lambda args: f"training state saved in {args.out / 'gan.pt'}; run the same command to resume",
    )


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a classifier checkpoint on the official MNIST test set: accuracy, per-class accuracy, confusion.

python -m perceptgym.evaluate_classifier                      # the shipped CNN
python -m perceptgym.evaluate_classifier --checkpoint mlp     # the shipped tutorial MLP
python -m perceptgym.evaluate_classifier --checkpoint runs/classifier/model.pt --png confusion.png
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perceptgym._cli import run_program
from perceptgym.supervised.classifier import evaluate, load_classifier
from perceptgym.supervised.data import load_mnist
from perceptgym.supervised.perception import SHIPPED
from perceptgym.supervised.plots import plot_confusion


@dataclass
class Args:
    checkpoint: str = "cnn"
    """a checkpoint path, or "cnn" / "mlp" for the shipped ones"""
    png: Path | None = None
    """where to write the confusion matrix (default: next to the checkpoint, or ./<name>.confusion.png)"""
    data_dir: Path | None = None
    """folder with the four standard MNIST IDX files (default: the cache)"""


def run(args: Args) -> float:
    path = SHIPPED.get(args.checkpoint, Path(args.checkpoint))
    loaded = load_classifier(path)
    data = load_mnist(args.data_dir)
    metrics = evaluate(loaded.model, loaded.preprocess, data.test_images, data.test_labels)
    print(f"{path} ({loaded.model.cfg.arch}) on the 10,000 official MNIST test digits")
    print(metrics.table())
    png = args.png or (
        Path(f"{args.checkpoint}.confusion.png") if args.checkpoint in SHIPPED else path.with_suffix(".confusion.png")
    )
    plot_confusion(metrics.confusion, png, title=f"{path.name} on MNIST test,")
    print(f"confusion matrix: {png}")
    return metrics.accuracy


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym evaluate-classifier") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

"""Score a GAN checkpoint with our classifier and draw a 10×10 sample grid (row k = digit k).

    python scripts/evaluate_gan.py                                   # the shipped generator and classifier
    python scripts/evaluate_gan.py --gan runs/gan/gan.pt --out runs/gan/eval
    python scripts/evaluate_gan.py --benchmark 50000                 # also time the GAN digit source

Prints the label accuracy (the share of digits generated for class k that the classifier reads as k) and the
Fréchet distance between classifier features of 10k real test digits and 10k generated ones, next to the
same distance between 10k real training digits and the test digits (the floor).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.supervised.checkpoint import write_json
from perceptgym.supervised.classifier import load_classifier
from perceptgym.supervised.data import load_mnist
from perceptgym.supervised.gan import GanSource, load_generator, sample_classes
from perceptgym.supervised.gan_scores import score_generator
from perceptgym.supervised.perception import SHIPPED
from perceptgym.supervised.plots import save_digit_grid


@dataclass
class Args:
    gan: Path = SHIPPED["gan"]
    """GAN checkpoint (generator-only or full training checkpoint)"""
    classifier: Path = SHIPPED["cnn"]
    """classifier checkpoint whose features and labels score the samples"""
    out: Path = Path("runs/gan_eval")
    """folder for grid.png and scores.json"""
    per_class: int = 1000
    """generated digits per class (10 classes)"""
    n_real: int = 10_000
    """real test digits (and training digits, for the floor) the Fréchet distance is measured against"""
    seed: int = 0
    """seed for the latents and the 10k training digits of the floor"""
    data_dir: Path | None = None
    """folder with the four standard MNIST IDX files (default: the cache)"""
    benchmark: int = 0
    """also time the GAN digit source on this many digits (requests of 1,000 labels each; 0: skip)"""

    def __post_init__(self) -> None:
        # per_class >= 2: a covariance needs two samples
        check_settings(self, at_least={"per_class": 2, "n_real": 2, "seed": 0, "benchmark": 0})


def benchmark_source(path: Path, n: int, request: int = 1000) -> float:
    """Digits per second of :class:`GanSource` (one thread), asked for ``request`` random labels at a time."""
    source = GanSource(path)
    rng = np.random.default_rng(0)
    source(rng.integers(0, 10, request), rng)  # warm-up: oneDNN picks its kernels on the first call
    start = time.perf_counter()
    for _ in range(max(n // request, 1)):
        source(rng.integers(0, 10, request), rng)
    return max(n // request, 1) * request / (time.perf_counter() - start)


def run(args: Args) -> dict:
    loaded = load_generator(args.gan)
    scores = score_generator(
        loaded.generator,
        load_classifier(args.classifier),
        load_mnist(args.data_dir),
        per_class=args.per_class,
        n_real=args.n_real,
        seed=args.seed,
    )
    print(f"{args.gan} (step {loaded.step}) scored by {args.classifier}:")
    print(scores.summary())
    images, _ = sample_classes(loaded.generator, 10, seed=args.seed + 1)
    grid = save_digit_grid(images, args.out / "grid.png", ncols=10)
    result = {"gan": str(args.gan), "classifier": str(args.classifier), **scores.as_dict()}
    if args.benchmark:
        result["source_digits_per_s"] = benchmark_source(args.gan, args.benchmark)
        print(f"GanSource: {result['source_digits_per_s']:,.0f} digits/s (1 thread, requests of 1,000)")
    write_json(args.out / "scores.json", result)
    print(f"wrote {grid} and {args.out / 'scores.json'}")
    return result


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym evaluate-gan") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

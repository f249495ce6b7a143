"""Benchmark the classifiers: time to accuracy and reader throughput, with the seed's MLP as the reference.

    python scripts/benchmark_classifier.py            # ~2 minutes: cnn, cnn-fast, mlp-fast and the seed's mlp
    python scripts/benchmark_classifier.py --recipes cnn mlp --repeats 5

Times are seconds of optimisation (evaluation excluded), single torch thread. Inference is measured through
the :class:`perceptgym.supervised.perception.DigitReader` the environments use: median latency of one image and
images/s at batch 256 (medians over repeats, as this machine is shared and noisy).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.supervised.classifier import recipe, save_classifier, train
from perceptgym.supervised.data import load_mnist
from perceptgym.supervised.perception import DigitReader


@dataclass
class Args:
    recipes: list[str] = field(default_factory=lambda: ["cnn", "cnn-fast", "mlp-fast", "mlp"])
    """recipes to train and time; "mlp" is the seed's tutorial (the reference)"""
    thresholds: list[float] = field(default_factory=lambda: [0.975, 0.98, 0.99, 0.992])
    """test accuracies to time"""
    eval_every: int = 100
    """evaluate every N optimiser steps to find the crossing times"""
    repeats: int = 5
    """repeats of each inference measurement (the median is reported)"""
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self, at_least={"eval_every": 1, "repeats": 1, "seed": 0})
        for name in self.recipes:  # before the first recipe trains for minutes
            recipe(name)
        if not all(0.0 < t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds={self.thresholds}: accuracies in (0, 1]")


def time_to(history: list[dict], threshold: float) -> float | None:
    for row in history:
        if row.get("test_accuracy", 0.0) >= threshold:
            return row["seconds"]
    return None


def reader_speed(path: Path, images: np.ndarray, repeats: int) -> tuple[float, float]:
    """(median ms for one image, median images/s at batch 256)."""
    reader = DigitReader(path, threads=1)
    reader(images[:256])  # warm-up
    single, batched = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(200):
            reader(images[i : i + 1])
        single.append((time.perf_counter() - t0) / 200 * 1e3)
        t0 = time.perf_counter()
        n = 0
        for i in range(0, 8192, 256):
            reader(images[i : i + 256])
            n += 256
        batched.append(n / (time.perf_counter() - t0))
    return statistics.median(single), statistics.median(batched)


def run(args: Args) -> None:
    data = load_mnist()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            model_cfg, train_cfg = recipe(name)
            steps_per_epoch = -(-60000 // train_cfg.batch_size)
            every = max(args.eval_every, steps_per_epoch // 20)
            result = train(
                model_cfg,
                replace(train_cfg, seed=args.seed),
                data.train_images,
                data.train_labels,
                data.test_images,
                data.test_labels,
                eval_every=every,
                progress=True,
            )
            path = save_classifier(Path(tmp) / f"{name}.pt", result.model, metrics=result.metrics)
            ms1, ips = reader_speed(path, data.test_images, args.repeats)
            rows.append(
                (
                    name,
                    result.metrics.accuracy,
                    result.train_seconds,
                    [time_to(result.history, t) for t in args.thresholds],
                    ms1,
                    ips,
                )
            )

    ref = next((r for r in rows if r[0] == "mlp"), rows[-1])
    head = (
        f"{'recipe':<10} {'final acc':>9} {'train s':>8} "
        + " ".join(f"{'t→' + format(t, '.1%'):>9}" for t in args.thresholds)
        + f" {'1 img ms':>9} {'img/s@256':>10} {'speed vs ' + ref[0]:>12}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for name, acc, secs, times, ms1, ips in rows:
        cells = " ".join(f"{t:>9.1f}" if t is not None else f"{'—':>9}" for t in times)
        print(f"{name:<10} {acc:>9.2%} {secs:>8.1f} {cells} {ms1:>9.3f} {ips:>10,.0f} {ref[2] / secs:>11.2f}×")
    print(
        "\ntimes are seconds of optimisation (1 thread) until the test accuracy first reached each threshold, "
        f"evaluated every ~{args.eval_every} steps; speed = reference train time / train time"
    )


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench classifier") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

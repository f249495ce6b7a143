"""Benchmark the classifiers: time to accuracy and reader throughput, with the seed's MLP as the reference.

    python scripts/benchmark_classifier.py            # ~3 min: cnn, cnn-wide (the old cnn), cnn-fast, mlp-fast, mlp
    python scripts/benchmark_classifier.py --recipes cnn mlp --repeats 5
    python scripts/benchmark_classifier.py --recipes --readers cnn mlp   # only the shipped readers, ~1 minute

Times are seconds of optimisation (evaluation excluded), single torch thread. Inference is measured through
the :class:`perceptgym.supervised.perception.DigitReader` the environments use: median latency of one image and
images/s at batch 256 in float32 and, where the CPU runs it natively, bfloat16 (medians over repeats, as this
machine is shared and noisy), and the time per image of a cache hit (batch 8192, all cached).
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
from perceptgym.supervised.classifier import native_bfloat16, recipe, save_classifier, train
from perceptgym.supervised.data import load_mnist
from perceptgym.supervised.perception import DigitReader


@dataclass
class Args:
    recipes: list[str] = field(default_factory=lambda: ["cnn", "cnn-wide", "cnn-fast", "mlp-fast", "mlp"])
    """recipes to train and time; "mlp" is the seed's tutorial (the reference)"""
    thresholds: list[float] = field(default_factory=lambda: [0.975, 0.98, 0.99, 0.992])
    """test accuracies to time"""
    eval_every: int = 100
    """evaluate every N optimiser steps to find the crossing times"""
    repeats: int = 5
    """repeats of each inference measurement (the median is reported)"""
    seed: int = 0
    readers: list[str] = field(default_factory=list)
    """also time these readers without training: shipped names (cnn, mlp) or checkpoint paths"""

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


@dataclass
class ReaderSpeed:
    one_image_ms: float
    float32_per_s: float  # images/s at batch 256
    bfloat16_per_s: float | None  # None: no native bfloat16 on this CPU
    cache_hit_us: float  # per image, batch 8192


def reader_speed(path: str | Path, images: np.ndarray, repeats: int) -> ReaderSpeed:
    """Medians over ``repeats``, the contenders interleaved so that a busy spell hits them alike."""
    readers = {"float32": DigitReader(path, threads=1)}
    if native_bfloat16():
        readers["bfloat16"] = DigitReader(path, threads=1, precision="bfloat16")
    cached = DigitReader(path, threads=1, cache_size=len(images))
    hits = images[np.random.default_rng(0).integers(0, len(images), 8192)]
    cached(images)  # everything cached
    runs: dict[str, list[float]] = {"one": [], "hit": [], **{k: [] for k in readers}}
    for reader in readers.values():
        reader(images[:256])  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(200):
            readers["float32"](images[i : i + 1])
        runs["one"].append((time.perf_counter() - t0) / 200 * 1e3)
        for name, reader in readers.items():
            t0 = time.perf_counter()
            for i in range(0, 8192, 256):
                reader(images[i : i + 256])
            runs[name].append(8192 / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        cached(hits)
        runs["hit"].append((time.perf_counter() - t0) / len(hits) * 1e6)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return ReaderSpeed(med["one"], med["float32"], med.get("bfloat16"), med["hit"])


def reader_table(speeds: dict[str, ReaderSpeed]) -> str:
    head = f"{'reader':<10} {'1 img ms':>9} {'f32 img/s':>10} {'bf16 img/s':>11} {'hit µs/img':>11}"
    lines = [head, "-" * len(head)]
    for name, sp in speeds.items():
        bf16 = f"{sp.bfloat16_per_s:>11,.0f}" if sp.bfloat16_per_s is not None else f"{'—':>11}"
        lines.append(f"{name:<10} {sp.one_image_ms:>9.3f} {sp.float32_per_s:>10,.0f} {bf16} {sp.cache_hit_us:>11.2f}")
    return "\n".join(lines)


def run(args: Args) -> None:
    data = load_mnist()
    rows, speeds = [], {}
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
            speeds[name] = reader_speed(path, data.test_images, args.repeats)
            times = [time_to(result.history, t) for t in args.thresholds]
            rows.append((name, result.metrics.accuracy, result.train_seconds, times))
    for name in args.readers:
        speeds[f"{name} (read)" if name in args.recipes else name] = reader_speed(name, data.test_images, args.repeats)

    if rows:
        ref = next((r for r in rows if r[0] == "mlp"), rows[-1])
        head = (
            f"{'recipe':<10} {'final acc':>9} {'train s':>8} "
            + " ".join(f"{'t→' + format(t, '.1%'):>9}" for t in args.thresholds)
            + f" {'speed vs ' + ref[0]:>12}"
        )
        print("\n" + head + "\n" + "-" * len(head))
        for name, acc, secs, times in rows:
            cells = " ".join(f"{t:>9.1f}" if t is not None else f"{'—':>9}" for t in times)
            print(f"{name:<10} {acc:>9.2%} {secs:>8.1f} {cells} {ref[2] / secs:>11.2f}×")
        print(
            "\ntimes are seconds of optimisation (1 thread) until the test accuracy first reached each threshold, "
            f"evaluated every ~{args.eval_every} steps; speed = reference train time / train time"
        )
    print("\n" + reader_table(speeds))
    print(
        f"\nreaders on 1 thread, medians of {args.repeats}: one image at a time; batches of 256 in float32 and "
        "bfloat16 (same labels); cache hits"
    )


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench classifier") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

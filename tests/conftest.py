"""Shared fixtures: headless SDL, a fixed seed, and tiny stub perception models (no torch, no data); the file order."""

from __future__ import annotations

import os
from collections import Counter

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pytest

SEED = 12345


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first: pytest-xdist hands out whole files in this order (pyproject: ``--dist loadfile
    --no-loadscope-reorder``), so a long file started last does not run alone while the other workers idle.

    A file's length is the sum of its tests' ``@pytest.mark.slow(seconds=...)`` (measured, one test at a time);
    files without one follow, those with more tests first (xdist's own order). A file's tests keep their order.
    """
    seconds: Counter = Counter()
    tests = Counter(item.path for item in items)
    for item in items:
        mark = item.get_closest_marker("slow")
        seconds[item.path] += mark.kwargs.get("seconds", 0) if mark is not None else 0
    items.sort(key=lambda item: (-seconds[item.path], -tests[item.path]))  # stable: ties keep collection order


@pytest.fixture
def seed() -> int:
    return SEED


class StubSource:
    """Draws digit k as a k-pixel-wide bar plus noise: cheap, deterministic for a given Generator."""

    def __call__(self, labels, rng):
        labels = np.asarray(labels, dtype=np.int64)
        images = rng.integers(0, 30, size=(labels.size, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            images[i, 4:24, 2 : 3 + 2 * int(k)] = 255
        return images


class StubReader:
    """Reads StubSource images back (width of the bar), optionally wrong on a chosen digit."""

    def __init__(self, confuse: dict[int, int] | None = None):
        self.confuse = confuse or {}

    def __call__(self, images):
        images = np.asarray(images)
        width = (images[:, 14, :] == 255).sum(axis=1)
        labels = np.clip((width - 1) // 2, 0, 9).astype(np.int64)
        labels = np.array([self.confuse.get(int(k), int(k)) for k in labels], dtype=np.int64)
        return labels, np.full(labels.shape, 0.9, dtype=np.float32)


@pytest.fixture
def stub_source() -> StubSource:
    return StubSource()


@pytest.fixture
def stub_reader() -> StubReader:
    return StubReader()

"""Confidence intervals for numbers measured over a few seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The mean of ``values`` and its percentile-bootstrap confidence interval: ``(mean, low, high)``.

    The resamples come from a generator of their own (``seed``), so the interval is reproducible and no global
    RNG moves. One value gives the degenerate interval ``(v, v, v)``: there is no spread to resample.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_ci: no values")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"bootstrap_ci: values must be finite, got {x.tolist()}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be >= 1")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(x.mean()), float(low), float(high)

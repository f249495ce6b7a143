"""Confidence intervals for numbers measured over a few seeds (the sweep's bootstrap, as ``(mean, low, high)``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perceptgym.agents.sweep.stats import bootstrap_ci as _interval


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
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be >= 1")
    low, high = _interval(x, "mean", confidence=confidence, resamples=n_resamples, seed=seed)
    return float(x.mean()), low, high

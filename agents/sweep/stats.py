"""Aggregate statistics over seeds, as rliable recommends for few-run RL results (Agarwal et al., 2021).

Per config: the mean, the interquartile mean (the mean of the middle 50% of the runs: robust to one lucky or
unlucky seed, less noisy than the median) and percentile-bootstrap 95% confidence intervals for both, by
resampling the seeds with replacement. The best config is the one with the highest *lower* confidence bound,
so a config that was good on every seed beats one that was great on its luckiest seed only.

Implemented with numpy instead of depending on rliable: rliable 1.2.0 (the newest, 2024) ships as a source
archive only and requires arch (<8), scipy, absl-py, pandas and seaborn for what is here ~40 lines; and for
one task (a sweep aggregates one env × agent at a time) its stratified bootstrap is this plain bootstrap
over seeds. With very few seeds the percentile bootstrap undercovers (with 2 seeds its
interval is simply [min, max]): use 5 or more seeds for an interval worth quoting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean after dropping the lowest and highest 25% of ``values`` along ``axis``.

    Uses the same rule as ``scipy.stats.trim_mean(values, 0.25)`` (rliable's IQM): ``int(0.25 * n)`` values
    are cut from each end, so with fewer than 4 values it is the plain mean.
    """
    x = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: str = "mean",
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the ``statistic`` ("mean" or "iqm") of ``values``.

    Deterministic for a given ``seed`` (its own Generator; the global numpy RNG is not touched).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-d sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"bootstrap_ci: values must be finite, got {x.tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    if statistic not in ("mean", "iqm"):
        raise ValueError(f"statistic={statistic!r}: use 'mean' or 'iqm'")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(resamples, x.size))]
    stats = samples.mean(axis=1) if statistic == "mean" else iqm(samples, axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Summary:
    """One metric of one config over its seeds."""

    n: int
    mean: float
    mean_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]
    std: float
    min: float
    max: float


def summarize(values: Sequence[float], *, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Summary:
    x = np.asarray(values, dtype=np.float64)
    return Summary(
        n=int(x.size),
        mean=float(x.mean()),
        mean_ci=bootstrap_ci(x, "mean", confidence=confidence, seed=seed),
        iqm=float(iqm(x)),
        iqm_ci=bootstrap_ci(x, "iqm", confidence=confidence, seed=seed),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x.min()),
        max=float(x.max()),
    )


def summary_dict(summary: Summary) -> dict:
    d = asdict(summary)
    d["mean_ci"], d["iqm_ci"] = list(summary.mean_ci), list(summary.iqm_ci)
    return d


def best_by_lower_bound(summaries: Mapping[str, Summary]) -> str | None:
    """The key whose mean's lower confidence bound is highest (ties: the higher mean); None if empty."""
    if not summaries:
        return None
    return max(summaries, key=lambda k: (summaries[k].mean_ci[0], summaries[k].mean))

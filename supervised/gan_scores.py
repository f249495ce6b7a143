"""Scores for generated digits, computed with our own classifier (no Inception weights can be downloaded).

- **Label accuracy**: the share of digits generated for class k that the classifier reads as k.
- **Fréchet distance** (Heusel et al. 2017, the "FID" recipe) between Gaussians fitted to the classifier's
  penultimate-layer features (:meth:`perceptgym.supervised.classifier.DigitClassifier.features`) of real and generated
  digits: ``||μ1 − μ2||² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)``. Its scale depends on the classifier, so it is
  reported next to its **floor**: the same distance between real training and real test digits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import torch

from perceptgym.supervised.classifier import LoadedClassifier
from perceptgym.supervised.data import MnistData

NUM_CLASSES = 10


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a feature set (float64)."""

    mean: npt.NDArray[np.float64]
    cov: npt.NDArray[np.float64]

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"need a (n >= 2, d) feature matrix, got shape {f.shape}")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between the Gaussians ``N(a.mean, a.cov)`` and ``N(b.mean, b.cov)``.

    ``tr((Σa Σb)^½) = tr((Σa^½ Σb Σa^½)^½)``, and the matrix inside is symmetric PSD, so the trace is the sum of
    the square roots of its eigenvalues (``eigvalsh``): no general matrix square root (scipy's ``sqrtm``) is
    needed, and it stays real and stable in double precision.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {a.mean.shape} vs {b.mean.shape}")
    root_a = _sqrt_psd(a.cov)
    inner = root_a @ b.cov @ root_a
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = a.mean - b.mean
    return float(max(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt, 0.0))


@torch.inference_mode()
def classifier_outputs(
    classifier: LoadedClassifier, images: npt.NDArray[np.uint8], batch_size: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate-layer features ``(n, d)`` (float64) and predicted labels ``(n,)`` for uint8 digits."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"need (n, 28, 28) uint8 images, got {images.shape} {images.dtype}")
    model = classifier.model.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch_size):
        x = classifier.preprocess(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])))
        f = model.features(x)
        feats.append(f.double().numpy())
        preds.append(model.head(f).argmax(1).numpy())
    if not feats:
        raise ValueError("no images to score")
    return np.concatenate(feats), np.concatenate(preds)


@dataclass
class GanScores:
    label_accuracy: float
    per_class: list[float]
    frechet: float
    frechet_floor: float  # real training vs real test digits
    n_fake: int

    @property
    def ratio(self) -> float:
        return self.frechet / self.frechet_floor if self.frechet_floor > 0 else float("inf")

    def as_dict(self) -> dict[str, float | list[float]]:
        return {**asdict(self), "frechet_ratio": self.ratio}

    def summary(self) -> str:
        per_class = " ".join(f"{k}:{a:.3f}" for k, a in enumerate(self.per_class))
        return (
            f"label accuracy {self.label_accuracy:.2%} ({self.n_fake} digits; per class {per_class})\n"
            f"Fréchet distance (classifier features) {self.frechet:.3f}; real train vs real test floor "
            f"{self.frechet_floor:.3f}; ratio {self.ratio:.2f}x"
        )


def label_accuracy(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    """Overall and per-class share of ``predicted == labels``."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    hits = predicted == labels
    per_class = [float(hits[labels == k].mean()) if (labels == k).any() else float("nan") for k in range(NUM_CLASSES)]
    return float(hits.mean()), per_class


def real_stats(
    classifier: LoadedClassifier, data: MnistData, n: int = 10_000, seed: int = 0
) -> tuple[FeatureStats, FeatureStats]:
    """Feature statistics of ``n`` test digits (all 10k by default) and of ``n`` random training digits."""
    rng = np.random.default_rng(seed)
    test = (
        data.test_images
        if n >= len(data.test_images)
        else data.test_images[rng.choice(len(data.test_images), n, replace=False)]
    )
    train = data.train_images[np.sort(rng.choice(len(data.train_images), n, replace=False))]
    return FeatureStats.of(classifier_outputs(classifier, test)[0]), FeatureStats.of(
        classifier_outputs(classifier, train)[0]
    )


def score_samples(
    classifier: LoadedClassifier,
    images: npt.NDArray[np.uint8],
    labels: np.ndarray,
    test_stats: FeatureStats,
    train_stats: FeatureStats,
) -> GanScores:
    """Scores generated ``images`` made for ``labels`` against real-test statistics (and the floor)."""
    features, predicted = classifier_outputs(classifier, images)
    acc, per_class = label_accuracy(predicted, labels)
    return GanScores(
        acc,
        per_class,
        frechet_distance(test_stats, FeatureStats.of(features)),
        frechet_distance(test_stats, train_stats),
        len(images),
    )


def score_generator(
    generator,
    classifier: LoadedClassifier,
    data: MnistData,
    *,
    per_class: int = 1000,
    n_real: int = 10_000,
    seed: int = 0,
    stats: tuple[FeatureStats, FeatureStats] | None = None,
) -> GanScores:
    """Label accuracy and Fréchet distance of ``per_class`` digits of each class (10k by default).

    Args:
        generator: a :class:`perceptgym.supervised.gan.Generator` (sampled in eval mode with a seeded ``z``).
        n_real: real test digits (and training digits, for the floor) the distances are measured against.
        stats: precomputed :func:`real_stats` (test, train), to score many generators cheaply.
    """
    from perceptgym.supervised.gan import sample_classes

    images, labels = sample_classes(generator, per_class, seed=seed)
    test_stats, train_stats = stats if stats is not None else real_stats(classifier, data, n_real, seed=seed)
    return score_samples(classifier, images, labels, test_stats, train_stats)

"""Fréchet distance and label accuracy on synthetic features, and the feature extractor on a tiny classifier."""

from __future__ import annotations

import numpy as np
import pytest

from perceptgym.supervised.classifier import ClassifierConfig, DigitClassifier, LoadedClassifier, preprocess_for
from perceptgym.supervised.gan_scores import (
    FeatureStats,
    GanScores,
    classifier_outputs,
    frechet_distance,
    label_accuracy,
    score_samples,
)


@pytest.fixture
def features() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 16))


def test_distance_of_a_set_to_itself_is_zero(features):
    s = FeatureStats.of(features)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-8)


def test_shifted_and_scaled_features_are_farther(features):
    s = FeatureStats.of(features)
    shift = np.full(16, 0.5)
    assert frechet_distance(s, FeatureStats.of(features + shift)) == pytest.approx(shift @ shift, rel=1e-8)
    d_small = frechet_distance(s, FeatureStats.of(features * 1.1))
    d_large = frechet_distance(s, FeatureStats.of(features * 2.0))
    assert 0 < d_small < d_large


def test_matches_the_closed_form_for_diagonal_covariances():
    # Two Gaussians with diagonal covariances: FD = ||μa − μb||² + Σ (σa − σb)².
    a = FeatureStats(np.array([0.0, 1.0, 2.0]), np.diag([1.0, 4.0, 9.0]))
    b = FeatureStats(np.array([1.0, 1.0, 0.0]), np.diag([4.0, 1.0, 0.25]))
    expected = (1 + 0 + 4) + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 0.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-10)


def test_bad_inputs_are_clear_errors(features):
    with pytest.raises(ValueError, match="feature matrix"):
        FeatureStats.of(features[:1])
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(FeatureStats.of(features), FeatureStats.of(features[:, :8]))


def test_label_accuracy_per_class():
    labels = np.array([0, 0, 1, 1, 2, 2])
    acc, per_class = label_accuracy(np.array([0, 1, 1, 1, 2, 0]), labels)
    assert acc == pytest.approx(4 / 6)
    assert per_class[:3] == [0.5, 1.0, 0.5] and np.isnan(per_class[3])


def test_classifier_outputs_and_scores_with_a_tiny_classifier(features):
    cfg = ClassifierConfig(channels=(4, 8), hidden=12)
    clf = LoadedClassifier(DigitClassifier(cfg).eval(), preprocess_for(cfg), None, {})
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    feats, predicted = classifier_outputs(clf, images, batch_size=7)
    assert feats.shape == (30, 12) and feats.dtype == np.float64 and predicted.shape == (30,)
    stats = FeatureStats.of(feats)
    scores = score_samples(clf, images, predicted, stats, FeatureStats.of(feats[::-1] + 1.0))
    assert isinstance(scores, GanScores) and scores.label_accuracy == 1.0
    assert scores.frechet == pytest.approx(0.0, abs=1e-6) and scores.frechet_floor == pytest.approx(12.0)
    assert scores.as_dict()["frechet_ratio"] == pytest.approx(scores.ratio)
    with pytest.raises(ValueError, match="uint8"):
        classifier_outputs(clf, images.astype(np.float32))

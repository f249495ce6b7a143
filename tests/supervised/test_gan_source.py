"""The GAN digit source: the DigitSource contract on a tiny generator, and the shipped generator read back."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from perceptgym.envs.digits import DigitSource
from perceptgym.supervised.gan import GanConfig, GanSource, Generator, recalibrate_batchnorm, save_generator
from perceptgym.supervised.perception import SHIPPED, make_source


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    g = Generator(GanConfig(z_dim=8, embed_dim=4, g_channels=16, g_channels_14=8, d_channels=8))
    recalibrate_batchnorm(g, batches=2, batch_size=20)
    return save_generator(tmp_path_factory.mktemp("gan") / "tiny.pt", g)


def test_contract_shapes_and_reproducibility(tiny_checkpoint):
    source = GanSource(tiny_checkpoint)
    assert isinstance(source, DigitSource)
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    a = source(labels, np.random.default_rng(7))
    assert a.shape == (8, 28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, source(labels, np.random.default_rng(7)))
    assert not np.array_equal(a, source(labels, np.random.default_rng(8)))
    assert source(np.array([], dtype=np.int64), np.random.default_rng(0)).shape == (0, 28, 28)


def test_batch_size_does_not_change_the_digits(tiny_checkpoint):
    labels = np.arange(25) % 10
    a = GanSource(tiny_checkpoint, batch_size=1000)(labels, np.random.default_rng(3))
    b = GanSource(tiny_checkpoint, batch_size=4)(labels, np.random.default_rng(3))
    # One-ulp float differences between batch sizes may move a pixel by one grey level, never more.
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_draws_only_from_the_given_rng(tiny_checkpoint):
    source = GanSource(tiny_checkpoint)
    torch_state = torch.get_rng_state()
    rng = np.random.default_rng(0)
    source(np.zeros(5, dtype=np.int64), rng)
    assert torch.equal(torch.get_rng_state(), torch_state)
    expected = np.random.default_rng(0)
    expected.standard_normal((5, 8), dtype=np.float32)
    assert rng.bit_generator.state == expected.bit_generator.state


def test_pickles_by_path(tiny_checkpoint):
    source = GanSource(tiny_checkpoint, batch_size=64)
    blob = pickle.dumps(source)
    assert len(blob) < 1000
    clone = pickle.loads(blob)
    labels = np.arange(10)
    np.testing.assert_array_equal(clone(labels, np.random.default_rng(1)), source(labels, np.random.default_rng(1)))


def test_bad_labels_and_paths_are_clear_errors(tiny_checkpoint, tmp_path):
    source = GanSource(tiny_checkpoint)
    with pytest.raises(ValueError, match=r"in 0\.\.9"):
        source(np.array([1, 10]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not exist"):
        GanSource(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="batch_size"):
        GanSource(tiny_checkpoint, batch_size=0)


def test_make_source_resolves_gan_paths(tiny_checkpoint):
    source = make_source(f"gan:{tiny_checkpoint}")
    assert isinstance(source, GanSource) and source.path == tiny_checkpoint


@pytest.mark.slow
def test_shipped_generator_writes_digits_the_shipped_classifier_reads():
    from perceptgym.supervised.perception import load_reader

    source = make_source("gan")
    assert source.path == SHIPPED["gan"]
    labels = np.repeat(np.arange(10), 50)
    images = source(labels, np.random.default_rng(0))
    assert images.shape == (500, 28, 28) and images.dtype == np.uint8
    # MNIST-like: mostly background, some full ink.
    assert (images == 0).mean() > 0.5 and images.max() == 255
    read, _ = load_reader("cnn")(images)
    per_class = [(read[labels == k] == k).mean() for k in range(10)]
    assert min(per_class) > 0.8, per_class  # chance is 0.1
    assert (read == labels).mean() > 0.95

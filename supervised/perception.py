"""Perception models as plain numpy callables for the environments: readers and digit sources.

``load_reader("cnn")`` gives the shipped CNN as a :class:`perceptgym.envs.digits.Reader`;
``make_source("mnist-test")`` gives a :class:`perceptgym.envs.digits.DigitSource` over real MNIST digits;
``make_source("gan")`` the shipped generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from perceptgym.supervised.classifier import load_classifier
from perceptgym.supervised.data import MnistData, load_mnist
from perceptgym.supervised.global_state import torch_threads

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
SHIPPED = {"cnn": CHECKPOINT_DIR / "cnn.pt", "mlp": CHECKPOINT_DIR / "mlp.pt", "gan": CHECKPOINT_DIR / "gan.pt"}


class DigitReader:
    """A trained classifier as a :class:`perceptgym.envs.digits.Reader`: uint8 ``(n, 28, 28)`` → labels, confidences.

    It pickles as what it was made from (``"cnn"`` stays ``"cnn"``, so a pickled env finds the shipped model
    wherever perceptgym is installed), never as its weights. Envs reach it through
    :class:`perceptgym.envs.digits.LazyReader`, which also checks its output.

    Args:
        path: a classifier checkpoint, or ``"cnn"`` / ``"mlp"`` for the shipped ones.
        batch_size: images per forward pass (memory bound; results do not depend on it).
        threads: torch intra-op threads while reading (None: leave torch's setting alone).
        cache_size: remember the reading of up to this many distinct images (0: no cache). Environments show
            the same MNIST digits again and again (a GridDriving episode reads 11 of them), so a cache keyed by
            the image bytes makes perceived mode nearly as fast as symbolic mode. Readings are deterministic,
            so the cache never changes a result.
    """

    def __init__(
        self, path: str | Path = "cnn", *, batch_size: int = 1024, threads: int | None = 1, cache_size: int = 0
    ):
        self.spec = str(path)
        self.path = SHIPPED.get(self.spec, Path(path))
        loaded = load_classifier(self.path)
        self.model, self.preprocess = loaded.model, loaded.preprocess
        self.metrics = loaded.metrics
        self.arch = self.model.cfg.arch
        self.batch_size, self.threads, self.cache_size = batch_size, threads, cache_size
        self._cache: dict[bytes, tuple[int, float]] = {}

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"a reader takes (n, 28, 28) uint8 images, got shape {images.shape} {images.dtype}")
        return np.ascontiguousarray(images)

    @torch.inference_mode()
    def logits(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        images = self._check(images)
        out = np.empty((len(images), 10), dtype=np.float32)
        with torch_threads(self.threads):
            for i in range(0, len(images), self.batch_size):
                x = self.preprocess(torch.from_numpy(images[i : i + self.batch_size]))
                out[i : i + len(x)] = self.model(x).numpy()
        return out

    def probs(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Class probabilities ``(n, 10)``."""
        z = self.logits(images)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def __call__(self, images: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if self.cache_size:
            return self._cached(self._check(images))
        p = self.probs(images)
        labels = p.argmax(axis=1)
        return labels.astype(np.int64), p[np.arange(len(p)), labels].astype(np.float32)

    def _cached(self, images: np.ndarray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        keys = [img.tobytes() for img in images]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            p = self.probs(images[missing])
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            for i, row in zip(missing, p, strict=True):
                k = int(row.argmax())
                self._cache[keys[i]] = (k, float(row[k]))
        found = [self._cache[k] for k in keys]
        return (
            np.fromiter((f[0] for f in found), np.int64, len(found)),
            np.fromiter((f[1] for f in found), np.float32, len(found)),
        )

    def __getstate__(self) -> dict:  # envs holding a reader must pickle (vector envs, check_env)
        return {
            "path": self.spec,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "cache_size": self.cache_size,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(
            state["path"],
            batch_size=state["batch_size"],
            threads=state["threads"],
            cache_size=state.get("cache_size", 0),
        )

    def __repr__(self) -> str:
        return f"DigitReader({str(self.path)!r}, arch={self.arch!r})"


def load_reader(name_or_path: str | Path = "cnn", *, cache_size: int = 100_000, **kwargs) -> DigitReader:
    """The shipped reader by name (``"cnn"``, ``"mlp"``) or one from a checkpoint path, with a reading cache
    (see :class:`DigitReader`): this is what envs get for ``reader="cnn"``."""
    return DigitReader(name_or_path, cache_size=cache_size, **kwargs)


class MnistSource:
    """Real MNIST digits as a :class:`perceptgym.envs.digits.DigitSource`: each image drawn uniformly from its class.

    Args:
        split: ``"train"`` (60k) or ``"test"`` (10k, unseen by the shipped classifier).
        data: an already loaded :class:`MnistData` (default: :func:`perceptgym.supervised.data.load_mnist`).
    """

    def __init__(self, split: str = "train", data: MnistData | None = None):
        self.split = split
        images, labels = (data or load_mnist()).split(split)
        order = np.argsort(labels, kind="stable")
        self.images = images[order]
        self.counts = np.bincount(labels, minlength=10)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    @staticmethod
    def _labels(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"digit labels must be in 0..9, got {labels[(labels < 0) | (labels > 9)][:5]}")
        return labels

    def indices(self, labels: npt.NDArray[np.integer], rng: np.random.Generator) -> npt.NDArray[np.int64]:
        labels = self._labels(labels)
        return self.starts[labels] + (rng.random(labels.shape) * self.counts[labels]).astype(np.int64)

    def __call__(self, labels: npt.NDArray[np.integer], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        return self.images[self.indices(labels, rng)]

    def draw_many(self, labels: npt.NDArray[np.integer], rngs: Sequence[np.random.Generator]) -> npt.NDArray[np.uint8]:
        """``(M, L)`` labels, row i drawn with ``rngs[i]``: equal to ``self(labels[i], rngs[i])`` row by row.

        One vectorised lookup for all rows (a vector env's new episodes of one step), instead of M calls.
        """
        labels = self._labels(labels)
        u = np.stack([rng.random(labels.shape[1:]) for rng in rngs]) if len(rngs) else np.zeros(labels.shape)
        return self.images[self.starts[labels] + (u * self.counts[labels]).astype(np.int64)]

    def __getstate__(self) -> dict:  # pickle by reference to the cache, not 47 MB of pixels
        return {"split": self.split}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["split"])

    def __repr__(self) -> str:
        return f"MnistSource({self.split!r})"


def make_source(name: str):
    """A digit source by name: ``"mnist-train"``, ``"mnist-test"``, ``"gan"`` or ``"gan:<checkpoint>"``."""
    if name in ("mnist-train", "mnist-test"):
        return MnistSource(name.removeprefix("mnist-"))
    if name == "gan" or name.startswith("gan:"):
        from perceptgym.supervised.gan import GanSource

        path = name.partition(":")[2] or SHIPPED["gan"]
        return GanSource(path)
    raise ValueError(f"unknown digit source {name!r}: use 'mnist-train', 'mnist-test', 'gan' or 'gan:<path>'")

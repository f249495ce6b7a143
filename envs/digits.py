"""How perception models plug into the environments: digit sources (the world's handwriting) and readers.

Both are plain callables over numpy arrays, so ``envs`` never imports torch. The shipped models are the
defaults: a string spec such as ``"mnist-train"``, ``"gan"`` or ``"cnn"`` is resolved lazily, on first use,
through :mod:`perceptgym.supervised.perception` (the only place that knows about checkpoints).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

IMAGE_SHAPE = (28, 28)
NUM_DIGITS = 10

#: Digit-source names accepted wherever a source is expected.
SOURCE_NAMES = ("mnist-train", "mnist-test", "gan")
#: Reader names accepted wherever a reader is expected.
READER_NAMES = ("cnn", "mlp")


@runtime_checkable
class DigitSource(Protocol):
    """Gives handwritten images of the digits asked for.

    ``source(labels, rng)`` returns a ``(len(labels), 28, 28)`` uint8 array (0 = background, 255 = ink) whose
    i-th image shows digit ``labels[i]``. All randomness comes from ``rng``, so the same Generator state gives
    the same images.
    """

    def __call__(self, labels: npt.NDArray[np.integer], rng: np.random.Generator) -> npt.NDArray[np.uint8]: ...


@runtime_checkable
class Reader(Protocol):
    """Reads digits: ``reader(images)`` for ``(n, 28, 28)`` uint8 images returns ``(labels, confidences)``.

    ``labels`` is int64 of shape ``(n,)``; ``confidences`` is float32 in [0, 1] of shape ``(n,)`` (the
    probability the reader gives its own label).
    """

    def __call__(self, images: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...


def resolve_source(source: str | DigitSource) -> DigitSource:
    """Returns ``source`` itself if callable, else the named default source (loaded lazily)."""
    if callable(source):
        return source
    if not isinstance(source, str):
        raise TypeError(f"digit source must be one of {SOURCE_NAMES} or a DigitSource callable, got {source!r}")
    from perceptgym.supervised.perception import make_source  # lazy: keeps torch out of `import envs`

    return make_source(source)


def resolve_reader(reader: str | Reader) -> Reader:
    """Returns ``reader`` itself if callable, else the named shipped reader or checkpoint path (lazily)."""
    if callable(reader):
        return reader
    if not isinstance(reader, str):
        raise TypeError(f"reader must be one of {READER_NAMES}, a checkpoint path or a callable, got {reader!r}")
    from perceptgym.supervised.perception import load_reader  # lazy: keeps torch out of `import envs`

    return load_reader(reader)


def check_source_name(source: object) -> None:
    """Raises a clear ValueError for an unknown source name (call at env construction)."""
    if isinstance(source, str) and source not in SOURCE_NAMES and not source.startswith("gan:"):
        raise ValueError(
            f"unknown digit source {source!r}: use one of {SOURCE_NAMES}, 'gan:<checkpoint path>' "
            "or pass a DigitSource callable"
        )

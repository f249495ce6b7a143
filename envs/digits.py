"""How perception models plug into the environments: digit sources (the world's handwriting) and readers.

Both are plain callables over numpy arrays, so ``envs`` never imports torch. The shipped models are the
defaults: a string spec such as ``"mnist-train"``, ``"gan"`` or ``"cnn"`` is resolved lazily, on first use,
through :mod:`perceptgym.supervised.perception` (the only place that knows about checkpoints).

Every env and wrapper reaches its models through the two components below, so that there is one perception
path: :class:`LazyReader` (the reader of ``obs_mode="perceived"`` and of ``ClassifyObservation``) and
:class:`LazySource` (the digit source). Each resolves a name only when first used, calls the model once per
batch, checks what the model returned (:func:`check_reading`) and pickles a named model by its name.
"""

from __future__ import annotations

import math
import os
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

IMAGE_SHAPE = (28, 28)
NUM_DIGITS = 10

#: Digit-source names accepted wherever a source is expected.
SOURCE_NAMES = ("mnist-train", "mnist-test", "gan")
#: Reader names accepted wherever a reader is expected.
READER_NAMES = ("cnn", "mlp")


class PerceptionError(ValueError, TypeError):
    """A reader or digit source that was given wrongly, or that returned something it must not.

    A ValueError (what the perceptgym programs report as one line) and, since a wrong type is often the
    problem (``None`` instead of arrays), a TypeError too.
    """


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

    ``labels`` are integers in 0..9 of shape ``(n,)``; ``confidences`` are finite numbers in [0, 1] of shape
    ``(n,)`` (the probability the reader gives its own label). :class:`LazyReader` refuses anything else.
    """

    def __call__(self, images: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...


def resolve_source(source: str | DigitSource) -> DigitSource:
    """Returns ``source`` itself if callable, else the named default source (loaded lazily)."""
    if callable(source):
        return source
    if not isinstance(source, str):
        raise PerceptionError(f"digit source must be one of {SOURCE_NAMES} or a DigitSource callable, got {source!r}")
    from perceptgym.supervised.perception import make_source  # lazy: keeps torch out of `import envs`

    return make_source(source)


def resolve_reader(reader: str | Reader) -> Reader:
    """Returns ``reader`` itself if callable, else the named shipped reader or checkpoint path (lazily)."""
    if callable(reader):
        return reader
    if not isinstance(reader, str):
        raise PerceptionError(f"reader must be one of {READER_NAMES}, a checkpoint path or a callable, got {reader!r}")
    from perceptgym.supervised.perception import load_reader  # lazy: keeps torch out of `import envs`

    return load_reader(reader)


def check_source_name(source: object) -> None:
    """Raises a clear error for an unknown source name or a ``gan:<path>`` that names no file."""
    if not isinstance(source, str):
        return
    if source.startswith("gan:"):
        if not os.path.isfile(source[4:]):
            raise PerceptionError(f"digit source {source!r}: no GAN checkpoint file at {source[4:]!r}")
    elif source not in SOURCE_NAMES:
        raise PerceptionError(
            f"unknown digit source {source!r}: use one of {SOURCE_NAMES}, 'gan:<checkpoint path>' "
            "or pass a DigitSource callable"
        )


def describe(model: object) -> str:
    """A short name for a model spec in error messages: a name's repr, a function's name, or a short repr."""
    if isinstance(model, str):
        return repr(model)
    name = getattr(model, "__name__", None)  # functions, methods, classes
    if isinstance(name, str):
        return name
    if type(model).__repr__ is object.__repr__:  # no repr of its own: its class says more than an address
        return f"{type(model).__qualname__}()"
    text = repr(model)
    return text if len(text) <= 80 else text[:77] + "..."


def _what(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__} {describe(value)}"


_ONE_BITS = int(np.array(1.0, np.float32).view(np.uint32))


def check_reading(reading: Any, n: int, name: str = "reader") -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Checks what a reader returned for ``n`` images; returns fresh ``(int64 labels, float32 confidences)``.

    Refuses (with a :class:`PerceptionError` naming ``name``) anything but a pair of shape-``(n,)`` arrays:
    integer labels in 0..9 (float, bool, NaN or out-of-range labels are a broken reader, not something to
    round or clip) and real, finite confidences in [0, 1] (NaN or 7.0 likewise).
    """
    if not (isinstance(reading, tuple | list) and len(reading) == 2):
        raise PerceptionError(f"{name} returned {_what(reading)}; a reader returns (labels, confidences)")
    labels, conf = np.asarray(reading[0]), np.asarray(reading[1])
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise PerceptionError(
            f"{name} returned labels as {_what(labels)}; expected {n} integer labels in 0..9, shape ({n},)"
        )
    if conf.shape != (n,) or conf.dtype.kind not in "fiu":
        raise PerceptionError(
            f"{name} returned confidences as {_what(conf)}; expected {n} numbers in [0, 1], shape ({n},)"
        )
    labels, conf = labels.astype(np.int64), conf.astype(np.float32)  # fresh arrays: readers may reuse buffers
    if n == 0:
        return labels, conf
    # Fast paths, one reduction each (batched worlds read thousands of digits per step): negative labels wrap
    # round to huge unsigned values; non-negative float32s order like their bit patterns, and NaN, inf and
    # negative numbers all have bit patterns above that of 1.0.
    if labels.view(np.uint64).max() >= NUM_DIGITS:
        i = int(((labels < 0) | (labels >= NUM_DIGITS)).argmax())
        raise PerceptionError(f"{name} returned label {labels[i]} (image {i}); labels must be integers in 0..9")
    if conf.view(np.uint32).max() > _ONE_BITS:
        ok = (conf >= 0.0) & (conf <= 1.0)  # False for NaN; -0.0 is fine
        if not ok.all():
            i = int((~ok).argmax())
            raise PerceptionError(
                f"{name} returned confidence {conf[i]!s} (image {i}); confidences must be finite numbers in [0, 1]"
            )
    return labels, conf


class _LazyModel:
    """A model given as a name (loaded on first use, pickled as the name) or as a callable (used as it is)."""

    _resolve: Any  # the function that loads a named model

    def __init__(self, spec: Any, name: str):
        self.spec, self.name = spec, name
        self._model = None if isinstance(spec, str) else spec

    @property
    def loaded(self) -> bool:
        """Whether the underlying model exists yet (a named one is loaded when first used)."""
        return self._model is not None

    def _get(self) -> Any:
        if self._model is None:
            self._model = type(self)._resolve(self.spec)
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if isinstance(self.spec, str):
            state["_model"] = None  # a named model is reloaded on demand, not pickled
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({describe(self.spec)}, loaded={self.loaded})"


class LazyReader(_LazyModel):
    """The reader of an env or wrapper: resolved on first use, called once per batch, its output checked.

    ``LazyReader(spec).read(images)`` (or just ``LazyReader(spec)(images)``) takes uint8 images of shape
    ``(..., 28, 28)`` (any leading shape: one image, a batch, or a batch of batches) and returns int64 labels
    and float32 confidences of the leading shape, from **one** call to the underlying reader. ``spec`` is a
    shipped reader's name (``"cnn"``, ``"mlp"``), a checkpoint path, or any :class:`Reader` callable. A name
    or path is loaded only when the first image is read (so an env in symbolic mode never imports torch) and
    pickles as itself, not as the weights.

    Example:
        >>> import numpy as np
        >>> sevens = lambda images: (np.full(len(images), 7), np.full(len(images), 0.5))
        >>> labels, conf = LazyReader(sevens)(np.zeros((2, 3, 28, 28), np.uint8))
        >>> labels.shape, labels.dtype, conf.dtype
        ((2, 3), dtype('int64'), dtype('float32'))
    """

    _resolve = staticmethod(resolve_reader)

    def __init__(self, spec: str | os.PathLike | Reader, *, setting: str = "reader"):
        if isinstance(spec, os.PathLike):
            spec = os.fspath(spec)
        if isinstance(spec, str):
            if spec not in READER_NAMES and not os.path.isfile(spec):
                raise PerceptionError(f"{setting} {spec!r} is neither one of {READER_NAMES} nor a checkpoint file")
        elif not callable(spec):
            raise PerceptionError(
                f"{setting} must be one of {READER_NAMES}, a checkpoint path or a Reader callable, got {spec!r}"
            )
        super().__init__(spec, f"{setting} {describe(spec)}")

    @property
    def reader(self) -> Reader:
        """The underlying reader (loading a named one now)."""
        return self._get()

    def read(self, images: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Labels and confidences of ``images`` (shape ``(..., 28, 28)``), from one checked reader call."""
        images = np.asarray(images)
        shape = images.shape
        if images.dtype != np.uint8 or shape[-2:] != IMAGE_SHAPE:
            raise PerceptionError(f"{self.name}: images must be uint8 of shape (..., 28, 28), got {_what(images)}")
        lead = shape[:-2]
        n = math.prod(lead)
        if n == 0:  # nothing to read: do not bother (or load) the reader
            return np.zeros(lead, np.int64), np.zeros(lead, np.float32)
        batch = images if len(lead) == 1 else images.reshape(n, *IMAGE_SHAPE)
        labels, conf = check_reading(self._get()(batch), n, self.name)
        if len(lead) != 1:
            labels, conf = labels.reshape(lead), conf.reshape(lead)
        return labels, conf

    __call__ = read  # a LazyReader is itself a Reader


class LazySource(_LazyModel):
    """The digit source of an env: resolved on first use, its images checked, pickled by name.

    ``LazySource(spec)(labels, rng)`` returns the ``(*labels.shape, 28, 28)`` uint8 images the source draws
    with ``rng``. ``spec`` is a name in :data:`SOURCE_NAMES`, ``"gan:<checkpoint path>"`` or any
    :class:`DigitSource` callable.
    """

    _resolve = staticmethod(resolve_source)

    def __init__(self, spec: str | DigitSource, *, setting: str = "digit_source"):
        check_source_name(spec)
        if not (callable(spec) or isinstance(spec, str)):
            raise PerceptionError(
                f"{setting} must be one of {SOURCE_NAMES}, 'gan:<path>' or a DigitSource callable, got {spec!r}"
            )
        super().__init__(spec, f"digit source {describe(spec)}")

    @property
    def source(self) -> DigitSource:
        """The underlying source (loading a named one now)."""
        return self._get()

    def __call__(self, labels: npt.NDArray[np.integer], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        labels = np.asarray(labels)
        out = self._get()(labels, rng)
        images = None if out is None else np.asarray(out)
        expected = (*labels.shape, *IMAGE_SHAPE)
        if images is None or images.shape != expected or images.dtype != np.uint8:
            raise PerceptionError(f"{self.name} returned {_what(out)}; expected uint8 of shape {expected}")
        return images


class DigitModels:
    """Mixin of the envs: the ``source`` and ``reader`` properties over ``_source`` and ``_reading``."""

    _source: LazySource
    _reading: LazyReader

    @property
    def source(self) -> DigitSource:
        """The digit source (a named one is loaded now)."""
        return self._source.source

    @property
    def reader(self) -> Reader:
        """The reader of the perceived modes (a named one is loaded now)."""
        return self._reading.reader

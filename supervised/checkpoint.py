"""The one checkpoint envelope: every file perceptgym writes, how it is written and how it is read back.

* **Written atomically** (:func:`atomic_write`): into a temporary file in the target's folder, flushed and
  fsynced, then ``os.replace``-d over the target. A failure (full disk, ``ulimit -f``) or Ctrl-C mid-write leaves
  the previous file as it was and no temporary file behind.
* **Versioned**: every checkpoint holds ``format`` (what kind of file), ``version`` (an int) and ``versions`` (the
  perceptgym, Python and library versions that wrote it). A loader names the format it expects and the newest
  version it understands (:func:`check_header`); older versions load, newer ones and other formats are refused.
* **Nothing read can run code**: torch files are read with ``torch.load(weights_only=True)``, ``.npz`` files with
  ``allow_pickle=False``, JSON with :mod:`json`. Floating-point tensors and arrays must be finite: a file holding
  NaN or Inf weights is refused, naming the file and the tensor.
* **One error type**: :class:`CheckpointError` for every refusal (``perceptgym.agents.base`` re-exports it).

Three containers: torch ``.pt`` (:func:`save_checkpoint`, a dict of tensors and JSON-like values; torch is
imported only here, so agents use the rest without importing torch), ``.npz`` (:func:`save_npz`, arrays plus a
JSON ``meta`` string) and ``.json`` (:func:`save_json`; :func:`write_json` for plain result files).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of another kind, from a newer perceptgym, or holds NaN/Inf weights."""


# ---- writing ----------------------------------------------------------------------------------------------
def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write(f)`` on a temporary file next to ``path``, then renames it to ``path`` (its folder is made).

    The rename is atomic on POSIX and Windows, so readers see the old file or the new one, never a mix; any
    exception (``KeyboardInterrupt`` included) removes the temporary file and leaves the old ``path`` intact.
    A failed write is raised as an ``OSError`` that names ``path`` (``KeyboardInterrupt`` as it is).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a hidden name, so that a file left by SIGKILL mid-write is never mistaken for a checkpoint
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: as they are
            raise
        message = f"{path}: could not write it ({type(e).__name__}: {e}); the previous file, if any, is unchanged"
        errno = getattr(e, "errno", None)
        raise (OSError(errno, message) if errno else OSError(message)) from e
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable (POSIX); where folders cannot be opened (Windows) there is nothing to do."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | Path, data: Any) -> Path:
    """Writes ``data`` as indented JSON, atomically (values JSON cannot hold are written as ``str``)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


# ---- the header every checkpoint carries ---------------------------------------------------------------------
@functools.cache
def _version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:  # from the installed metadata: no need to import torch to record its version
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def library_versions(libraries: Iterable[str] = ()) -> dict[str, str]:
    """``{"perceptgym": ..., "python": ..., <each library>: ...}`` (distribution names, e.g. ``stable-baselines3``)."""
    versions = {"perceptgym": _version_of("perceptgym"), "python": platform.python_version()}
    return versions | {name: _version_of(name) for name in libraries}


def header(fmt: str, version: int, libraries: Iterable[str] = ()) -> dict[str, Any]:
    """The fields that start every checkpoint: ``format``, ``version`` and ``versions``."""
    return {"format": fmt, "version": version, "versions": library_versions(libraries)}


def check_header(data: Any, path: str | Path, fmt: str, max_version: int) -> None:
    """The one version rule: ``data["format"] == fmt`` and ``1 <= data["version"] <= max_version``."""
    if not isinstance(data, Mapping) or "format" not in data or "version" not in data:
        raise CheckpointError(f"{path}: not a perceptgym {fmt} file (no format/version fields)")
    if data["format"] != fmt:
        raise CheckpointError(f"{path}: holds a {data['format']!r} checkpoint, expected {fmt!r}")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: {fmt} checkpoint has an invalid version {version!r}")
    if version > max_version:
        raise CheckpointError(
            f"{path}: {fmt} version {version} is newer than this perceptgym reads (<= {max_version}); "
            "upgrade perceptgym"
        )


def _missing(path: Path) -> CheckpointError:
    return CheckpointError(f"{path}: no such checkpoint: the file does not exist")


def _unreadable(path: Path, what: str, e: BaseException) -> CheckpointError:
    return CheckpointError(f"{path}: not a readable {what} ({type(e).__name__}: {e})")


def _not_finite(path: Path, name: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: {name!r} holds NaN or Inf values; refusing a damaged checkpoint (did training diverge?)"
    )


# ---- .npz: arrays plus a JSON meta string --------------------------------------------------------------------
def save_npz(
    path: str | Path,
    fmt: str,
    version: int,
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    libraries: Iterable[str] = ("numpy",),
    compress: bool = False,
) -> Path:
    """Writes ``arrays`` and ``{header, **meta}`` (as the JSON string array ``meta``) to ``path`` atomically."""
    if "meta" in arrays:
        raise ValueError("'meta' is reserved for the checkpoint's JSON header")
    pickled = [k for k, a in arrays.items() if np.asarray(a).dtype.hasobject]
    if pickled:  # numpy would pickle them, and the loader (allow_pickle=False) could not read them back
        raise ValueError(f"{path}: arrays {pickled} hold Python objects; checkpoints hold numbers and strings only")
    text = json.dumps({**header(fmt, version, libraries), **meta})
    savez = np.savez_compressed if compress else np.savez
    return atomic_write(path, lambda f: savez(f, meta=np.array(text), **arrays))


def load_npz(path: str | Path, fmt: str, max_version: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a :func:`save_npz` file: (meta, arrays), after checking its header and that its floats are finite.

    Version-1 bandit checkpoints named their JSON ``header`` instead of ``meta``; both are read.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        key = "meta" if "meta" in arrays else "header"
        if key not in arrays:
            raise CheckpointError(f"{path}: not a {fmt} checkpoint (an .npz without its JSON meta)")
        meta = json.loads(str(arrays.pop(key)))
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise _unreadable(path, f"{fmt} checkpoint (.npz with a JSON meta)", e) from e
    check_header(meta, path, fmt, max_version)
    for name, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise _not_finite(path, name)
    return meta, arrays


# ---- .json -------------------------------------------------------------------------------------------------
def save_json(
    path: str | Path, fmt: str, version: int, data: Mapping[str, Any], *, libraries: Iterable[str] = ()
) -> Path:
    """Writes ``{header, **data}`` as JSON, atomically."""
    return write_json(path, {**header(fmt, version, libraries), **data})


def load_json(path: str | Path, fmt: str, max_version: int, *, headerless: bool = False) -> dict[str, Any]:
    """Reads a :func:`save_json` file, checking its header.

    ``headerless`` also accepts a JSON object without ``format`` and ``version`` (a run file written before the
    envelope existed), read as the oldest version.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _unreadable(path, f"{fmt} file (JSON)", e) from e
    if headerless and isinstance(data, dict) and "format" not in data and "version" not in data:
        return data
    check_header(data, path, fmt, max_version)
    return data


# ---- torch .pt ---------------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | Path,
    fmt: str,
    version: int,
    payload: Mapping[str, Any],
    *,
    libraries: Iterable[str] = ("torch", "numpy"),
) -> Path:
    """Writes ``{header, **payload}`` with ``torch.save`` atomically; ``payload`` holds tensors and plain values."""
    import torch

    # Serialised in memory first, then written by Python: torch's C++ writer turns any exception raised while it
    # writes to a Python file (KeyboardInterrupt, a full disk's OSError) into an opaque RuntimeError.
    buffer = io.BytesIO()
    torch.save({**header(fmt, version, libraries), **payload}, buffer)
    try:  # never write a file the loader would refuse (a numpy scalar, any other object weights_only rejects)
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: the checkpoint holds values torch.load(weights_only=True) cannot read: {e}") from e
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path, fmt: str, max_version: int) -> dict[str, Any]:
    """Reads a :func:`save_checkpoint` file with ``weights_only=True``; checks its header and finite tensors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle with globals weights_only refuses...
        raise _unreadable(path, "perceptgym checkpoint", e) from e
    check_header(ck, path, fmt, max_version)
    for name, tensor in _tensors(ck):
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise _not_finite(path, name)
    return ck


def _tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, tensor) for every tensor nested in dicts, lists and tuples."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{prefix}.{i}" if prefix else str(i))


# ---- training loops ----------------------------------------------------------------------------------------
class DeferredInterrupt:
    """Turns Ctrl-C (SIGINT) into a flag that a training loop checks between steps.

    The loop saves a consistent resume checkpoint at a step boundary and then raises KeyboardInterrupt itself,
    so an interrupt can never land between an optimiser step and the bookkeeping that records it. A second
    Ctrl-C interrupts at once. Outside the main thread (where signals cannot be handled) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> DeferredInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

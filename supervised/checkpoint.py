"""Versioned torch checkpoints: one dict with ``format``, ``version`` and the payload, read with weights_only.

Every file we write is a plain dict of tensors and JSON-like values, so ``torch.load(weights_only=True)`` can
read it without running any code from the file. Loaders name the format they expect and the newest version
they understand; anything else gets a clear :class:`CheckpointError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of another kind, or from a newer perceptgym."""


def save_checkpoint(path: str | Path, fmt: str, version: int, payload: dict[str, Any]) -> Path:
    """Writes ``{"format": fmt, "version": version, **payload}`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": fmt, "version": version, **payload}, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:  # a Ctrl-C mid-write must not leave a half-written checkpoint
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, fmt: str, max_version: int) -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint`, checking its format and version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickle with disallowed globals...
        raise CheckpointError(f"{path} is not a readable perceptgym checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or "format" not in ck or "version" not in ck:
        raise CheckpointError(f"{path} is not a perceptgym checkpoint (no format/version fields)")
    if ck["format"] != fmt:
        raise CheckpointError(f"{path} holds a {ck['format']!r} checkpoint, expected {fmt!r}")
    if not isinstance(ck["version"], int) or ck["version"] > max_version:
        raise CheckpointError(
            f"{path} is {fmt} version {ck['version']}, newer than this perceptgym understands "
            f"(<= {max_version}); upgrade perceptgym"
        )
    return ck


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

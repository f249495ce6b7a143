"""Atomic writes for experiment outputs: a report is either the old file or the complete new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The one atomic writer (perceptgym.supervised.checkpoint) serves experiment outputs too.
from perceptgym.supervised.checkpoint import atomic_write as write_atomic
from perceptgym.supervised.checkpoint import write_json
from perceptgym.supervised.plots import subplots  # a Figure of its own: no pyplot, no process-wide backend

__all__ = ["save_figure", "subplots", "write_atomic", "write_json", "write_text"]


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode()))


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """Saves a figure made by :func:`subplots` atomically as PNG (pyplot holds no reference to it to close)."""
    return write_atomic(path, lambda f: fig.savefig(f, format="png", **kwargs))

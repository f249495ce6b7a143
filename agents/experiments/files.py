"""Atomic writes for experiment outputs: a report is either the old file or the complete new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The one atomic writer (perceptgym.supervised.checkpoint) serves experiment outputs too.
from perceptgym.supervised.checkpoint import atomic_write as write_atomic
from perceptgym.supervised.checkpoint import write_json

__all__ = ["pyplot", "save_figure", "write_atomic", "write_json", "write_text"]


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode()))


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported on first use: most runs plot once)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """Saves a matplotlib figure atomically as PNG and closes it."""
    try:
        return write_atomic(path, lambda f: fig.savefig(f, format="png", **kwargs))
    finally:
        pyplot().close(fig)

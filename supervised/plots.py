"""Figures for the supervised models, and the one way perceptgym makes a matplotlib figure.

Every figure is a :class:`matplotlib.figure.Figure` of its own on an Agg canvas: no pyplot, so drawing a plot
neither picks matplotlib's backend for the whole process (``matplotlib.use``) nor keeps figures in pyplot's
global list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.supervised.checkpoint import atomic_write


def subplots(nrows: int = 1, ncols: int = 1, **figure_kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` as ``pyplot.subplots`` gives them, on a Figure of its own with an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**figure_kwargs)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols)


def plot_confusion(confusion: np.ndarray | list, path: str | Path, title: str = "") -> Path:
    """Writes a 10×10 confusion matrix (rows: true digit, columns: predicted) as PNG; off-diagonal counts shown."""
    confusion = np.asarray(confusion)
    fig, ax = subplots(figsize=(6, 5.4), dpi=110)
    # Log scale so that the few errors stand out next to ~1000 correct per class.
    im = ax.imshow(np.log10(confusion + 1), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if confusion[i, j]:
                ax.text(
                    j,
                    i,
                    str(confusion[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if i == j else "black",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    acc = confusion.trace() / max(confusion.sum(), 1)
    ax.set_title(f"{title} accuracy {acc:.2%}".strip())
    fig.colorbar(im, ax=ax, label="log10(count + 1)")
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


def save_digit_grid(images: np.ndarray, path: str | Path, ncols: int = 10, scale: int = 2) -> Path:
    """Writes ``(n, 28, 28)`` uint8 digits as a grid PNG (ink dark on white), ``ncols`` per row."""
    from PIL import Image

    images = np.asarray(images)
    n = len(images)
    nrows = -(-n // ncols)
    pad = 2
    grid = np.full((nrows * (28 + pad) + pad, ncols * (28 + pad) + pad), 255, dtype=np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, ncols)
        y, x = pad + r * (28 + pad), pad + c * (28 + pad)
        grid[y : y + 28, x : x + 28] = 255 - img
    im = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path

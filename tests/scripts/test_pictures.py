"""``perceptgym pictures``: the viewer's pictures in the README and docs are what the renderer draws now."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptgym.agents.experiments.pictures import PICTURES

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.slow
def test_docs_pictures_are_up_to_date(tmp_path, capsys):
    """Run ``perceptgym pictures`` after changing the renderer; this fails until the docs' copies match."""
    from perceptgym.pictures import main

    assert main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("wrote ") == len(PICTURES)
    for name in PICTURES:
        made, shipped = (np.asarray(Image.open(folder / name).convert("RGB")) for folder in (tmp_path, DOCS))
        assert made.shape == shipped.shape and (made == shipped).all(), f"docs/{name} is stale: perceptgym pictures"
    assert Image.open(tmp_path / "viewer.png").size == (1140, 720)
    assert Image.open(tmp_path / "events.png").size == (2 * 570 + 4, 2 * 360 + 4)

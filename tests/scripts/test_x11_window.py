"""``perceptgym play`` in a real X11 window (Xvfb), driven by real key presses (xdotool), looked at by screenshots
(ImageMagick's ``import``): the window's size at the default and at 2x, the crash it shows, a clean quit.

Needs the Debian packages xvfb, xdotool and imagemagick; without them there is no X server to test against.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptgym.envs.grid_driving.constants import COLOR_CAR, COLOR_EGO

TOOLS = ("Xvfb", "xdotool", "import")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS), reason="needs xvfb, xdotool and imagemagick"),
]
BIN = Path(sys.executable).parent


def _x(display: str, *cmd: str) -> str:
    env = {**os.environ, "DISPLAY": display}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60).stdout


def _window(display: str, deadline: float) -> str:
    while time.monotonic() < deadline:  # SDL names the window's class after the title's first word
        wid = _x(display, "xdotool", "search", "--class", "perceptgym").split()
        if wid:
            return wid[0]
        time.sleep(0.3)
    raise AssertionError("no perceptgym window appeared")


def _geometry(display: str, wid: str) -> tuple[int, int, int, int]:
    out = dict(
        line.split("=") for line in _x(display, "xdotool", "getwindowgeometry", "--shell", wid).split() if "=" in line
    )
    return int(out["X"]), int(out["Y"]), int(out["WIDTH"]), int(out["HEIGHT"])


@pytest.mark.parametrize(
    ("screen", "args", "window", "tile"),
    [((1280, 800), [], (1140, 746), 80), ((2560, 1600), ["--window-size", "2560", "1440"], (2280, 1491), 160)],
)
def test_play_in_a_real_window(tmp_path, screen, args, window, tile):
    display = f":{90 + tile // 80}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{screen[0]}x{screen[1]}x24", "-nolisten", "tcp"])
    play = None
    try:
        time.sleep(1.0)
        env = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11"}
        # seed 4 on the default map: two steps forward from (1, 5) run into a car at (1, 6)
        command = [str(BIN / "perceptgym"), "play", "--seed", "4", "--digit-source", "mnist-test"]
        play = subprocess.Popen(
            [*command, "--end-pause-ms", "8000", *args],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        wid = _window(display, time.monotonic() + 60)
        x, y, w, h = _geometry(display, wid)
        assert (w, h) == window and x + w <= screen[0] and y + h <= screen[1]  # fits the screen, footer included
        _x(display, "xdotool", "windowfocus", "--sync", wid)
        for key in ("Up", "Up"):
            _x(display, "xdotool", "key", key)
            time.sleep(0.5)
        shot = tmp_path / "screen.png"
        deadline, crash = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # the crash frame, once the two key presses are through
            _x(display, "import", "-window", "root", str(shot))
            pixels = np.asarray(Image.open(shot).convert("RGB"))
            assert pixels.shape == (screen[1], screen[0], 3)
            crash = pixels[y + tile : y + 2 * tile, x + 6 * tile : x + 7 * tile]  # the map cell (1, 6)
            if (crash == COLOR_EGO).all(axis=2).sum() > 0.05 * tile**2:
                break
            time.sleep(0.5)
        assert (crash == COLOR_EGO).all(axis=2).sum() > 0.05 * tile**2
        # the car we hit is drawn where it came from: beside the crash cell
        around = pixels[y : y + 3 * tile, x + 5 * tile : x + 8 * tile]
        assert (around == COLOR_CAR).all(axis=2).sum() > 0.05 * tile**2
        _x(display, "xdotool", "key", "q")
        out, _ = play.communicate(timeout=60)
        assert play.returncode == 0 and "trip 1: collision" in out
    finally:
        if play is not None and play.poll() is None:
            play.kill()
        xvfb.terminate()
        xvfb.wait(timeout=30)

"""scripts/play.py: key handling without a window, and a scripted drive headless."""

from __future__ import annotations

import pytest

from perceptgym.envs.grid_driving import Action, GridDrivingEnv
from perceptgym.play import Args, Controller, play
from tests.conftest import StubSource


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("up", Action.FORWARD),
        ("w", Action.FORWARD),
        ("left", Action.LEFT),
        ("right", Action.RIGHT),
        ("space", Action.WAIT),
        ("down", Action.STOP),
        ("return", Action.STOP),
        ("r", "reset"),
        ("q", "quit"),
        ("escape", "quit"),
        ("Q", "quit"),
        ("x", None),
        ("f1", None),
    ],
)
def test_handle_key(key, expected):
    assert Controller.handle_key(key) == expected


def test_controller_keeps_score():
    c = Controller()
    assert c.record(-0.01, False, False, {}) is None
    message = c.record(1.0, True, False, {"event": "arrived"})
    assert message == "trip 1: arrived, return +0.99" and c.episode_return == 0.0
    assert c.record(-0.01, False, True, {}) == "trip 2: time limit, return -0.01"


def test_scripted_drive_headless():
    pygame = pytest.importorskip("pygame")
    keys = "up,left,up,right,space,down,r,up,down,q"
    env = GridDrivingEnv(render_mode="human", render_fps=1000, digit_source=StubSource())
    controller = play(Args(keys=keys, seed=3, end_pause_ms=0), env=env)
    assert isinstance(controller, Controller)
    assert not pygame.display.get_init()  # the window was closed on quit
    env2 = GridDrivingEnv(render_mode="human", render_fps=1000, digit_source=StubSource())
    assert play(Args(max_frames=3), env=env2).episodes == 0

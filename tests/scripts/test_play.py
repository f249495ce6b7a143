"""scripts/play.py: key handling without a window, a scripted drive headless, the keys shown, clean ends."""

from __future__ import annotations

import gymnasium as gym
import pytest

from perceptgym.envs.grid_driving import Action, GridDrivingEnv
from perceptgym.envs.viewer import BORDER_COLOR
from perceptgym.play import KEYS_HELP, Args, Controller, play
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
    env = GridDrivingEnv(render_mode="rgb_array", digit_source=StubSource())
    controller = play(Args(keys=keys, seed=3, end_pause_ms=0), env=env)
    assert isinstance(controller, Controller)
    assert not pygame.display.get_init()  # the window was closed on quit
    env2 = GridDrivingEnv(render_mode="rgb_array", digit_source=StubSource())
    assert play(Args(max_frames=3), env=env2).episodes == 0


class Spy(gym.Wrapper):
    """Records what the window showed when each frame was drawn, and posts fake events at chosen frames."""

    def __init__(self, env, events: dict[int, list] | None = None):
        super().__init__(env)
        self.events, self.frames, self.screens = events or {}, 0, []

    def render(self):
        pygame = pytest.importorskip("pygame")
        surface = pygame.display.get_surface() if pygame.display.get_init() else None
        if surface is not None:  # the previous frame, with the footer under it
            self.screens.append(pygame.surfarray.array3d(surface).transpose(1, 0, 2))
        for event in self.events.get(self.frames, []):
            pygame.event.post(event)
        self.frames += 1
        frame = self.env.render()
        self.frame_height = frame.shape[0]
        return frame


def test_play_shows_the_keys_under_the_picture():
    env = Spy(GridDrivingEnv(render_mode="rgb_array", digit_source=StubSource(), window_size=(640, 400)))
    play(Args(max_frames=3, fps=1000), env=env)
    footer = env.screens[-1][env.frame_height :]
    assert footer.shape[0] >= 18 and (footer != BORDER_COLOR).any(axis=2).sum() > 200  # a line of text
    for key in ("up", "left", "right", "space", "down", "enter", "r", "q"):
        assert key in KEYS_HELP


def test_play_window_close_ends_cleanly():
    pygame = pytest.importorskip("pygame")
    inner = GridDrivingEnv(render_mode="rgb_array", digit_source=StubSource())
    env = Spy(inner, {2: [pygame.event.Event(pygame.QUIT)]})
    assert play(Args(fps=1000), env=env).episodes == 0
    assert env.frames == 3 and not pygame.display.get_init()


def test_play_holds_the_end_of_a_trip_and_can_quit_meanwhile(capsys):
    pygame = pytest.importorskip("pygame")
    # The car starts on a stop (the options put it there): enter ends the trip, its end stays on screen for
    # end_pause_ms (here 50 frames), events still pumped: a close request during the hold ends play at once.
    inner = GridDrivingEnv(render_mode="rgb_array", digit_source=StubSource(), window_size=(320, 200))
    env = Spy(inner, {10: [pygame.event.Event(pygame.QUIT)]})
    env.reset = lambda **kw: inner.reset(seed=0, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    controller = play(Args(keys="enter", fps=1000, end_pause_ms=50), env=env)
    assert controller.episodes == 1 and "trip 1: arrived" in capsys.readouterr().out
    assert env.frames == 11 and not pygame.display.get_init()

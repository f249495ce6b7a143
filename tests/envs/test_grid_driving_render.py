"""GridDriving's pygame viewer: headless frames of the declared shape, the window, ansi text."""

from __future__ import annotations

import numpy as np
import pytest

from perceptgym.envs.grid_driving import GridDrivingEnv
from tests.conftest import StubReader, StubSource

pygame = pytest.importorskip("pygame")


def make(**kwargs) -> GridDrivingEnv:
    return GridDrivingEnv(digit_source=StubSource(), reader=StubReader(), **kwargs)


@pytest.mark.parametrize("map_name", ["tiny", "small", "town", "procedural"])
def test_rgb_array_frames_have_the_declared_shape(map_name, seed):
    env = make(map=map_name, render_mode="rgb_array", obs_mode="perceived")
    env.reset(seed=seed)
    frame = env.render()
    w, h = env._renderer.size
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    frames = [frame]
    for a in (0, 0, 1, 0, 3, 4):
        _, _, terminated, _, _ = env.step(a)
        frames.append(env.render())
        if terminated:  # a crash or a stop ends the trip: the frame after reset is a new one
            env.reset()
    env.reset()
    frames.append(env.render())
    assert all(f.shape == frame.shape for f in frames)  # what RecordVideo needs: one size throughout
    assert len({f.tobytes() for f in frames}) > 1  # the scene changes
    frames[0][:] = 0  # frames are fresh arrays, not views of the renderer's surface
    assert env.render().any()


def test_frame_shows_the_scene(seed):
    env = make(render_mode="rgb_array")
    env.reset(seed=seed, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    frame = env.render()
    from perceptgym.envs.grid_driving.constants import COLOR_EGO

    tile = 40
    cell = frame[tile : 2 * tile, 2 * tile : 3 * tile].reshape(-1, 3)
    assert (cell == COLOR_EGO).all(axis=1).sum() > 100  # the red car sits on the stop at row 1, col 2


def test_human_window_opens_draws_and_closes(seed):
    env = make(render_mode="human")
    env.reset(seed=seed)
    assert pygame.display.get_init() and pygame.display.get_surface() is not None
    env.step(0)
    assert env.render() is None
    env.close()
    assert not pygame.display.get_init()


def test_ansi(seed):
    env = make(render_mode="ansi")
    env.reset(seed=seed, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    text = env.render()
    rows = text.splitlines()
    assert rows[1][2] == ">" and "card 0" in text
    assert len(rows[0]) == env.params.gmap.shape[1]


def test_render_without_mode_warns():
    env = make()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None

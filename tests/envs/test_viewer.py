"""The shared viewer (envs/viewer.py): window sizes, the resizable Window and the Viewer over any rgb_array env,
and DigitBandit's viewer."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from perceptgym.envs.digit_bandit.render import RIGHT, WRONG
from perceptgym.envs.grid_driving import GridDrivingEnv
from perceptgym.envs.grid_driving.render import frame_size, layout_tile
from perceptgym.envs.viewer import BORDER_COLOR, Viewer, Window, check_window_size, fit, set_window_size
from tests.conftest import StubReader, StubSource

pygame = pytest.importorskip("pygame")


def press(*names: str) -> None:
    """Fake key presses, posted to pygame's real event queue."""
    for name in names:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name)))


def resize(w: int, h: int) -> None:
    """What a window manager does on a drag: a new display size and a resize event."""
    pygame.display.set_mode((w, h), pygame.RESIZABLE)
    pygame.event.post(pygame.event.Event(pygame.VIDEORESIZE, size=(w, h), w=w, h=h))


def test_check_window_size_and_fit():
    assert check_window_size(None) is None
    assert check_window_size([640, 400]) == (640, 400)
    assert check_window_size(np.array([640, 400])) == (640, 400)
    for bad in [(63, 400), (640,), (640, 400, 3), "640x400", (640.0, 400), (False, 400)]:
        with pytest.raises(ValueError, match="--window-size"):
            check_window_size(bad, "--window-size")
    assert fit((1140, 720), (2280, 2000)) == (2280, 1440)
    assert fit((1140, 720), (570, 1000)) == (570, 360)


def test_window_letterboxes_and_draws_a_footer():
    window = Window("test", (200, 100), footer=True, collect_keys=True)
    try:
        assert window.content_size == (200, 100) and window.size[1] > 100
        window.footer = "q: quit"
        frame = np.full((100, 200, 3), 200, np.uint8)
        window.show(frame)
        shown = pygame.surfarray.array3d(window.surface).transpose(1, 0, 2)
        assert (shown[:100] == 200).all()  # the frame, unscaled, above the footer
        footer = shown[100:]
        assert (footer != BORDER_COLOR).any(axis=2).sum() > 20  # the footer's text
        resize(400, 400)
        window.show(frame)  # scaled to fit, aspect ratio kept: 2x, letterboxed above and below
        w, h = window.content_size
        shown = pygame.surfarray.array3d(window.surface).transpose(1, 0, 2)
        assert w == 400 and (shown[: (h - 200) // 2 - 1] == BORDER_COLOR).all()
        assert (shown[h // 2, :] == 200).all()
        press("a", "space")
        window.poll()
        assert window.take_keys() == ["a", "space"] and window.take_keys() == []
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        window.poll()
        assert window.closed
    finally:
        window.close()
    assert not pygame.display.get_init()


def test_window_without_collect_keys_leaves_them_for_the_caller():
    window = Window("test", (100, 100))
    try:
        press("x")
        window.poll()
        assert window.take_keys() == []
        assert [pygame.key.name(e.key) for e in pygame.event.get(pygame.KEYDOWN)] == ["x"]
    finally:
        window.close()


def test_viewer_redraws_our_env_at_the_new_window_size(seed):
    env = GridDrivingEnv(digit_source=StubSource(), render_mode="rgb_array")
    env.reset(seed=seed)
    viewer = Viewer(env)
    try:
        viewer.draw(1000, "footer")
        assert viewer.frame.shape == (720, 1140, 3)
        resize(2400, 1600)
        viewer.draw(1000, "footer")
        box = viewer.window.content_size
        tile = layout_tile((9, 9), box)
        assert tile > 160 and env._renderer.tile == tile  # laid out again for the box above the footer
        assert viewer.frame.shape == (*frame_size((9, 9), tile)[::-1], 3)  # and drawn at that size, not scaled
    finally:
        viewer.close()


def test_viewer_scales_other_envs_frames():
    env = gym.make("Taxi-v4", render_mode="rgb_array")
    env.reset(seed=0)
    viewer = Viewer(env, window_size=(1100, 1100))
    try:
        viewer.draw(1000)
        native = viewer.frame.shape
        w, h = viewer.window.content_size
        assert (w, h) == fit((native[1], native[0]), (1100, 1100)) and w > native[1]
        assert not set_window_size(env, (800, 600))  # Taxi draws its own frames
    finally:
        viewer.close()
        env.close()


def test_viewer_refuses_other_render_modes():
    with pytest.raises(ValueError, match="rgb_array"):
        Viewer(GridDrivingEnv(digit_source=StubSource(), render_mode="human"))


def test_set_window_size_before_and_after_the_first_frame(seed):
    env = GridDrivingEnv(digit_source=StubSource(), render_mode="rgb_array")
    assert set_window_size(env, (640, 400))
    env.reset(seed=seed)
    assert env.render().shape[0] <= 400
    assert set_window_size(env, (1280, 720)) and env.render().shape == (720, 1140, 3)
    with pytest.raises(ValueError):
        set_window_size(env, (1, 1))


def bandit(**kwargs) -> DigitBanditEnv:
    return DigitBanditEnv(digit_source=StubSource(), reader=StubReader(), **kwargs)


def count(pixels, color) -> int:
    return int((pixels.reshape(-1, 3) == color).all(axis=1).sum())


def test_digit_bandit_frames_show_the_choice_and_scale(seed):
    env = bandit(render_mode="rgb_array", obs_mode="perceived")
    env.reset(seed=seed)
    before = env.render()
    assert before.shape == (540, 960, 3)
    label = env.snapshot()["label"]
    env.step((label + 1) % 10)  # wrong
    wrong = env.render()
    assert count(wrong, WRONG) > 500 and count(wrong, RIGHT) > 100  # the choice filled red, the label outlined
    env.reset()
    env.step(env.snapshot()["label"])  # right
    right = env.render()
    assert count(right, RIGHT) > 500 and count(right, WRONG) == 0
    big = bandit(render_mode="rgb_array", window_size=(1920, 1080))
    big.reset(seed=seed)
    assert big.render().shape == (1080, 1920, 3)
    with pytest.raises(ValueError, match="window_size"):
        bandit(render_mode="rgb_array", window_size=(1920,))


def test_digit_bandit_frames_are_fresh_and_follow_the_rounds(seed):
    env = bandit(render_mode="rgb_array")
    env.reset(seed=seed)
    frames = []
    for _ in range(3):
        frames.append(env.render())
        env.step(0)
        frames.append(env.render())
        env.reset()
    assert len({f.tobytes() for f in frames}) == len(frames)  # each round and each answer looks different
    frames[0][:] = 0
    assert env.render().any()


def test_digit_bandit_human_window_resizes_and_closes(seed):
    env = bandit(render_mode="human")
    env.reset(seed=seed)
    assert pygame.display.get_surface().get_size() == (960, 540)
    resize(1920, 1080)
    env.step(0)
    assert env._renderer.size == (1920, 1080)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    env.reset()
    assert env._renderer.closed and not pygame.display.get_init()
    env.step(0)  # playing on without a window is fine
    env.close()


def test_set_window_size_none_restores_each_envs_own_default(seed):
    for env, default in (
        (bandit(render_mode="rgb_array"), (960, 540)),
        (GridDrivingEnv(digit_source=StubSource(), render_mode="rgb_array"), (1140, 720)),
    ):
        env.reset(seed=seed)
        env.render()
        set_window_size(env, (320, 200))
        assert env.render().shape[0] <= 200
        set_window_size(env, None)
        assert env.render().shape[1::-1] == default

"""GridDriving's pygame viewer: frame sizes and scaling, the events drawn, the resizable window, ansi text."""

from __future__ import annotations

import numpy as np
import pytest

from perceptgym.envs.grid_driving import Action, GridDrivingEnv
from perceptgym.envs.grid_driving.constants import (
    COLOR_BAD,
    COLOR_CAR,
    COLOR_EGO,
    COLOR_GOOD,
    COLOR_RED,
    COLOR_SIGN_BG,
    COLOR_STOP,
    DIR_VECTORS,
)
from perceptgym.envs.grid_driving.maps import get_map
from perceptgym.envs.grid_driving.render import COLOR_CRASH
from perceptgym.envs.grid_driving.scenes import EVENTS, find_scene, play_scene
from perceptgym.envs.viewer import DEFAULT_WINDOW_SIZE
from tests.conftest import StubReader, StubSource

pygame = pytest.importorskip("pygame")


def make(**kwargs) -> GridDrivingEnv:
    return GridDrivingEnv(digit_source=StubSource(), reader=StubReader(), **kwargs)


def count(pixels: np.ndarray, color) -> int:
    return int((pixels.reshape(-1, 3) == color).all(axis=1).sum())


def near(pixels: np.ndarray, color, tol: int = 40) -> int:
    """Pixels within ``tol`` of ``color`` in every channel (digit images are smoothed, their paper is noisy)."""
    return int((np.abs(pixels.reshape(-1, 3).astype(int) - color) <= tol).all(axis=1).sum())


def cell(frame: np.ndarray, tile: int, r: int, c: int) -> np.ndarray:
    return frame[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]


@pytest.mark.parametrize("map_name", ["tiny", "small", "town", "procedural"])
def test_rgb_array_frames_have_the_declared_shape(map_name, seed):
    env = make(map=map_name, render_mode="rgb_array", obs_mode="perceived")
    env.reset(seed=seed)
    frame = env.render()
    w, h = env._renderer.size
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    assert w <= DEFAULT_WINDOW_SIZE[0] and h <= DEFAULT_WINDOW_SIZE[1] and w % 2 == 0 and h % 2 == 0
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


def sign_width(env: GridDrivingEnv, frame: np.ndarray, k: int = 0) -> int:
    """Width [px] of stop k's sign: the run of pixels between its yellow frame, through its middle row."""
    renderer = env._renderer
    t = renderer.tile
    r, c = renderer._signs[k]
    row = frame[r * t + t // 2, c * t : (c + 1) * t]
    inside = ~(row == COLOR_STOP).all(axis=1)
    edges = np.flatnonzero(~inside)
    return int(edges[edges > t // 2][0] - edges[edges < t // 2][-1] - 1)


def test_default_size_fits_a_laptop_screen_with_2cm_digits(seed):
    env = make(render_mode="rgb_array")
    env.reset(seed=seed)
    frame = env.render()
    assert frame.shape == (720, 1140, 3)  # 1140x720 plus a title bar fits 1280x800
    assert sign_width(env, frame) >= 76  # 2 cm at 96 dpi


def test_window_size_scales_the_layout_not_the_pixels(seed):
    small, big = make(render_mode="rgb_array"), make(render_mode="rgb_array", window_size=(2560, 1440))
    for env in (small, big):
        env.reset(seed=seed, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    a, b = small.render(), big.render()
    assert b.shape == (1440, 2280, 3) and big._renderer.tile == 2 * small._renderer.tile
    assert sign_width(big, b) >= 2 * sign_width(small, a) - 1
    # Drawn at the size, not scaled up: a scaled-up frame has each pixel twice; the 2x frame has finer detail
    # (text and digit edges) than that, yet the same picture once shrunk back.
    doubled = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
    assert (b != doubled).any(axis=2).mean() > 0.01
    shrunk = b.reshape(720, 2, 1140, 2, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - a).mean() < 12
    # Aspect ratio kept: a wide box gives the same frame as the box of its height.
    wide = make(render_mode="rgb_array", window_size=(3000, 720))
    wide.reset(seed=seed)
    assert wide.render().shape == a.shape


def test_window_size_is_checked():
    for bad in [(10, 10), (1280,), "1280x720", (1280.0, 720), (True, 720)]:
        with pytest.raises(ValueError, match="window_size"):
            make(render_mode="rgb_array", window_size=bad)
    env = make(render_mode="rgb_array", map="town", window_size=(200, 90))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="too small"):
        env.render()


def test_frame_shows_the_scene(seed):
    env = make(render_mode="rgb_array")
    env.reset(seed=seed, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    frame = env.render()
    tile = env._renderer.tile
    assert count(cell(frame, tile, 1, 2), COLOR_EGO) > tile * tile // 6  # the red car sits on the stop at (1, 2)


@pytest.fixture(scope="module")
def event_frames():
    """One frame per event, from a scripted scene on the default map, with the scene and the env."""
    env = make(render_mode="rgb_array", obs_mode="perceived")
    out = {}
    for event in EVENTS:
        scene = find_scene(env, event)
        info = play_scene(env, scene)
        out[event] = (env.render(), scene, info, env.snapshot(), env._renderer.tile)
    return out


def test_each_event_frame_has_the_frame_size(event_frames):
    for event, (frame, _, info, _, _) in event_frames.items():
        assert frame.shape == (720, 1140, 3), event
        if event == "red_light":
            assert info["reward_terms"]["red_light"] < 0 and "event" not in info
        else:
            assert info["event"] == event


def test_crash_frame_shows_both_cars_at_the_collision_cell(event_frames):
    frame, _, _, snap, tile = event_frames["collision"]
    r, c, _ = snap["ego"]
    site = cell(frame, tile, r, c)
    # Both cars in the cell they met in, each a good part of a car (a car alone covers ~0.4 of a cell).
    assert count(site, COLOR_EGO) > 0.08 * tile * tile
    assert count(site, COLOR_CAR) > 0.08 * tile * tile
    assert count(site, COLOR_CRASH) > 0.01 * tile * tile  # and the crash mark


def test_crash_is_drawn_even_when_the_step_before_was_not():
    """Rendering only the final frame (no previous frame to tell where the ego came from) still shows both."""
    env = make(render_mode="rgb_array")
    scene = find_scene(env, "collision")
    play_scene(env, scene)
    frame = env.render()  # the first render of the episode
    r, c, _ = env.snapshot()["ego"]
    site = cell(frame, env._renderer.tile, r, c)
    tile = env._renderer.tile
    assert count(site, COLOR_EGO) > 0.08 * tile * tile and count(site, COLOR_CAR) > 0.08 * tile * tile


def test_head_on_swap_shows_both_cars_on_their_border():
    """A car coming the other way: after the step they have swapped cells, and the crash is on the border."""
    env = make(render_mode="rgb_array", n_cars=2)
    m = env.model
    for r, c in env.params.gmap.road_cells:
        for heading in range(4):
            for phase in range(m.period):
                try:
                    env.reset(seed=0, options={"start": (r, c, heading), "phase": phase, "card": 0})
                except ValueError:
                    continue
                _, _, terminated, _, info = env.step(Action.FORWARD)
                cars = {(cr, cc) for cr, cc, _ in m.car_positions(env.snapshot()["phase"])}
                er, ec, _ = env.snapshot()["ego"]
                if terminated and info["event"] == "collision" and (er, ec) not in cars:
                    frame, tile = env.render(), env._renderer.tile
                    dr, dc = DIR_VECTORS[heading]
                    assert (er - dr, ec - dc) == (r, c) and (r, c) in cars
                    pair = np.concatenate([cell(frame, tile, r, c), cell(frame, tile, er, ec)])
                    assert count(pair, COLOR_EGO) > 0.1 * tile * tile and count(pair, COLOR_CAR) > 0.1 * tile * tile
                    assert count(pair, COLOR_CRASH) > 0
                    return
    raise AssertionError("no head-on collision found on the default map")


def test_red_light_frame_marks_the_intersection(event_frames):
    frame, _, _, snap, tile = event_frames["red_light"]
    r, c, heading = snap["ego"]
    dr, dc = DIR_VECTORS[heading]
    site = cell(frame, tile, r, c)
    assert count(site, COLOR_RED) > 0.1 * tile * tile  # the outline and the stop line crossed on red
    # The stop line it crossed: the edge it came in by is red over most of its length.
    edge = site[:, :8] if dc == 1 else site[:, -8:] if dc == -1 else site[:8] if dr == 1 else site[-8:]
    assert count(edge, COLOR_RED) > 0.5 * edge.size / 3


def test_stop_frames_mark_the_bay(event_frames):
    for event, color in (("wrong_stop", COLOR_BAD), ("arrived", COLOR_GOOD)):
        frame, _, _, snap, tile = event_frames[event]
        r, c, _ = snap["ego"]
        assert count(cell(frame, tile, r, c), color) > 0.1 * tile * tile, event  # the bay, outlined


def test_wrong_stop_shows_the_sign_and_the_stop_the_card_asked_for(event_frames):
    frame, _, _, snap, tile = event_frames["wrong_stop"]
    stops = get_map("small").stops
    tr, tc, _ = stops[snap["numbers"].index(snap["card"])]
    assert count(cell(frame, tile, tr, tc), COLOR_GOOD) > 0.05 * tile * tile  # the stop it should have taken
    # The panel's event box shows the sign it stopped at, enlarged (the only sign-coloured patch in the panel).
    box = frame[int(4.1 * tile) :, 9 * tile :]
    assert near(box, COLOR_SIGN_BG) > 0.2 * tile * tile


def test_wrong_stop_says_what_the_reader_read_on_the_sign():
    """The line "read N (conf)" beside the sign is green when the reader read the sign right, red when not."""
    env = make(render_mode="rgb_array", obs_mode="perceived")
    scene = find_scene(env, "wrong_stop")
    play_scene(env, scene)
    snap = env.snapshot()
    r, c, _ = snap["ego"]
    number = snap["numbers"][[(sr, sc) for sr, sc, _ in env.params.gmap.stops].index((r, c))]
    texts = {}
    for name, reader in (("right", StubReader()), ("misread", StubReader(confuse={number: (number + 1) % 10}))):
        env = GridDrivingEnv(digit_source=StubSource(), reader=reader, render_mode="rgb_array", obs_mode="perceived")
        play_scene(env, scene)
        frame, u = env.render(), env._renderer.s
        x0 = env._renderer.panel_x
        texts[name] = frame[u(196) : u(248), x0 + u(56) : env._renderer.size[0] - u(16)]  # inside the box
    assert count(texts["right"], COLOR_GOOD) > 20 and count(texts["right"], COLOR_BAD) == 0
    assert count(texts["misread"], COLOR_BAD) > 20 and count(texts["misread"], COLOR_GOOD) == 0


def test_human_window_opens_resizes_and_closes(seed):
    env = make(render_mode="human")
    env.reset(seed=seed)
    assert pygame.display.get_init() and pygame.display.get_surface().get_size() == (1140, 720)
    renderer = env._renderer
    # A bigger window: the next frame is laid out again at the new size (not the old frame scaled up).
    pygame.display.set_mode((2000, 1000), pygame.RESIZABLE)
    pygame.event.post(pygame.event.Event(pygame.VIDEORESIZE, size=(2000, 1000), w=2000, h=1000))
    env.step(Action.WAIT)
    assert renderer.tile == 111 and renderer.size == (1582, 1000)
    assert env.render() is None
    # Closing the window ends it cleanly: the display is shut, further steps and renders just do nothing.
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    env.step(Action.WAIT)
    assert renderer.closed and not pygame.display.get_init()
    env.step(Action.WAIT)
    assert env.render() is None
    env.close()


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


def test_frames_drawn_in_place_equal_frames_drawn_afresh(seed):
    """Each frame repaints only what the last one drew; the result is the same as a full redraw."""
    from perceptgym.envs.grid_driving.render import GridRenderer

    env = make(render_mode="rgb_array", obs_mode="perceived")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(60):
        _, _, terminated, _, info = env.step(int(rng.integers(5)))
        frame = env.render()
        if info.get("event") != "collision":  # a crash drawn afresh cannot know where the ego came from
            assert (frame == GridRenderer(env.model).render(env.snapshot())).all()
            compared += 1
        if terminated:
            env.reset()
    assert compared > 40

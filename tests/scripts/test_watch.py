"""Watching and recording: the watch keys (fake events), videos written and read back, RecordVideo, the watch
and evaluate programs' --record / --video."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from perceptgym.agents.playback import (
    VideoWriter,
    WatchControls,
    record_episode,
    save_video,
    video_info,
    watch_episodes,
)
from perceptgym.envs.grid_driving import Action, GridDrivingEnv
from tests.conftest import StubSource

pygame = pytest.importorskip("pygame")


class Forward:
    """An agent that always drives forward, counting its steps."""

    def __init__(self) -> None:
        self.steps = 0

    def act(self, obs, *, explore: bool = False):
        self.steps += 1
        return int(Action.FORWARD)


class ScriptedKeys(gym.Wrapper):
    """Posts fake key presses (or a window close) to pygame's event queue when frame ``k`` is drawn."""

    def __init__(self, env: gym.Env, script: dict[int, list[str]], agent: Forward) -> None:
        super().__init__(env)
        self.script, self.agent, self.frames, self.steps_at = script, agent, 0, {}

    def render(self):
        frame = self.env.render()
        self.steps_at[self.frames] = self.agent.steps
        for name in self.script.get(self.frames, []):
            if name == "close":
                pygame.event.post(pygame.event.Event(pygame.QUIT))
            else:
                pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name)))
        self.frames += 1
        return frame


def env_for_watch(**kwargs) -> GridDrivingEnv:
    # n_cars=0 and no lights: driving forward ends only at the time limit, so every frame is a step
    env = GridDrivingEnv(digit_source=StubSource(), render_mode="rgb_array", n_cars=0, green_steps=0, **kwargs)
    return gym.wrappers.TimeLimit(env, 50)


def test_watch_controls():
    c = WatchControls(fps=8)
    assert c.advance() and not c.paused
    assert c.handle_key("space") == "pause" and c.paused and not c.advance()
    assert c.handle_key("right") == "step" and c.advance() and not c.advance()  # one step, then paused again
    assert c.handle_key("+") == "faster" and c.fps == 16
    assert c.handle_key("[-]") == "slower" and c.handle_key("-") == "slower" and c.fps == 4
    assert "PAUSED" in c.footer() and c.frame_rate == 30  # redraws while paused keep the window responsive
    c.handle_key("space")
    assert not c.paused and c.frame_rate == 4 and "4 steps/s" in c.footer()
    assert c.handle_key("right") == "step" and c.paused  # right while running pauses first
    assert c.handle_key("x") is None
    assert c.handle_key("Q") == "quit" and c.quit
    for _ in range(20):
        c.handle_key("-")
    assert c.fps == 0.25


def test_watch_pauses_steps_and_quits_with_fake_keys():
    agent = Forward()
    # A key pressed while frame k is on screen acts before frame k + 1: pause after frame 2, one step after
    # frame 6, go on after frame 9, quit after frame 12.
    env = ScriptedKeys(env_for_watch(), {2: ["space"], 6: ["right"], 9: ["space"], 12: ["q"]}, agent)
    returns = watch_episodes(env, agent, episodes=1, seed=0, fps=1000, end_hold=0)
    s = env.steps_at
    assert [s[k] for k in range(4)] == [0, 1, 2, 3]  # running: a step per frame
    assert s[3] == s[4] == s[5] == s[6] == s[7]  # paused: the frames are redrawn, nothing moves
    assert s[8] == s[7] + 1 == s[9] == s[10]  # the single step
    assert s[11] == s[10] + 1 and s[12] == s[11] + 1 and env.frames == 13  # running again, then quit
    assert returns == []  # quit before the episode ended
    assert not pygame.display.get_init()  # the window was closed


def test_watch_window_close_ends_cleanly_even_while_paused():
    agent = Forward()
    env = ScriptedKeys(env_for_watch(), {1: ["space"], 5: ["close"]}, agent)
    assert watch_episodes(env, agent, episodes=3, seed=0, fps=1000) == []
    assert env.frames == 6 and not pygame.display.get_init()


def test_watch_holds_the_last_frame_then_plays_on():
    agent = Forward()
    env = ScriptedKeys(env_for_watch(), {}, agent)
    returns = watch_episodes(env, agent, episodes=2, seed=0, fps=200, end_hold=0.1)
    assert len(returns) == 2 and agent.steps == 100
    # Each episode's final frame stays 0.1 s (20 frames at 200 frames/s) with no step taken; the first
    # episode's count includes the next episode's first frame, drawn before its first step.
    shown = [sum(v == n for v in env.steps_at.values()) for n in (50, 100)]
    assert 21 <= shown[0] <= 23 and 20 <= shown[1] <= 22


def recorded(env, agent, **kwargs) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    n, _ = record_episode(env, agent, frames.append, **kwargs)
    assert n == len(frames)
    return frames


def test_record_episode_holds_the_last_frame(seed):
    env = env_for_watch(window_size=(320, 200))
    frames = recorded(env, Forward(), seed=seed, hold_frames=5)
    assert len(frames) == 1 + 50 + 5
    assert all((f == frames[-1]).all() for f in frames[-6:]) and not (frames[-7] == frames[-1]).all()
    with pytest.raises(ValueError, match="hold_frames"):
        record_episode(env, Forward(), [].append, hold_frames=-1)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_written_and_read_back(tmp_path, seed, suffix):
    env = env_for_watch(window_size=(640, 400))
    frames = recorded(env, Forward(), seed=seed, hold_frames=3)
    path = save_video(frames, tmp_path / f"trip{suffix}", fps=8)
    n, size, fps = video_info(path)
    held = 3 if suffix == ".gif" else 0  # a GIF keeps a held frame as one longer frame
    assert n == len(frames) - held and size == (frames[0].shape[1], frames[0].shape[0])
    assert fps == pytest.approx(8, rel=0.05)  # GIF frame times are whole hundredths of a second: 8.33
    assert [p.name for p in tmp_path.iterdir()] == [f"trip{suffix}"]  # no temporary file left behind


def test_streamed_recording_is_the_video_of_all_frames(tmp_path, seed):
    """Frames streamed to the writer give the file that writing the whole list gave before (GIF: byte for byte)."""
    import imageio_ffmpeg
    from PIL import ImageSequence

    frames = recorded(env_for_watch(window_size=(320, 200)), Forward(), seed=seed, hold_frames=4)
    # What save_gif wrote from the list of frames before frames were streamed (Pillow, one call).
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp_path / "list.gif", save_all=True, append_images=images[1:], loop=0, duration=125)
    for suffix in (".gif", ".mp4"):
        with VideoWriter(tmp_path / f"streamed{suffix}", fps=8) as writer:
            n, _ = record_episode(
                env_for_watch(window_size=(320, 200)), Forward(), writer.write, seed=seed, hold_frames=4
            )
        assert n == writer.frames == len(frames) and writer.size == (frames[0].shape[1], frames[0].shape[0])
    assert (tmp_path / "streamed.gif").read_bytes() == (tmp_path / "list.gif").read_bytes()
    with Image.open(tmp_path / "streamed.gif") as gif:
        decoded = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    distinct = [f for i, f in enumerate(frames) if i == 0 or not np.array_equal(f, frames[i - 1])]
    assert len(decoded) == len(distinct)  # palettised (lossy colours), but the same pictures in order
    assert all(np.abs(a.astype(int) - b).mean() < 3 for a, b in zip(distinct, decoded, strict=True))
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "streamed.mp4"))
    meta = next(reader)
    mp4 = [np.frombuffer(b, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for b in reader]
    assert len(mp4) == len(frames)
    assert all(np.abs(a.astype(int) - b).mean() < 12 for a, b in zip(frames, mp4, strict=True))


def test_recording_keeps_no_frames_in_memory(tmp_path, seed):
    """An episode of 51 frames plus a 20-frame hold streams to the writer: a few frames in memory, never all 71.

    tracemalloc sees the numpy frames (what a list of the episode's frames held); a GIF's palettised images (a
    third of a frame each, one per distinct frame, kept for Pillow to write at the end) live in Pillow's own
    memory, which it does not see.
    """
    import tracemalloc

    env = env_for_watch(window_size=(640, 400))
    env.reset(seed=seed)
    frame_bytes = np.asarray(env.render()).nbytes
    for suffix in (".mp4", ".gif"):
        tracemalloc.start()
        try:
            with VideoWriter(tmp_path / f"long{suffix}", fps=8) as writer:
                record_episode(env, Forward(), writer.write, seed=seed, hold_frames=20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert writer.frames == 71
        assert peak < 8 * frame_bytes, (suffix, peak / frame_bytes)  # measured: 2.4 (MP4) and 3.2 (GIF)


def test_a_failed_recording_leaves_no_file(tmp_path):
    frame = np.zeros((64, 64, 3), np.uint8)
    for suffix in (".mp4", ".gif"):
        with pytest.raises(ValueError, match="one size"), VideoWriter(tmp_path / f"x{suffix}", fps=4) as writer:
            writer.write(frame)
            writer.write(frame[:32])
    assert not list(tmp_path.iterdir())


def test_mp4_frames_are_the_frames(tmp_path):
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    frames = [np.kron(rng.integers(0, 255, (9, 15, 3)), np.ones((16, 16, 1))).astype(np.uint8) for _ in range(4)]
    frames.append(np.zeros((9 * 16, 15 * 16, 3), np.uint8)[1:, 1:])  # odd sides are refused: sizes differ
    with pytest.raises(ValueError, match="one size"):
        save_video(frames, tmp_path / "x.mp4")
    path = save_video(frames[:4], tmp_path / "x.mp4", fps=4)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    decoded = [np.frombuffer(b, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for b in reader]
    assert len(decoded) == 4
    for a, b in zip(frames[:4], decoded, strict=True):  # lossy, but the same picture
        assert np.abs(a.astype(int) - b).mean() < 12


def test_save_video_refuses_bad_input(tmp_path):
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown video format"):
        save_video([frame], tmp_path / "x.avi")
    with pytest.raises(ValueError, match="no frames"):
        save_video([], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="fps"):
        save_video([frame], tmp_path / "x.mp4", fps=0)
    assert not list(tmp_path.iterdir())


def test_record_video_wrapper_works_with_our_envs(tmp_path):
    """Gymnasium's RecordVideo (moviepy, with imageio-ffmpeg's ffmpeg) on both envs: real MP4s, read back."""
    import perceptgym.envs  # noqa: F401 - registers the ids

    for env_id, kwargs, steps in (
        ("perceptgym/GridDriving-v0", {"n_cars": 0, "green_steps": 0}, 12),
        ("perceptgym/DigitBandit-v0", {}, 1),
    ):
        env = gym.make(env_id, render_mode="rgb_array", digit_source=StubSource(), window_size=(640, 400), **kwargs)
        name = env_id.split("/")[1]
        env = gym.wrappers.RecordVideo(env, str(tmp_path / name), episode_trigger=lambda e: True, name_prefix=name)
        env.reset(seed=0)
        for _ in range(steps):
            env.step(Action.WAIT if steps > 1 else 3)
        env.close()
        n, size, fps = video_info(tmp_path / name / f"{name}-episode-0.mp4")
        frame = env.unwrapped.render()
        assert n == steps + 1 and size == (frame.shape[1], frame.shape[0]), env_id
        assert fps == env.unwrapped.metadata["render_fps"]


@pytest.fixture(scope="module")
def driving_run(tmp_path_factory):
    from perceptgym.agents.training import train_run

    return train_run(
        "perceptgym/GridDriving-v0",
        "q_learning",
        seed=0,
        runs_dir=tmp_path_factory.mktemp("runs"),
        overrides={"n_episodes": 50, "eval_episodes": 0},
        progress=False,
        tensorboard=False,
    ).run_dir


def test_watch_program_records_mp4_and_gif_by_extension(driving_run, tmp_path, capsys):
    from perceptgym.watch import main

    for name in ("trip.mp4", "trip.gif"):
        out = tmp_path / name
        args = [str(driving_run), "--episodes", "2", "--record", str(out), "--window-size", "640", "400"]
        assert main([*args, "--fps", "10", "--end-hold", "0.5"]) == 0
        n, (w, h), fps = video_info(out)
        assert w <= 640 and h <= 400 and fps == pytest.approx(10, rel=0.05)
        printed = capsys.readouterr().out
        held = 2 * 5 if name.endswith(".gif") else 0  # 0.5 s at 10 fps after each episode, one GIF frame each
        assert f"({n + held} frames, {w}x{h}, 10 fps)" in printed and "episode 1: return" in printed
    assert main([str(driving_run), "--record", str(tmp_path / "trip.avi")]) == 2
    assert "unknown video format '.avi'" in capsys.readouterr().err


def test_evaluate_program_writes_the_video_by_extension(driving_run, tmp_path, capsys):
    from perceptgym.evaluate import main

    out = tmp_path / "eval.mp4"
    assert main([str(driving_run), "--episodes", "3", "--video", str(out), "--window-size", "640", "400"]) == 0
    n, (w, h), _ = video_info(out)
    assert n > 12 and w <= 640 and h <= 400  # at least the 1.5 s hold at 8 fps, drawn at the asked size
    assert main([str(driving_run), "--episodes", "3", "--video", str(tmp_path / "x.webm")]) == 2


def test_demo_records_the_episode_as_mp4_gif_and_a_still(driving_run, tmp_path):
    from perceptgym.agents.experiments.demo import GIF_SIZE, record_demo_episode

    rec = record_demo_episode(driving_run, tmp_path, seed=3)
    mp4, gif = video_info(tmp_path / "episode.mp4"), video_info(tmp_path / "episode.gif")
    # The same episode, frame for frame (the GIF keeps the 12 held frames at the end as one).
    assert mp4[0] == rec["files"]["episode.mp4"]["frames"] == gif[0] + 12
    assert mp4[1] == (1140, 720) and gif[1][0] <= GIF_SIZE[0] and gif[1][1] <= GIF_SIZE[1]
    assert rec["steps"] == mp4[0] - 1 - 12  # 12 frames: the 1.5 s hold at 8 fps
    with Image.open(tmp_path / "viewer.png") as still:
        assert still.size == (1140, 720)

"""Load a trained agent with the env it was trained on, play it back, record episodes as MP4 or GIF, watch it.

Shared by ``scripts/evaluate.py`` and ``scripts/watch.py``. A *run* is a directory written by
:func:`perceptgym.agents.training.train_run`; its ``config.json`` says which env (and wrappers) the agent needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import Agent, CheckpointError
from perceptgym.agents.env_factory import ImportPolicy, build_env, import_plugins
from perceptgym.agents.loop import choose_action
from perceptgym.agents.registry import agent_entry, checkpoint_agent_name, load_agent
from perceptgym.agents.run_settings import RunSettings
from perceptgym.agents.training import RUN_CONFIG_FORMAT, RUN_FILES_VERSION, RUN_STATE_FORMAT
from perceptgym.supervised.checkpoint import atomic_write, load_json

SHIPPED_AGENTS = {
    "dqn-grid-driving-dict": Path(__file__).parent / "checkpoints" / "dqn_grid_driving_dict",
    "ppo-grid-driving-dict": Path(__file__).parent / "checkpoints" / "ppo_grid_driving_dict",
}
"""agents the project trained and ships (:func:`export_run` folders), with ``evaluation.json`` beside each:
what ``perceptgym evaluate`` printed for it and the commands that made it"""
CHECKPOINT_NAMES = (
    "model.npz",
    "model.pt",
    "model.zip",  # SB3's own format (older perceptgym runs): loads only with trust_checkpoint
    "checkpoints/state.json",  # names the last checkpoint of a run that has not finished
    "checkpoints/last.npz",  # older runs named it so
    "checkpoints/last.pt",
    "checkpoints/last.zip",
)


@dataclass(frozen=True)
class LoadedRun:
    agent: Agent
    env: gym.Env
    env_id: str
    checkpoint: Path
    run_settings: dict[str, Any]


def _find_checkpoint(run_dir: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        path = run_dir / name
        if not path.is_file():
            continue
        if path.name != "state.json":
            return path
        state = load_json(path, RUN_STATE_FORMAT, RUN_FILES_VERSION, headerless=True)
        named = state.get("checkpoint") if isinstance(state, dict) else None
        if not isinstance(named, str) or Path(named).name != named or not (path.parent / named).is_file():
            raise CheckpointError(f"{path}: names no checkpoint file in {path.parent} (checkpoint={named!r})")
        return path.parent / named
    raise CheckpointError(f"{run_dir}: no checkpoint ({', '.join(CHECKPOINT_NAMES)})")


def _find_config(checkpoint: Path) -> Path | None:
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    return None


def load_run(
    path: str | Path,
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    render_mode: str | None = None,
    trust_checkpoint: bool = False,
    trust_plugins: bool = False,
) -> LoadedRun:
    """The agent of a run directory (or checkpoint file) and a fresh env for it.

    Args:
        path: a run directory, or a checkpoint inside one, or a checkpoint anywhere (then give ``env_id``).
        env_id: play on this env instead of the run's (its spaces must match the checkpoint's).
        env_kwargs: replace keys of the run's ``env_kwargs`` (e.g. another digit source).
        render_mode: ``"human"`` or ``"rgb_array"`` for watching or recording.
        trust_checkpoint: let an SB3 ``.zip`` (perceptgym's format before its safe ``.pt``) load; SB3 unpickles
            it, which can run code from the file.
        trust_plugins: import any module the run's ``config.json`` names (plug-ins, env and wrapper modules);
            without it only perceptgym's and Gymnasium's are imported (see
            :class:`perceptgym.agents.env_factory.ImportPolicy`).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint")
    checkpoint = _find_checkpoint(path) if path.is_dir() else path
    config_path = _find_config(checkpoint)
    config: dict[str, Any] = {}
    policy = None
    if config_path is not None:
        config = load_json(config_path, RUN_CONFIG_FORMAT, RUN_FILES_VERSION, headerless=True)
        if not isinstance(config, dict):
            raise CheckpointError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
        policy = ImportPolicy(config_path, trust=trust_plugins, run_dir=config_path.parent)
        plugins = config.get("plugins", [])
        if not isinstance(plugins, list):
            raise CheckpointError(f"{config_path}: plugins={plugins!r} must be a list of module names")
        import_plugins(plugins, policy)
    try:
        settings = RunSettings.from_mapping(config.get("run_settings")).env_settings()
    except ValueError as e:
        raise CheckpointError(f"{config_path}: bad run_settings ({e})") from e
    if env_kwargs:
        settings["env_kwargs"] = {**settings["env_kwargs"], **env_kwargs}
    if env_id is not None and policy is not None and ":" in env_id:  # the caller's own choice of env
        policy = dataclasses.replace(policy, allowed=policy.allowed | {env_id.partition(":")[0]})
    env_id = env_id or config.get("env_id")
    if env_id is None:
        raise ValueError(f"{path}: no config.json next to this checkpoint; pass the env id (--env)")
    if not isinstance(env_id, str):
        raise CheckpointError(f"{config_path}: env_id={env_id!r} must be a string")
    kind = agent_entry(checkpoint_agent_name(checkpoint)).kind
    env = build_env(env_id, settings, tabular=kind == "tabular", render_mode=render_mode, policy=policy)
    try:
        agent = load_agent(checkpoint, env.observation_space, env.action_space, trust_checkpoint=trust_checkpoint)
    except BaseException:
        env.close()
        raise
    return LoadedRun(agent, env, env_id, checkpoint, settings)


def record_episode(
    env: gym.Env,
    agent: Agent,
    write: Callable[[np.ndarray], Any],
    *,
    seed: int | None = None,
    max_steps: int = 10_000,
    hold_frames: int = 0,
) -> tuple[int, float]:
    """Plays one greedy episode, giving each frame (``env.render()``, ``rgb_array`` mode) to ``write`` as it is drawn.

    ``write`` is usually :meth:`VideoWriter.write`, so that no frame is kept; returns (frames written, return). The
    last frame is given ``hold_frames`` more times, so that a video shows how the episode ended (the event drawn
    on it) for a moment instead of cutting to the next one.
    """
    if env.render_mode != "rgb_array":
        raise ValueError(f"recording needs render_mode='rgb_array', the env has {env.render_mode!r}")
    if hold_frames < 0:
        raise ValueError(f"hold_frames={hold_frames} must be >= 0")
    obs, info = env.reset(seed=seed)
    frame = np.asarray(env.render())
    write(frame)
    n, total = 1, 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(choose_action(agent, env, obs, info))
        frame = np.asarray(env.render())
        write(frame)
        n, total = n + 1, total + float(reward)
        if terminated or truncated:
            break
    for _ in range(hold_frames):
        write(frame)
    return n + hold_frames, total


VIDEO_SUFFIXES = (".mp4", ".gif")


def video_path(path: str | Path) -> Path:
    """``path`` if it names a video format we write (by suffix), else a ValueError naming it."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unknown video format {path.suffix!r}; use one of {', '.join(VIDEO_SUFFIXES)}")
    return path


class VideoWriter:
    """Writes H×W×3 uint8 frames, one size, as an MP4 (H.264) or a looping GIF (by ``path``'s suffix) as they come.

    Use it as a context manager: the file appears, atomically (a temporary file in the same folder, renamed), when
    the block ends without an exception; an exception leaves no file. MP4 goes frame by frame to the ffmpeg that
    ships inside the ``imageio-ffmpeg`` wheel (no system ffmpeg), so memory stays that of one frame. A GIF is
    written by Pillow at the end (it compares every frame with the one before to store only what changed): each
    frame is kept palettised as Pillow would make it (one byte a pixel, a third of the frame) and a frame equal to
    the one before is only counted (it lengthens that frame), so a held last frame costs nothing.
    """

    def __init__(self, path: str | Path, fps: float = 10):
        self.path = video_path(path)
        if not fps > 0:
            raise ValueError(f"fps={fps} must be > 0")
        self.fps, self.frames = fps, 0
        self.shape: tuple[int, ...] | None = None
        self._gif = self.path.suffix.lower() == ".gif"
        self._images: list[Any] = []  # GIF: palettised frames
        self._durations: list[int] = []  # GIF: how many frames each of them stands for
        self._last: np.ndarray | None = None
        self._ffmpeg: Any = None
        self._tmp: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames written."""
        if self.shape is None:
            raise ValueError("no frames written yet")
        return self.shape[1], self.shape[0]

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if self.shape is None:
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must all be (H, W, 3) of one size, got shape {frame.shape}")
            self.shape = frame.shape
        elif frame.shape != self.shape:
            raise ValueError(
                f"frames must all be (H, W, 3) of one size: frame {self.frames} is {frame.shape}, "
                f"the first was {self.shape}"
            )
        frame = frame.astype(np.uint8, copy=False)
        if self._gif:
            self._add_gif_frame(frame)
        else:
            self._send_mp4_frame(frame)
        self.frames += 1

    def _add_gif_frame(self, frame: np.ndarray) -> None:
        from PIL import Image

        if self._last is not None and np.array_equal(frame, self._last):
            self._durations[-1] += 1
            return
        # Pillow's own conversion of an RGB frame for a GIF (GifImagePlugin._normalize_mode): the same file.
        self._images.append(Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE))
        self._durations.append(1)
        self._last = frame.copy()

    def _send_mp4_frame(self, frame: np.ndarray) -> None:
        h, w, _ = frame.shape
        pad = ((0, h % 2), (0, w % 2), (0, 0))  # yuv420p, the pixel format every player reads, needs even sides
        if self._ffmpeg is None:
            import imageio_ffmpeg

            self.path.parent.mkdir(parents=True, exist_ok=True)
            # ffmpeg writes a file by name: a hidden one beside the target, copied into place by atomic_write.
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.mp4", dir=self.path.parent)
            os.close(fd)
            self._ffmpeg = imageio_ffmpeg.write_frames(
                self._tmp,
                (w + w % 2, h + h % 2),
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                macro_block_size=2,
                quality=8,
                ffmpeg_log_level="error",
            )
            self._ffmpeg.send(None)  # start ffmpeg
        self._ffmpeg.send(np.ascontiguousarray(np.pad(frame, pad, mode="edge") if any(pad[0] + pad[1]) else frame))

    def close(self) -> Path:
        """Finishes the file and puts it at ``path`` (a ValueError if no frame was written)."""
        try:
            if not self.frames:
                raise ValueError("no frames to write")
            if self._gif:
                return self._write_gif()
            self._ffmpeg.close()
            self._ffmpeg = None
            with open(self._tmp, "rb") as src:
                return atomic_write(self.path, lambda f: shutil.copyfileobj(src, f))
        finally:
            self.abort()

    def _write_gif(self) -> Path:
        step = max(1, round(1000 / self.fps))  # [ms] a GIF times its frames in milliseconds
        durations = [n * step for n in self._durations]
        first, rest = self._images[0], self._images[1:]
        options = {"format": "GIF", "save_all": True, "append_images": rest, "loop": 0}
        return atomic_write(self.path, lambda f: first.save(f, duration=durations, **options))

    def abort(self) -> None:
        """Stops without writing ``path`` (what an exception in the ``with`` block does); removes the temporary file."""
        if self._ffmpeg is not None:
            with contextlib.suppress(Exception):
                self._ffmpeg.close()
            self._ffmpeg = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None
        self._images, self._durations, self._last = [], [], None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_video(frames: Iterable[np.ndarray], path: str | Path, fps: float = 10) -> Path:
    """Writes ``frames`` (H×W×3 uint8, one size) as an MP4 (H.264) or a looping GIF, chosen by ``path``'s suffix.

    ``frames`` may be any iterable (a generator keeps them out of memory); see :class:`VideoWriter`.
    """
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def video_info(path: str | Path) -> tuple[int, tuple[int, int], float]:
    """(frame count, (width, height), frames per second) of an MP4 or GIF, read back from the file.

    A GIF stores a run of identical frames (a held last frame) as one frame shown longer, so its count is of
    the frames that differ from the one before; its rate is that of its shortest frame, in the whole
    hundredths of a second GIF timing has.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such video")
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            durations = [frame.info.get("duration") or 100 for frame in ImageSequence.Iterator(im)]
            return len(durations), im.size, 1000 / min(durations)
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    n = sum(1 for _ in reader)
    return n, tuple(meta["size"]), float(meta["fps"])


# ---- watching ---------------------------------------------------------------------------------------------

PAUSED_FPS = 30  # [frames/s] redraws while paused or holding: the window stays responsive
MIN_FPS, MAX_FPS = 0.25, 240.0
WATCH_KEYS = {
    "space": "pause",
    "p": "pause",
    "right": "step",
    ".": "step",
    "+": "faster",
    "=": "faster",
    "[+]": "faster",
    "-": "slower",
    "[-]": "slower",
    "q": "quit",
    "escape": "quit",
}


@dataclass
class WatchControls:
    """The keys of ``perceptgym watch``: space pauses, right arrow steps one frame while paused, +/- change the
    speed, q quits. Needs no window, so tests drive it with key names (``pygame.key.name`` spelling)."""

    fps: float
    paused: bool = False
    quit: bool = False
    _steps: int = 0

    def handle_key(self, name: str) -> str | None:
        """Applies a key; returns its command (pause, step, faster, slower, quit), None for other keys."""
        command = WATCH_KEYS.get(name.lower())
        if command == "pause":
            self.paused = not self.paused
        elif command == "step":
            if self.paused:
                self._steps += 1
            else:  # the first right arrow pauses, so that the next ones step
                self.paused = True
        elif command == "faster":
            self.fps = min(MAX_FPS, self.fps * 2)
        elif command == "slower":
            self.fps = max(MIN_FPS, self.fps / 2)
        elif command == "quit":
            self.quit = True
        return command

    def advance(self) -> bool:
        """Whether the loop may take the next step now (running, or a single step was asked for)."""
        if not self.paused:
            return True
        if self._steps:
            self._steps -= 1
            return True
        return False

    @property
    def frame_rate(self) -> float:
        return PAUSED_FPS if self.paused else self.fps

    def footer(self) -> str:
        if self.paused:
            return "PAUSED · right: one step · space: go on · +/-: speed · q: quit"
        return f"{self.fps:g} steps/s · space: pause · right: one step · +/-: speed · q: quit"


def watch_episodes(
    env: gym.Env,
    agent: Agent,
    *,
    episodes: int,
    seed: int | None = None,
    fps: float = 8,
    end_hold: float = 1.5,
    window_size: tuple[int, int] | None = None,
    log: Callable[[str], Any] | None = None,
) -> list[float]:
    """Shows ``agent`` playing ``env`` (``rgb_array`` mode) in a window with the :class:`WatchControls`.

    After each episode its last frame (the event that ended it) stays on screen for ``end_hold`` seconds
    (paused time does not count). Returns the returns of the episodes that finished; closing the window or q
    ends early. The window's events are pumped on every frame, paused or not. ``window_size`` sizes the
    window of envs that draw their own frames (perceptgym's take it as an env setting, see
    :func:`perceptgym.envs.viewer.set_window_size`).
    """
    from perceptgym.envs.viewer import Viewer

    if end_hold < 0:
        raise ValueError(f"end_hold={end_hold} must be >= 0")
    if not fps > 0:
        raise ValueError(f"fps={fps} must be > 0")
    viewer = Viewer(env, "perceptgym watch", window_size)
    controls = WatchControls(float(fps))

    def frame() -> bool:
        for name in viewer.take_keys():
            controls.handle_key(name)
        if controls.quit or viewer.closed:
            return False
        viewer.draw(controls.frame_rate, controls.footer())
        return not viewer.closed

    returns: list[float] = []
    try:
        obs, info = env.reset(seed=seed)
        for i in range(episodes):
            total, done = 0.0, False
            while not done:
                if not frame():
                    return returns
                if controls.advance():
                    obs, reward, terminated, truncated, info = env.step(choose_action(agent, env, obs, info))
                    total += float(reward)
                    done = terminated or truncated
            held = 0.0
            while held < end_hold:  # the last event stays on screen for a moment
                if not frame():
                    return returns
                if not controls.paused:
                    held += 1 / controls.frame_rate
                elif controls.advance():  # a single step while paused skips the rest of the hold
                    break
            returns.append(total)
            if log is not None:
                log(f"episode {i}: return {total:.2f}")
            if i + 1 < episodes:
                obs, info = env.reset()
    finally:
        viewer.close()
    return returns


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """A trained run as a small folder to ship: its ``config.json`` and its agent as ``model.*``.

    SB3 agents are saved for inference (the policy alone, float16 weights: about a quarter of a training
    checkpoint); other agents as they are. ``perceptgym evaluate``, ``watch`` and :func:`load_run` open the
    folder like the run directory. The run's own files are not changed; ``out`` must not hold a run already.
    """
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir}: no such run directory or checkpoint")
    checkpoint = _find_checkpoint(run_dir) if run_dir.is_dir() else run_dir
    config = _find_config(checkpoint)
    if config is None:
        raise CheckpointError(f"{run_dir}: no config.json beside the checkpoint (not a run directory?)")
    if any((out / name).exists() for name in (*CHECKPOINT_NAMES, "config.json")):
        raise CheckpointError(f"{out}: holds a run already; export into a new folder")
    run = load_run(checkpoint)
    try:
        sb3 = agent_entry(run.agent.name).kind == "sb3"
        model = run.agent.save(out / "model", inference=True) if sb3 else run.agent.save(out / "model")
    finally:
        run.env.close()
    data = config.read_bytes()
    atomic_write(out / "config.json", lambda f: f.write(data))
    return model

"""The viewer's pictures in the README and the docs, regenerated from the renderer (``perceptgym pictures``).

* ``viewer.png``: GridDriving in ``perceived`` mode at the default size, halfway through a trip driven by the
  exact optimal policy (value iteration), on unseen handwriting (MNIST test digits) read by the shipped CNN.
* ``events.png``: the four events as the viewer draws them (collision, red light, wrong stop, arrival), each a
  scripted scene (:mod:`perceptgym.envs.grid_driving.scenes`) drawn at half the default size.
* ``digit_bandit.png``: DigitBandit's viewer after a round a uniform-random agent answered wrong.

Every frame is drawn at the size it is shown at; nothing is scaled. Same seed, same pictures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perceptgym.agents.experiments.files import write_atomic

PICTURES = ("viewer.png", "events.png", "digit_bandit.png")
EVENT_SIZE = (570, 360)  # [px] each event frame: half the default, so the four fit one default-sized picture
GAP = 4  # [px] between the event frames
DIGIT_SOURCE = "mnist-test"


def _save_png(path: Path, frame: np.ndarray) -> Path:
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    return write_atomic(path, lambda f: image.save(f, format="PNG", optimize=True))


def viewer_frame(seed: int = 1, reader: str = "cnn") -> np.ndarray:
    """GridDriving (perceived, default size) halfway through an optimal trip."""
    from perceptgym.envs.grid_driving import GridDrivingEnv

    env = GridDrivingEnv(obs_mode="perceived", digit_source=DIGIT_SOURCE, reader=reader, render_mode="rgb_array")
    _, q = env.value_iteration(gamma=0.99)
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    for _ in range(200):
        obs, _, terminated, _, _ = env.step(int(np.argmax(q[obs])))
        frames.append(env.render())
        if terminated:
            break
    env.close()
    return frames[len(frames) // 2]


def event_frames(reader: str = "cnn") -> dict[str, np.ndarray]:
    """One frame per event (scenes.EVENTS order), each drawn at EVENT_SIZE."""
    from perceptgym.envs.grid_driving import GridDrivingEnv
    from perceptgym.envs.grid_driving.scenes import EVENTS, find_scene, play_scene

    env = GridDrivingEnv(
        obs_mode="perceived", digit_source=DIGIT_SOURCE, reader=reader, render_mode="rgb_array", window_size=EVENT_SIZE
    )
    frames = {}
    for event in EVENTS:
        play_scene(env, find_scene(env, event))
        frames[event] = env.render()
    env.close()
    return frames


def grid(frames: list[np.ndarray], columns: int = 2, gap: int = GAP, fill: int = 255) -> np.ndarray:
    """Frames of one size side by side, ``columns`` per row, ``gap`` pixels apart."""
    h, w, _ = frames[0].shape
    rows = -(-len(frames) // columns)
    out = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), fill, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = frame
    return out


def bandit_frame(seed: int = 0, rounds: int = 30, reader: str = "cnn") -> np.ndarray:
    """DigitBandit (perceived, default size) after ``rounds`` of a uniform-random agent, ending on a wrong answer."""
    from perceptgym.envs.digit_bandit.env import DigitBanditEnv

    env = DigitBanditEnv(obs_mode="perceived", digit_source=DIGIT_SOURCE, reader=reader, render_mode="rgb_array")
    env_seed, agent_seed = np.random.SeedSequence(seed).spawn(2)  # one stream each: the env's draws are not the agent's
    rng = np.random.default_rng(agent_seed)
    env.reset(seed=int(env_seed.generate_state(1)[0]))
    for _ in range(rounds - 1):
        env.step(int(rng.integers(10)))
        env.reset()
    label = env.snapshot()["optimal_action"]
    env.step(int((label + 1 + rng.integers(9)) % 10))  # a wrong answer: the picture shows both colours
    frame = env.render()
    env.close()
    return frame


def make_pictures(out: str | Path = "docs", reader: str = "cnn") -> list[Path]:
    """Writes PICTURES into ``out``; returns their paths."""
    out = Path(out)
    events = event_frames(reader)
    return [
        _save_png(out / "viewer.png", viewer_frame(reader=reader)),
        _save_png(out / "events.png", grid(list(events.values()))),
        _save_png(out / "digit_bandit.png", bandit_frame(reader=reader)),
    ]

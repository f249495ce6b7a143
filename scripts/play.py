"""Drive GridDriving yourself with the keyboard.

Keys (also shown under the picture): up arrow (or w) forward, left/right arrows (or a/d) turn, space wait,
down arrow (or enter) stop here, r new trip, q or escape quit. The side panel shows the trip card, what the
reader read (``--obs-mode perceived``), the step count, the return so far and the last step's event, which
stays on screen for ``--end-pause-ms`` when a trip ends. The window can be resized; ``--window-size`` sets
its first size (default: fits a 1280x800 screen).

    python -m perceptgym.play --map town --digit-source mnist-test --obs-mode perceived
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym

import perceptgym.envs  # noqa: F401 - registers perceptgym/GridDriving-v0
from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.envs.grid_driving.core import Action
from perceptgym.envs.viewer import Viewer, check_window_size

Command = Action | Literal["reset", "quit"] | None

#: Key names as ``pygame.key.name`` spells them.
KEY_ACTIONS: dict[str, Action] = {
    "up": Action.FORWARD,
    "w": Action.FORWARD,
    "left": Action.LEFT,
    "a": Action.LEFT,
    "right": Action.RIGHT,
    "d": Action.RIGHT,
    "space": Action.WAIT,
    "down": Action.STOP,
    "return": Action.STOP,
    "enter": Action.STOP,
}
KEY_COMMANDS: dict[str, Literal["reset", "quit"]] = {"r": "reset", "q": "quit", "escape": "quit"}
#: The key help shown under the picture.
KEYS_HELP = "up/w: forward · left/right: turn · space: wait · down/enter: stop · r: new trip · q: quit"


@dataclass
class Args:
    map: str = "small"
    """map: tiny, small, town or procedural"""
    map_seed: int = 0
    """seed of the procedural map"""
    digit_source: str = "mnist-test"
    """handwriting of the card and signs: mnist-train, mnist-test or gan"""
    reader: str = "cnn"
    """reader used in perceived mode: cnn or mlp"""
    obs_mode: Literal["symbolic", "perceived", "pixels", "dict"] = "perceived"
    """what an agent would see; perceived shows the reader's labels in the side panel"""
    n_cars: int = 2
    """other cars on the roads"""
    shuffle_stops: bool = False
    """new stop numbers every trip"""
    seed: int = 0
    """seed of the first trip"""
    keys: str = ""
    """comma-separated key names to play before reading the keyboard (scripted demo / smoke test)"""
    max_frames: int = 0
    """quit after this many frames (0: play until q)"""
    fps: int = 8
    """window frames per second"""
    window_size: tuple[int, int] | None = None
    """WIDTH HEIGHT [px] the picture fits in (default 1280 720); the window can be resized too"""
    end_pause_ms: int = 1500
    """how long the end of a trip (its event) stays on screen before the next one [ms]"""

    def __post_init__(self) -> None:
        minimums = {"map_seed": 0, "n_cars": 0, "seed": 0, "max_frames": 0, "fps": 1, "end_pause_ms": 0}
        check_settings(self, at_least=minimums)


class Controller:
    """Maps key names to actions or commands; keeps the score. Needs no window, so tests can drive it."""

    def __init__(self) -> None:
        self.episode_return, self.episodes = 0.0, 0

    @staticmethod
    def handle_key(name: str) -> Command:
        """The action or command for a key name (``pygame.key.name`` spelling); None for other keys."""
        name = name.lower()
        if name in KEY_ACTIONS:  # not `get(...) or ...`: Action.FORWARD is 0, which is falsy
            return KEY_ACTIONS[name]
        return KEY_COMMANDS.get(name)

    def record(self, reward: float, terminated: bool, truncated: bool, info: dict) -> str | None:
        """Adds a step's reward; returns an end-of-trip message when the episode ended."""
        self.episode_return += float(reward)
        if not (terminated or truncated):
            return None
        self.episodes += 1
        outcome = info.get("event", "time limit") if terminated else "time limit"
        message = f"trip {self.episodes}: {outcome}, return {self.episode_return:+.2f}"
        self.episode_return = 0.0
        return message


def make_env(args: Args) -> gym.Env:
    return gym.make(
        "perceptgym/GridDriving-v0",
        render_mode="rgb_array",  # the Viewer shows the frames and reads the keys
        window_size=check_window_size(args.window_size, "--window-size"),
        map=args.map,
        map_seed=args.map_seed,
        digit_source=args.digit_source,
        reader=args.reader,
        obs_mode=args.obs_mode,
        n_cars=args.n_cars,
        shuffle_stops=args.shuffle_stops,
    )


def play(args: Args, env: gym.Env | None = None) -> Controller:
    """Runs the keyboard loop on ``env`` (by default made from ``args``; ``rgb_array`` render mode)."""
    if args.fps < 1 or args.end_pause_ms < 0:
        raise ValueError(f"--fps must be >= 1 and --end-pause-ms >= 0, got {args.fps} and {args.end_pause_ms}")
    env = make_env(args) if env is None else env
    viewer = Viewer(env, "perceptgym play")
    controller = Controller()
    env.reset(seed=args.seed)
    scripted = [k.strip() for k in args.keys.split(",") if k.strip()]
    frames = 0
    try:
        while True:
            viewer.draw(args.fps, KEYS_HELP)  # draws and pumps window events every frame, keys or not
            frames += 1
            if viewer.closed or (args.max_frames and frames >= args.max_frames):
                return controller
            names = [scripted.pop(0)] if scripted else []
            for name in names + viewer.take_keys():
                command = controller.handle_key(name)
                if command == "quit":
                    return controller
                if command == "reset":
                    controller.episode_return = 0.0
                    env.reset()
                elif command is not None:
                    _, reward, terminated, truncated, info = env.step(command)
                    message = controller.record(reward, terminated, truncated, info)
                    if message:
                        print(message, flush=True)
                        if not _hold(viewer, args):  # the player sees how the trip ended
                            return controller
                        env.reset()
                        break  # keys pressed during the trip's end are not for the next trip
    finally:
        viewer.close()
        env.close()


def _hold(viewer: Viewer, args: Args) -> bool:
    """Shows the last frame for ``end_pause_ms``, pumping events; False when the player quit meanwhile."""
    for _ in range(round(args.end_pause_ms * args.fps / 1000)):
        viewer.draw(args.fps, KEYS_HELP)
        if viewer.closed or any(Controller.handle_key(k) == "quit" for k in viewer.take_keys()):
            return False
    return True


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym play") -> int:
    return run_program(play, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

"""Drive GridDriving yourself with the keyboard.

Keys: up arrow (or w) forward, left/right arrows (or a/d) turn, space wait, down arrow (or enter) stop
here, r new trip, q or escape quit. The window's side panel shows the trip card, what the reader read
(``--obs-mode perceived``), the step count and the return so far.

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
    end_pause_ms: int = 600
    """pause after a trip ends so you can see how it ended [ms]"""

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
        render_mode="human",
        render_fps=args.fps,
        map=args.map,
        map_seed=args.map_seed,
        digit_source=args.digit_source,
        reader=args.reader,
        obs_mode=args.obs_mode,
        n_cars=args.n_cars,
        shuffle_stops=args.shuffle_stops,
    )


def play(args: Args, env: gym.Env | None = None) -> Controller:
    """Runs the keyboard loop on ``env`` (by default made from ``args`` in human render mode)."""
    env = make_env(args) if env is None else env
    import pygame  # after the env made the window

    controller = Controller()
    env.reset(seed=args.seed)
    scripted = [k.strip() for k in args.keys.split(",") if k.strip()]
    frames = 0
    try:
        while True:
            names = [scripted.pop(0)] if scripted else []
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    names.append("q")
                elif event.type == pygame.KEYDOWN:
                    names.append(pygame.key.name(event.key))
            for name in names:
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
                        env.render()
                        pygame.time.wait(args.end_pause_ms)  # let the player see how the trip ended
                        env.reset()
            env.render()  # redraws and pumps window events at render_fps even when no key is pressed
            frames += 1
            if args.max_frames and frames >= args.max_frames:
                return controller
    finally:
        env.close()


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym play") -> int:
    return run_program(play, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

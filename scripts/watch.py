"""Watch a trained agent play in the pygame window, or record it headless as a GIF.

``python -m perceptgym.watch runs/Taxi-v4__q_learning__0__1700000000 --episodes 3``
``python -m perceptgym.watch runs/... --record taxi.gif`` (no window; works without a display)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from perceptgym._cli import parse_json_object, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.loop import run_episode
from perceptgym.agents.playback import load_run, record_episode, save_gif


@dataclass
class Args:
    path: tyro.conf.Positional[str]
    """a run directory, or a checkpoint file (.npz / .pt)"""
    episodes: int = 3
    """episodes to play"""
    seed: int = 0
    """seed of the first episode"""
    env: str | None = None
    """play on this env instead of the run's (spaces must match)"""
    env_kwargs: str | None = None
    """JSON object replacing keys of the run's env_kwargs"""
    record: str | None = None
    """record to this GIF instead of opening a window"""
    fps: int = 10
    """GIF frame rate"""
    trust_checkpoint: bool = False
    """allow an SB3 .zip checkpoint (written by older perceptgym): SB3 unpickles it, which runs any code the file
    holds, so use this only for a file you made yourself (re-save it to get the safe .pt format)"""
    trust_plugins: bool = False
    """import the modules the run's config.json names (plug-ins, env and wrapper modules other than perceptgym's
    and Gymnasium's); importing a module runs its code, so use this only for a run directory you trust"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"episodes": 1, "seed": 0, "fps": 1})


def watch(args: Args) -> None:
    env_kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    run = load_run(
        args.path,
        env_id=args.env,
        env_kwargs=env_kwargs,
        render_mode="rgb_array" if args.record else "human",
        trust_checkpoint=args.trust_checkpoint,
        trust_plugins=args.trust_plugins,
    )
    frames = []
    for i in range(args.episodes):
        if args.record:
            episode_frames, ep_return = record_episode(run.env, run.agent, seed=args.seed + i)
            frames += episode_frames
        else:  # the env draws itself in "human" mode on every step
            ep_return = run_episode(run.env, run.agent, learn=False, seed=args.seed + i)[0]
        print(f"episode {i}: return {ep_return:.2f}")
    run.env.close()
    if args.record:
        print(f"recorded {save_gif(frames, args.record, args.fps)} ({len(frames)} frames)")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym watch") -> int:
    return run_program(watch, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

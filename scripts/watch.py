"""Watch a trained agent play in the pygame window, or record it headless as a GIF.

``python -m perceptgym.watch runs/Taxi-v4__q_learning__0__1700000000 --episodes 3``
``python -m perceptgym.watch runs/... --record taxi.gif`` (no window; works without a display)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from perceptgym.agents.base import CheckpointError
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


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym watch") -> int:
    args = tyro.cli(Args, args=None if argv is None else list(argv), prog=prog, description=__doc__)
    try:
        env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else None
        run = load_run(
            args.path,
            env_id=args.env,
            env_kwargs=env_kwargs,
            render_mode="rgb_array" if args.record else "human",
            trust_checkpoint=args.trust_checkpoint,
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
    except (ValueError, CheckpointError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

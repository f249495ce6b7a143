"""Evaluate a trained agent: mean ± std return and success rate over N greedy episodes, optional video.

``python -m perceptgym.evaluate runs/Taxi-v4__q_learning__0__1700000000 --episodes 2000 --video taxi.mp4``

Success is ``info["is_success"]`` where the env reports it, else a positive reward on termination (see
:func:`perceptgym.agents.loop.is_success`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from perceptgym.agents.base import CheckpointError
from perceptgym.agents.loop import evaluate
from perceptgym.agents.playback import load_run, record_episode, save_video, video_path
from perceptgym.envs.viewer import check_window_size, set_window_size


@dataclass
class Args:
    path: tyro.conf.Positional[str]
    """a run directory, or a checkpoint file (.npz / .pt)"""
    episodes: int = 100
    """greedy evaluation episodes"""
    seed: int = 0
    """seeds the first reset (the evaluation is reproducible)"""
    env: str | None = None
    """evaluate on this env instead of the run's (spaces must match)"""
    env_kwargs: str | None = None
    """JSON object replacing keys of the run's env_kwargs, e.g. '{"digit_source": "mnist-test"}'"""
    video: str | None = None
    """write the first greedy episode(s) to this video: .mp4 (H.264) or .gif, by its extension"""
    video_episodes: int = 1
    """episodes in the video"""
    fps: float = 8
    """video frame rate"""
    window_size: tuple[int, int] | None = None
    """WIDTH HEIGHT [px] the video's frames fit in (perceptgym envs; default 1280 720)"""
    end_hold: float = 1.5
    """seconds the last frame of each episode stays in the video"""
    trust_checkpoint: bool = False
    """allow an SB3 .zip checkpoint (written by older perceptgym): SB3 unpickles it, which runs any code the file
    holds, so use this only for a file you made yourself (re-save it to get the safe .pt format)"""


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym evaluate") -> int:
    args = tyro.cli(Args, args=None if argv is None else list(argv), prog=prog, description=__doc__)
    try:
        if args.video:  # a wrong extension or size fails now, not after the evaluation
            video_path(args.video)
            check_window_size(args.window_size, "--window-size")
        env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else None
        run = load_run(args.path, env_id=args.env, env_kwargs=env_kwargs, trust_checkpoint=args.trust_checkpoint)
        result = evaluate(run.agent, run.env, args.episodes, seed=args.seed)
        print(f"{run.env_id} · {run.checkpoint}")
        print(f"mean {result}")
        if args.video:
            video = load_run(
                args.path,
                env_id=args.env,
                env_kwargs=env_kwargs,
                render_mode="rgb_array",
                trust_checkpoint=args.trust_checkpoint,
            )
            if args.window_size is not None:
                set_window_size(video.env, args.window_size)
            frames = []
            hold = round(args.end_hold * args.fps)
            for i in range(args.video_episodes):
                frames += record_episode(video.env, video.agent, seed=args.seed + i, hold_frames=hold)[0]
            print(f"video: {save_video(frames, args.video, args.fps)} ({len(frames)} frames)")
    except (ValueError, CheckpointError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

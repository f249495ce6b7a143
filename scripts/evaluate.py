"""Evaluate a trained agent: mean ± std return and success rate over N greedy episodes, optional video.

``python -m perceptgym.evaluate runs/Taxi-v4__q_learning__0__1700000000 --episodes 2000 --video taxi.mp4``

Success is ``info["is_success"]`` where the env reports it, else a positive reward on termination (see
:func:`perceptgym.agents.loop.is_success`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from perceptgym._cli import parse_json_object, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.loop import evaluate
from perceptgym.agents.playback import VideoWriter, load_run, record_episode, video_path
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
    trust_plugins: bool = False
    """import the modules the run's config.json names (plug-ins, env and wrapper modules other than perceptgym's
    and Gymnasium's); importing a module runs its code, so use this only for a run directory you trust"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"episodes": 1, "seed": 0, "video_episodes": 1, "fps": 1})


def run(args: Args) -> None:
    if args.video:  # a wrong extension or size fails now, not after the evaluation
        video_path(args.video)
        check_window_size(args.window_size, "--window-size")
    if args.end_hold < 0:
        raise ValueError(f"--end-hold must be >= 0, got {args.end_hold}")
    env_kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    trust = {"trust_checkpoint": args.trust_checkpoint, "trust_plugins": args.trust_plugins}
    loaded = load_run(args.path, env_id=args.env, env_kwargs=env_kwargs, **trust)
    try:
        result = evaluate(loaded.agent, loaded.env, args.episodes, seed=args.seed)
    finally:
        loaded.env.close()
    print(f"{loaded.env_id} · {loaded.checkpoint}")
    print(f"mean {result}")
    if args.video:
        video = load_run(args.path, env_id=args.env, env_kwargs=env_kwargs, render_mode="rgb_array", **trust)
        if args.window_size is not None:
            set_window_size(video.env, args.window_size)
        hold = round(args.end_hold * args.fps)
        try:
            with VideoWriter(args.video, args.fps) as writer:
                for i in range(args.video_episodes):
                    record_episode(video.env, video.agent, writer.write, seed=args.seed + i, hold_frames=hold)
        finally:
            video.env.close()
        print(f"video: {writer.path} ({writer.frames} frames)")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym evaluate") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

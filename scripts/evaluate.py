"""Evaluate a trained agent: mean ± std return and success rate over N greedy episodes, optional video.

``perceptgym evaluate runs/Taxi-v4__q_learning__0__1700000000 --episodes 2000 --video taxi.mp4``
``perceptgym evaluate runs/perceptgym-GridDriving-v0__ppo__0__1700000000 --digit-source mnist-test --json``

Success is ``info["is_success"]`` where the env reports it, else a positive reward on termination (see
:func:`perceptgym.agents.loop.is_success`). ``--json`` prints the result as one JSON object on stdout (and nothing
else there), for scripts to read.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from perceptgym._cli import PlaybackArgs, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.loop import EvalResult, evaluate
from perceptgym.agents.playback import VideoWriter, record_episode, video_path
from perceptgym.envs.viewer import set_window_size


@dataclass
class Args(PlaybackArgs):
    episodes: int = 100
    """greedy evaluation episodes"""
    seed: int = 0
    """seeds the first reset (the evaluation is reproducible)"""
    json: bool = False
    """print the result as one JSON object on stdout (env_id, checkpoint, env_kwargs, digit_source, episodes,
    seed, mean_return, std_return, success_rate, mean_length, and video and video_frames with --video)"""
    video: str | None = None
    """write the first greedy episode(s) to this video: .mp4 (H.264) or .gif, by its extension"""
    video_episodes: int = 1
    """episodes in the video"""
    fps: float = 8
    """video frame rate"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_settings(self, at_least={"episodes": 1, "seed": 0, "video_episodes": 1, "fps": 1})
        if self.video:  # a wrong extension fails now, not after the evaluation
            video_path(self.video)


def evaluation(args: Args) -> tuple[EvalResult, dict[str, Any]]:
    """The evaluation (and the video), and it as the JSON object ``--json`` prints."""
    loaded = args.load()
    try:
        result = evaluate(loaded.agent, loaded.env, args.episodes, seed=args.seed)
    finally:
        loaded.env.close()
    out: dict[str, Any] = {
        "env_id": loaded.env_id,
        "checkpoint": str(loaded.checkpoint),
        "env_kwargs": loaded.run_settings.get("env_kwargs") or {},
        # the handwriting the episodes showed: the env's registered default unless the run or a flag chose one
        "digit_source": _digit_source(loaded.env),
        "episodes": args.episodes,
        "seed": args.seed,
        "mean_return": result.mean_return,
        "std_return": result.std_return,
        "success_rate": result.success_rate,
        "mean_length": result.mean_length,
    }
    if args.video:
        video = args.load(render_mode="rgb_array")
        if args.window_size is not None:
            set_window_size(video.env, args.window_size)
        hold = round(args.end_hold * args.fps)
        try:
            with VideoWriter(args.video, args.fps) as writer:
                for i in range(args.video_episodes):
                    record_episode(video.env, video.agent, writer.write, seed=args.seed + i, hold_frames=hold)
        finally:
            video.env.close()
        out |= {"video": str(writer.path), "video_frames": writer.frames}
    return result, out


def _digit_source(env: gym.Env) -> str | None:
    """The digit source name ``env`` was made with (None: an env without one, or a source given as an object)."""
    source = (env.spec.kwargs if env.spec is not None else {}).get("digit_source")
    return source if isinstance(source, str) else None


def run(args: Args) -> None:
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # whatever a library prints on the way: stdout is the JSON's
            _, out = evaluation(args)
        print(json.dumps(out, allow_nan=False))
        return
    result, out = evaluation(args)
    print(f"{out['env_id']} · {out['checkpoint']}")
    print(f"mean {result}")
    if args.video:
        print(f"video: {out['video']} ({out['video_frames']} frames)")


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym evaluate") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

"""Watch a trained agent play in a pygame window, or record it headless as an MP4 or a GIF.

``perceptgym watch runs/Taxi-v4__q_learning__0__1700000000 --episodes 3``
``perceptgym watch runs/... --record trip.mp4`` (no window; works without a display; .gif for a GIF)

Keys in the window: space pauses, right arrow steps one frame while paused, + and - change the speed, q (or
closing the window) quits. The last frame of each episode stays on screen for ``--end-hold`` seconds, so you
see how it ended; recordings hold it as long. The window can be resized: perceptgym's envs redraw at the new
size (``--window-size`` sets the first), other envs' frames are scaled.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from perceptgym._cli import PlaybackArgs, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.playback import VideoWriter, record_episode, video_path, watch_episodes
from perceptgym.envs.viewer import set_window_size


@dataclass
class Args(PlaybackArgs):
    episodes: int = 3
    """episodes to play"""
    seed: int = 0
    """seed of the first episode"""
    record: str | None = None
    """record to this file instead of opening a window: .mp4 (H.264) or .gif, by its extension"""
    fps: float = 8
    """steps per second in the window (+/- change it) and frames per second of a recording"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_settings(self, at_least={"episodes": 1, "seed": 0, "fps": 1})
        if self.record:  # a wrong extension fails now, not after the episodes
            video_path(self.record)


def run(args: Args) -> None:
    loaded = args.load(render_mode="rgb_array")
    env, agent = loaded.env, loaded.agent
    size = args.window_size
    if size is not None and not set_window_size(env, size) and args.record:
        print(f"note: {loaded.env_id} draws its frames at its own size; --window-size sizes the window only")
    try:
        if args.record:
            hold = round(args.end_hold * args.fps)
            with VideoWriter(args.record, args.fps) as writer:
                for i in range(args.episodes):
                    _, ep_return = record_episode(env, agent, writer.write, seed=args.seed + i, hold_frames=hold)
                    print(f"episode {i}: return {ep_return:.2f}")
            w, h = writer.size
            print(f"recorded {writer.path} ({writer.frames} frames, {w}x{h}, {args.fps:g} fps)")
        else:
            watch_episodes(
                env,
                agent,
                episodes=args.episodes,
                seed=args.seed,
                fps=args.fps,
                end_hold=args.end_hold,
                window_size=size,
                log=print,
            )
    finally:
        env.close()


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym watch") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

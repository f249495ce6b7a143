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

import tyro

from perceptgym._cli import parse_json_object, run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.playback import VideoWriter, load_run, record_episode, video_path, watch_episodes
from perceptgym.envs.viewer import check_window_size, set_window_size


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
    """record to this file instead of opening a window: .mp4 (H.264) or .gif, by its extension"""
    fps: float = 8
    """steps per second in the window (+/- change it) and frames per second of a recording"""
    window_size: tuple[int, int] | None = None
    """WIDTH HEIGHT [px] the picture fits in (perceptgym envs draw at this size; default 1280 720)"""
    end_hold: float = 1.5
    """seconds the last frame of each episode stays on screen (and in a recording)"""
    trust_checkpoint: bool = False
    """allow an SB3 .zip checkpoint (written by older perceptgym): SB3 unpickles it, which runs any code the file
    holds, so use this only for a file you made yourself (re-save it to get the safe .pt format)"""
    trust_plugins: bool = False
    """import the modules the run's config.json names (plug-ins, env and wrapper modules other than perceptgym's
    and Gymnasium's); importing a module runs its code, so use this only for a run directory you trust"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"episodes": 1, "seed": 0, "fps": 1})


def run(args: Args) -> None:
    if args.record:
        video_path(args.record)  # a wrong extension fails now, not after the episodes
    size = check_window_size(args.window_size, "--window-size")
    if not args.fps > 0 or args.end_hold < 0:
        raise ValueError(f"--fps must be > 0 and --end-hold >= 0, got {args.fps} and {args.end_hold}")
    env_kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    try:
        loaded = load_run(
            args.path,
            env_id=args.env,
            env_kwargs=env_kwargs,
            render_mode="rgb_array",
            trust_checkpoint=args.trust_checkpoint,
            trust_plugins=args.trust_plugins,
        )
    except TypeError as e:  # an env_kwargs key the env does not take
        raise ValueError(str(e)) from e
    env, agent = loaded.env, loaded.agent
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

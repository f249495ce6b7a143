"""Load a trained agent with the env it was trained on, play it back, and record episodes as GIFs.

Shared by ``scripts/evaluate.py`` and ``scripts/watch.py``. A *run* is a directory written by
:func:`perceptgym.agents.training.train_run`; its ``config.json`` says which env (and wrappers) the agent needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import Agent, CheckpointError
from perceptgym.agents.env_factory import ImportPolicy, build_env, import_plugins
from perceptgym.agents.registry import agent_entry, checkpoint_agent_name, load_agent
from perceptgym.agents.run_settings import RunSettings
from perceptgym.agents.training import RUN_CONFIG_FORMAT, RUN_FILES_VERSION, RUN_STATE_FORMAT
from perceptgym.supervised.checkpoint import atomic_write, load_json

CHECKPOINT_NAMES = (
    "model.npz",
    "model.pt",
    "model.zip",  # SB3's own format (older perceptgym runs): loads only with trust_checkpoint
    "checkpoints/state.json",  # names the last checkpoint of a run that has not finished
    "checkpoints/last.npz",  # older runs named it so
    "checkpoints/last.pt",
    "checkpoints/last.zip",
)


@dataclass(frozen=True)
class LoadedRun:
    agent: Agent
    env: gym.Env
    env_id: str
    checkpoint: Path
    run_settings: dict[str, Any]


def _find_checkpoint(run_dir: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        path = run_dir / name
        if not path.is_file():
            continue
        if path.name != "state.json":
            return path
        state = load_json(path, RUN_STATE_FORMAT, RUN_FILES_VERSION, headerless=True)
        named = state.get("checkpoint") if isinstance(state, dict) else None
        if not isinstance(named, str) or Path(named).name != named or not (path.parent / named).is_file():
            raise CheckpointError(f"{path}: names no checkpoint file in {path.parent} (checkpoint={named!r})")
        return path.parent / named
    raise CheckpointError(f"{run_dir}: no checkpoint ({', '.join(CHECKPOINT_NAMES)})")


def _find_config(checkpoint: Path) -> Path | None:
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    return None


def load_run(
    path: str | Path,
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    render_mode: str | None = None,
    trust_checkpoint: bool = False,
    trust_plugins: bool = False,
) -> LoadedRun:
    """The agent of a run directory (or checkpoint file) and a fresh env for it.

    Args:
        path: a run directory, or a checkpoint inside one, or a checkpoint anywhere (then give ``env_id``).
        env_id: play on this env instead of the run's (its spaces must match the checkpoint's).
        env_kwargs: replace keys of the run's ``env_kwargs`` (e.g. another digit source).
        render_mode: ``"human"`` or ``"rgb_array"`` for watching or recording.
        trust_checkpoint: let an SB3 ``.zip`` (perceptgym's format before its safe ``.pt``) load; SB3 unpickles
            it, which can run code from the file.
        trust_plugins: import any module the run's ``config.json`` names (plug-ins, env and wrapper modules);
            without it only perceptgym's and Gymnasium's are imported (see
            :class:`perceptgym.agents.env_factory.ImportPolicy`).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint")
    checkpoint = _find_checkpoint(path) if path.is_dir() else path
    config_path = _find_config(checkpoint)
    config: dict[str, Any] = {}
    policy = None
    if config_path is not None:
        config = load_json(config_path, RUN_CONFIG_FORMAT, RUN_FILES_VERSION, headerless=True)
        if not isinstance(config, dict):
            raise CheckpointError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
        policy = ImportPolicy(config_path, trust=trust_plugins, run_dir=config_path.parent)
        plugins = config.get("plugins", [])
        if not isinstance(plugins, list):
            raise CheckpointError(f"{config_path}: plugins={plugins!r} must be a list of module names")
        import_plugins(plugins, policy)
    try:
        settings = RunSettings.from_mapping(config.get("run_settings")).env_settings()
    except ValueError as e:
        raise CheckpointError(f"{config_path}: bad run_settings ({e})") from e
    if env_kwargs:
        settings["env_kwargs"] = {**settings["env_kwargs"], **env_kwargs}
    if env_id is not None and policy is not None and ":" in env_id:  # the caller's own choice of env
        policy = dataclasses.replace(policy, allowed=policy.allowed | {env_id.partition(":")[0]})
    env_id = env_id or config.get("env_id")
    if env_id is None:
        raise ValueError(f"{path}: no config.json next to this checkpoint; pass the env id (--env)")
    if not isinstance(env_id, str):
        raise CheckpointError(f"{config_path}: env_id={env_id!r} must be a string")
    kind = agent_entry(checkpoint_agent_name(checkpoint)).kind
    env = build_env(env_id, settings, tabular=kind == "tabular", render_mode=render_mode, policy=policy)
    try:
        agent = load_agent(checkpoint, env.observation_space, env.action_space, trust_checkpoint=trust_checkpoint)
    except BaseException:
        env.close()
        raise
    return LoadedRun(agent, env, env_id, checkpoint, settings)


def record_episode(
    env: gym.Env, agent: Agent, *, seed: int | None = None, max_steps: int = 10_000
) -> tuple[list[np.ndarray], float]:
    """Frames (``env.render()`` in ``rgb_array`` mode) and return of one greedy episode."""
    if env.render_mode != "rgb_array":
        raise ValueError(f"recording needs render_mode='rgb_array', the env has {env.render_mode!r}")
    obs, _ = env.reset(seed=seed)
    frames, total = [np.asarray(env.render())], 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
        frames.append(np.asarray(env.render()))
        total += float(reward)
        if terminated or truncated:
            break
    return frames, total


def save_gif(frames: list[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Writes ``frames`` (H×W×3 uint8) as a looping GIF with Pillow."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to write")
    if fps < 1:
        raise ValueError(f"fps={fps} must be >= 1")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    options = {"format": "GIF", "save_all": True, "append_images": images[1:], "loop": 0}
    return atomic_write(path, lambda f: images[0].save(f, duration=max(1, round(1000 / fps)), **options))

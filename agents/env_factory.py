"""Build an env from a name: a Gymnasium id, an ``"perceptgym:perceptgym/..."`` id, or a user's ``"module:Class"``.

Plus the wrappers a run asks for (``env_wrappers`` in the hyperparameter files, RL Zoo's ``env_wrapper``) and
the observation adaptation tabular agents need (:func:`perceptgym.agents.spaces.make_tabular_env`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import TimeLimit

from perceptgym.agents.spaces import make_tabular_env


def _import(target: str, what: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what} {target!r}: cannot import module {module!r} ({e})") from e
    try:
        return getattr(obj, attr)
    except AttributeError as e:
        raise ValueError(f"{what} {target!r}: module {module!r} has no attribute {attr!r}") from e


def user_env_class(env_id: str) -> type[gym.Env] | None:
    """The class named by ``"package.module:Class"``, or None when ``env_id`` is a Gymnasium id.

    Gymnasium ids may also contain ``":"`` (``"perceptgym:perceptgym/GridDriving-v0"`` imports ``perceptgym``
    first); they are told apart by the part after the colon, which for a class is a Python identifier.
    """
    module, sep, attr = env_id.partition(":")
    if not sep or not attr.isidentifier() or not module:
        return None
    cls = _import(env_id, "env")
    if not (isinstance(cls, type) and issubclass(cls, gym.Env)):
        raise ValueError(f"env {env_id!r} is not a gymnasium.Env subclass (got {cls!r})")
    return cls


def make_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
) -> gym.Env:
    """Makes one env; ``perceptgym/...`` ids import :mod:`perceptgym.envs` (which registers them) first."""
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    cls = user_env_class(env_id)
    if cls is not None:
        env = cls(**kwargs)
        return TimeLimit(env, max_episode_steps) if max_episode_steps else env
    if env_id.startswith("envs:perceptgym/"):  # run directories written before the one-namespace move
        env_id = env_id.removeprefix("envs:")
    if env_id.startswith("perceptgym/"):
        importlib.import_module("perceptgym.envs")
    try:
        return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"cannot make env {env_id!r}: {e}") from e


def apply_wrappers(env: gym.Env, wrappers: Sequence[str | Mapping[str, Mapping[str, Any]]] | None) -> gym.Env:
    """Wraps ``env`` in order with ``"module:Wrapper"`` entries or ``{"module:Wrapper": {kwargs}}`` ones."""
    for entry in wrappers or ():
        if isinstance(entry, str):
            target, kwargs = entry, {}
        elif isinstance(entry, Mapping) and len(entry) == 1:
            target, kwargs = next(iter(entry.items()))
            kwargs = dict(kwargs or {})
        else:
            raise ValueError(f"env wrapper {entry!r}: use 'module:Wrapper' or {{'module:Wrapper': {{kwargs}}}}")
        env = _import(target, "env wrapper")(env, **kwargs)
    return env


def build_env(
    env_id: str, settings: Mapping[str, Any] | None = None, *, tabular: bool = False, render_mode: str | None = None
) -> gym.Env:
    """The env of a run: :func:`make_env`, then ``env_wrappers``, then (tabular) discrete observations.

    ``settings`` are a run's env keys: ``env_kwargs``, ``max_episode_steps``, ``env_wrappers``, and for
    tabular agents ``obs_bins``, ``obs_low``, ``obs_high``.
    """
    settings = settings or {}
    env = make_env(
        env_id, settings.get("env_kwargs"), render_mode=render_mode, max_episode_steps=settings.get("max_episode_steps")
    )
    env = apply_wrappers(env, settings.get("env_wrappers"))
    if tabular:
        env = make_tabular_env(
            env, bins=settings.get("obs_bins"), low=settings.get("obs_low"), high=settings.get("obs_high")
        )
    return env

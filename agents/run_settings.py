"""The settings of a training run that are not the agent's: budgets, the env, evaluation and checkpoints.

They sit next to the agent's hyperparameters in ``agents/hyperparams/<agent>.yml`` and in ``--set``; a run's
settings are validated as a whole (:meth:`RunSettings.from_mapping`) before anything is written to disk, so
``n_episodes=-5``, ``n_episodes=1.5`` or ``obs_bins=abc`` are refused with a message naming the setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perceptgym.agents.config import check_positive_int, config_from_dict


@dataclass(frozen=True)
class RunSettings:
    """A run's budgets, env, evaluation and checkpoint settings (everything else in the YAML is the agent's)."""

    n_episodes: int | None = None
    """training episodes (step learners; training stops at n_episodes or n_timesteps, whichever comes first)"""
    n_timesteps: int | None = None
    """training env steps (the budget of SB3 agents)"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments for the env constructor / gym.make"""
    train_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments that replace env_kwargs' while training only (e.g. a shaping reward term such as
    GridDriving's progress): the run's evaluation, `perceptgym evaluate` and `watch` use env_kwargs alone"""
    max_episode_steps: int | None = None
    """time limit [steps]; None: the env's registered one, or 10,000 for an env without one"""
    env_wrappers: tuple[str | dict[str, dict[str, Any] | None], ...] = ()
    """list of 'module:Wrapper' or {'module:Wrapper': {kwargs}} applied in order"""
    obs_bins: int | tuple[int, ...] | None = None
    """cells per dimension to discretise Box observations (tabular)"""
    obs_low: float | tuple[float, ...] | None = None
    """lower bounds to clip Box observations to before discretising (tabular)"""
    obs_high: float | tuple[float, ...] | None = None
    """upper bounds to clip Box observations to before discretising (tabular)"""
    eval_episodes: int = 100
    """greedy evaluation episodes at the end of the run (0: none)"""
    checkpoint_every: int = 0
    """also save a checkpoint every N episodes (step learners) or N env steps (SB3); 0: only by time"""
    checkpoint_seconds: float = 60.0
    """save a checkpoint when this many seconds have passed since the last one (0: never by time)"""

    def __post_init__(self) -> None:
        for name in ("n_episodes", "n_timesteps", "max_episode_steps"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        check_positive_int("eval_episodes", self.eval_episodes, allow_zero=True)
        check_positive_int("checkpoint_every", self.checkpoint_every, allow_zero=True)
        if not (math.isfinite(self.checkpoint_seconds) and self.checkpoint_seconds >= 0):
            raise ValueError(f"checkpoint_seconds={self.checkpoint_seconds!r} must be a number >= 0")
        for name in ("env_kwargs", "train_env_kwargs"):
            if not all(isinstance(k, str) for k in getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r}: keys must be strings (argument names)")
        for entry in self.env_wrappers:
            if isinstance(entry, dict) and (len(entry) != 1 or not isinstance(next(iter(entry)), str)):
                raise ValueError(f"env_wrappers entry {entry!r}: use 'module:Wrapper' or {{'module:Wrapper': {{...}}}}")
        bins = (self.obs_bins,) if isinstance(self.obs_bins, int) else self.obs_bins or ()
        if any(b < 1 for b in bins):
            raise ValueError(f"obs_bins={self.obs_bins!r}: every dimension needs at least 1 cell")
        for name in ("obs_low", "obs_high"):
            value = getattr(self, name)
            values = (value,) if isinstance(value, (int, float)) else value or ()
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name}={value!r} must be finite numbers")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RunSettings:
        """Validated settings from a dict (YAML, ``--set``, a run's ``config.json``); unknown keys are refused."""
        if values is not None and not isinstance(values, Mapping):
            raise ValueError(f"run settings must be a mapping, got {values!r}")
        values = dict(values or {})
        for name in ("env_kwargs", "train_env_kwargs"):
            if values.get(name) is None:
                values.pop(name, None)
        if values.get("env_wrappers") is None:
            values.pop("env_wrappers", None)
        return config_from_dict(cls, values)

    def env_settings(self) -> dict[str, Any]:
        """The keys :func:`perceptgym.agents.env_factory.build_env` reads."""
        return {
            "env_kwargs": dict(self.env_kwargs),
            "max_episode_steps": self.max_episode_steps,
            "env_wrappers": list(self.env_wrappers),
            "obs_bins": self.obs_bins,
            "obs_low": self.obs_low,
            "obs_high": self.obs_high,
        }

    def training_env_settings(self) -> dict[str, Any]:
        """:meth:`env_settings` of the env the agent trains on: env_kwargs updated by train_env_kwargs."""
        settings = self.env_settings()
        settings["env_kwargs"].update(self.train_env_kwargs)
        return settings

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists), as written to a run's ``config.json``."""
        return dataclasses.asdict(self)

"""Agents by name: ``make_agent("q_learning", obs_space, act_space, {"alpha": 0.5}, seed=0)``.

Each entry maps a name to its class and config class. Other packages add theirs with :func:`register_agent`
(the bandit agents come from ``perceptgym.agents.bandit.BANDIT_AGENTS``; the package is imported on first use, and a
missing or broken bandit package only hides those names, with a warning when broken). Classes may be given as
``"module:Class"`` strings so that torch (SB3) is imported only when such an agent is made.
"""

from __future__ import annotations

import importlib
import json
import random
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import Agent, CheckpointError
from perceptgym.agents.config import config_from_dict

PLUGIN_PACKAGES = {"perceptgym.agents.bandit": ("BANDIT_AGENTS", "bandit")}
"""package -> (name of its ``{name: (AgentClass, ConfigClass)}`` table, kind): imported on first use; a
package may also call :func:`register_agent` itself"""


@dataclass(frozen=True)
class AgentEntry:
    """A registered agent: class and config class (or ``"module:attr"`` strings), kind, how to build it."""

    name: str
    agent_class: type | str
    config_class: type | str
    kind: str
    """"tabular" (step learner over Discrete spaces), "bandit" (step learner), or "sb3" (trains itself)"""
    factory: Callable[..., Agent] | None = None
    """``factory(cls, observation_space, action_space, config, seed)``; the default is
    ``cls(observation_space, action_space, config, np.random.default_rng(seed))``"""

    def resolve_class(self) -> type:
        return _resolve(self.agent_class)

    def resolve_config_class(self) -> type:
        return _resolve(self.config_class)


_REGISTRY: dict[str, AgentEntry] = {}
_plugins_loaded = False


def _resolve(obj: type | str) -> type:
    if not isinstance(obj, str):
        return obj
    module, _, attr = obj.partition(":")
    # Making an agent must not change the caller's global RNGs, not even by importing its library: importing SB3
    # imports rich.progress, which draws from Python's global ``random`` at import time.
    python_rng, numpy_rng = random.getstate(), np.random.get_state()
    try:
        return getattr(importlib.import_module(module), attr)
    finally:
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)


def register_agent(
    name: str,
    agent_class: type | str,
    config_class: type | str,
    *,
    kind: str,
    factory: Callable[..., Agent] | None = None,
    overwrite: bool = False,
) -> None:
    """Adds an agent under ``name``; registering a taken name raises unless ``overwrite``.

    Registering a class of the same name again replaces the entry (a module imported twice, e.g. once as
    ``__main__``).
    """
    old = _REGISTRY.get(name)
    if old is not None and not overwrite and _class_name(old.agent_class) != _class_name(agent_class):
        raise ValueError(f"agent name {name!r} is already registered to {old.agent_class}")
    _REGISTRY[name] = AgentEntry(name, agent_class, config_class, kind, factory)


def _class_name(obj: type | str) -> str:
    return obj.rpartition(":")[2] if isinstance(obj, str) else obj.__qualname__


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for package, (table, kind) in PLUGIN_PACKAGES.items():
        try:
            module = importlib.import_module(package)
            for name, (agent_class, config_class) in getattr(module, table, {}).items():
                if name not in _REGISTRY:
                    register_agent(name, agent_class, config_class, kind=kind)
        except Exception as e:  # a broken plug-in must not take the other agents down
            if not (isinstance(e, ModuleNotFoundError) and e.name == package):
                warnings.warn(f"{package} could not be imported ({e!r}); its agents are unavailable", stacklevel=3)


def agent_names(kind: str | None = None) -> list[str]:
    """Registered agent names (of one kind if given), sorted."""
    _load_plugins()
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def agent_entry(name: str) -> AgentEntry:
    """The registry entry for ``name``, or a ValueError listing the known names."""
    if name not in _REGISTRY:  # plug-ins (the bandit agents import torch) only when needed
        _load_plugins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; known agents: {agent_names()}")
    return _REGISTRY[name]


def make_config(name: str, config: Mapping[str, Any] | Any | None = None) -> Any:
    """The validated config object of agent ``name`` from a dict (unknown keys are refused)."""
    return config_from_dict(agent_entry(name).resolve_config_class(), config)


def make_agent(
    name: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    config: Mapping[str, Any] | Any | None = None,
    seed: int | None = None,
) -> Agent:
    """Builds agent ``name`` for these spaces from a config (dict, config object or None for defaults)."""
    entry = agent_entry(name)
    cfg = make_config(name, config)
    cls = entry.resolve_class()
    if entry.factory is not None:
        return entry.factory(cls, observation_space, action_space, cfg, seed)
    return cls(observation_space, action_space, cfg, np.random.default_rng(seed))


def checkpoint_agent_name(path: str | Path) -> str:
    """The agent name recorded in a checkpoint (.npz meta, an SB3 .pt, or the .json sidecar of an old SB3 .zip)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.suffix in (".pt", ".zip"):
        from perceptgym.agents.sb3 import read_checkpoint_meta

        meta = read_checkpoint_meta(path)
    else:
        try:  # tabular and bandit checkpoints keep their JSON in "meta" (version-1 bandit ones in "header")
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta" if "meta" in data.files else "header"]))
        except Exception as e:
            raise CheckpointError(
                f"{path}: not a perceptgym checkpoint (.npz with meta, or an SB3 .pt / .zip): {e}"
            ) from e
    if not isinstance(meta, dict) or not isinstance(meta.get("agent"), str):
        raise CheckpointError(f"{path}: the checkpoint does not name its agent")
    return meta["agent"]


def load_agent(
    path: str | Path,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    *,
    trust_checkpoint: bool = False,
) -> Agent:
    """Loads any registered agent's checkpoint, refusing one made for other spaces.

    ``trust_checkpoint`` lets an old SB3 ``.zip`` load: SB3 unpickles it, which can run code from the file.
    """
    entry = agent_entry(checkpoint_agent_name(path))
    cls = entry.resolve_class()
    if entry.kind == "sb3":
        return cls.load(path, observation_space, action_space, trust_checkpoint=trust_checkpoint)
    return cls.load(path, observation_space, action_space)


def _sb3_factory(
    cls: type, observation_space: gym.Space, action_space: gym.Space, config: Any, seed: int | None
) -> Agent:
    return cls(observation_space, action_space, config, seed=seed)


for _name, _cls in (
    ("q_learning", "QLearningAgent"),
    ("sarsa", "SarsaAgent"),
    ("expected_sarsa", "ExpectedSarsaAgent"),
    ("double_q", "DoubleQLearningAgent"),
):
    register_agent(
        _name, f"perceptgym.agents.tabular:{_cls}", "perceptgym.agents.tabular:TabularConfig", kind="tabular"
    )
for _name, _cls, _config in (
    ("dqn", "DQNAgent", "DQNConfig"),
    ("ppo", "PPOAgent", "PPOConfig"),
    ("a2c", "A2CAgent", "A2CConfig"),
    ("maskable_ppo", "MaskablePPOAgent", "PPOConfig"),
):
    register_agent(
        _name, f"perceptgym.agents.sb3:{_cls}", f"perceptgym.agents.sb3:{_config}", kind="sb3", factory=_sb3_factory
    )

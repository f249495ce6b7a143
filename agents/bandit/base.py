"""What every bandit agent shares: construction from spaces, an rng, and the npz checkpoint format.

A bandit agent plays one-step episodes: ``act(obs)`` picks an arm, ``update(Transition)`` learns from the
reward of the arm taken (``next_obs`` is ignored: the next round's context is unrelated). Checkpoints are
``.npz`` files in the checkpoint envelope (:func:`perceptgym.supervised.checkpoint.save_npz`, read with
``allow_pickle=False``, NaN/Inf refused): the model arrays plus a JSON meta holding the format, version, agent name,
config, spaces and the rng state, so a loaded agent acts exactly as the saved one would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.agents.base import (
    CheckpointError,
    Transition,
    check_spaces,
    checkpoint_file,
    describe_space,
    space_from_json,
    space_to_json,
)
from perceptgym.supervised.checkpoint import load_npz, save_npz

FORMAT = "perceptgym_bandit_agent"
VERSION = 2
"""2: the JSON is stored as ``meta`` (the envelope's name; version 1 called it ``header``) with library versions"""


class BanditAgent:
    """Base of the bandit agents: ``Agent(observation_space, action_space, config=None, rng=None)``.

    Subclasses set ``name`` and ``config_cls`` and implement ``_setup`` (the model), ``_scores`` and
    ``update``, plus ``_state``/``_set_state`` for the arrays to checkpoint.
    """

    name: ClassVar[str] = "bandit"
    config_cls: ClassVar[type] = type(None)
    libraries: ClassVar[tuple[str, ...]] = ()
    """libraries besides numpy and gymnasium whose versions the checkpoint records"""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: Any = None,
        rng: np.random.Generator | int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"{type(self).__name__} needs a Discrete action space, got {action_space}")
        if config is None:
            config = self.config_cls()
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} takes a {self.config_cls.__name__}, got {type(config).__name__}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.config = config
        self.n_actions = int(action_space.n)
        self._action_start = int(action_space.start)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.t = 0  # rounds learned from
        self._setup(**kwargs)

    def _setup(self) -> None:
        """Builds the model once spaces, config and rng are set (extra constructor kwargs land here)."""

    # ------------------------------------------------------------------ acting and learning
    def act(self, obs: Any, *, explore: bool = True) -> int:
        """The arm to pull in context ``obs``; ``explore=False`` gives the greedy arm (no exploration)."""
        return int(np.argmax(self._scores(obs, explore))) + self._action_start

    def _scores(self, obs: Any, explore: bool) -> np.ndarray:
        raise NotImplementedError

    def update(self, t: Transition) -> None:
        raise NotImplementedError

    def _arm(self, action: Any) -> int:
        a = int(action) - self._action_start
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        return a

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def save(self, path: str | Path) -> Path:
        """Writes ``path`` (``.npz`` is appended if missing) and returns it."""
        meta = {
            "agent": self.name,
            "t": self.t,
            "config": dataclasses.asdict(self.config),
            "spaces": {
                "observation_space": describe_space(self.observation_space),
                "action_space": describe_space(self.action_space),
            },
            "space_specs": {
                "observation_space": space_to_json(self.observation_space),
                "action_space": space_to_json(self.action_space),
            },
            "rng": self.rng.bit_generator.state,
        }
        libraries = ("numpy", "gymnasium", *self.libraries)
        return save_npz(checkpoint_file(path, ".npz"), FORMAT, VERSION, meta, self._state(), libraries=libraries)

    @classmethod
    def load(
        cls,
        path: str | Path,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        **kwargs: Any,
    ) -> BanditAgent:
        """Reads a checkpoint written by :meth:`save`; refuses one made for other spaces or another agent.

        ``kwargs`` go to the constructor (e.g. the ``reader`` of the perception-prior agent).
        """
        meta, arrays = load_npz(path, FORMAT, VERSION)
        if meta.get("agent") != cls.name:
            raise CheckpointError(f"{path}: checkpoint of agent {meta.get('agent')!r}, cannot load it as {cls.name!r}")
        try:
            saved_spaces, specs = meta["spaces"], meta["space_specs"]
            config = config_from_dict(cls.config_cls, meta["config"])
            rng_state, t = meta["rng"], int(meta["t"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: inconsistent bandit checkpoint ({type(e).__name__}: {e})") from e
        check_spaces(saved_spaces, observation_space, action_space, path)
        obs_space = observation_space or space_from_json(specs["observation_space"])
        act_space = action_space or space_from_json(specs["action_space"])
        agent = cls(obs_space, act_space, config, rng=np.random.default_rng(0), **kwargs)
        try:
            agent.rng.bit_generator.state = rng_state
            agent.t = t
            agent._set_state(arrays)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: inconsistent bandit checkpoint ({type(e).__name__}: {e})") from e
        return agent


def restore_arrays(obj: object, arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> None:
    """Sets ``obj.<key>`` from a checkpoint's arrays, refusing missing keys and other shapes."""
    for key in keys:
        current = getattr(obj, key)
        if key not in arrays or arrays[key].shape != current.shape:
            found = arrays[key].shape if key in arrays else "nothing"
            raise ValueError(f"checkpoint array {key!r}: expected shape {current.shape}, found {found}")
        setattr(obj, key, arrays[key].copy())


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuilds a frozen config dataclass from its ``asdict`` (JSON turns tuples into lists; undo that)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields {sorted(unknown)}; known: {sorted(fields)}")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

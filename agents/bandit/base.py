"""What every bandit agent shares: construction from spaces, an rng, and the npz checkpoint format.

A bandit agent plays one-step episodes: ``act(obs)`` picks an arm, ``update(Transition)`` learns from the
reward of the arm taken (``next_obs`` is ignored: the next round's context is unrelated). Checkpoints are
``.npz`` files readable with ``allow_pickle=False``: the model arrays plus a JSON header holding the format,
version, agent name, config, spaces and the rng state, so a loaded agent acts exactly as the saved one would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.agents.base import CheckpointError, Transition, check_spaces, checkpoint_file, describe_space

FORMAT = "perceptgym_bandit_agent"
VERSION = 1


class BanditAgent:
    """Base of the bandit agents: ``Agent(observation_space, action_space, config=None, rng=None)``.

    Subclasses set ``name`` and ``config_cls`` and implement ``_setup`` (the model), ``_scores`` and
    ``update``, plus ``_state``/``_set_state`` for the arrays to checkpoint.
    """

    name: ClassVar[str] = "bandit"
    config_cls: ClassVar[type] = type(None)

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
        path = checkpoint_file(path, ".npz")
        header = {
            "format": FORMAT,
            "version": VERSION,
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
        arrays = self._state()
        if "header" in arrays:
            raise KeyError("'header' is reserved in bandit checkpoints")
        np.savez(path, header=np.array(json.dumps(header)), **arrays)
        return path

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
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "header" not in data:
                    raise CheckpointError(f"{path}: not a perceptgym bandit checkpoint (no header)")
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in data.files if k != "header"}
        except CheckpointError:
            raise
        except Exception as e:  # missing, truncated or not an npz at all
            raise CheckpointError(f"{path}: unreadable bandit checkpoint ({type(e).__name__}: {e})") from e
        if header.get("format") != FORMAT:
            raise CheckpointError(f"{path}: format {header.get('format')!r} is not {FORMAT!r}")
        if header.get("version") != VERSION:
            raise CheckpointError(
                f"{path}: bandit checkpoint version {header.get('version')!r}, this code reads {VERSION}"
            )
        if header["agent"] != cls.name:
            raise CheckpointError(f"{path}: checkpoint of agent {header['agent']!r}, cannot load it as {cls.name!r}")
        check_spaces(header["spaces"], observation_space, action_space, path)
        obs_space = observation_space or space_from_json(header["space_specs"]["observation_space"])
        act_space = action_space or space_from_json(header["space_specs"]["action_space"])
        agent = cls(
            obs_space,
            act_space,
            config_from_dict(cls.config_cls, header["config"]),
            rng=np.random.default_rng(0),
            **kwargs,
        )
        agent.rng.bit_generator.state = header["rng"]
        agent.t = int(header["t"])
        agent._set_state(arrays)
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


def space_to_json(space: gym.Space) -> dict[str, Any] | None:
    """A JSON description from which :func:`space_from_json` rebuilds the space (None if unsupported)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Dict):
        subs = {k: space_to_json(s) for k, s in space.spaces.items()}
        return None if None in subs.values() else {"type": "Dict", "spaces": subs}
    return None


def space_from_json(spec: dict[str, Any] | None) -> gym.Space:
    if spec is None:
        raise ValueError(
            "this checkpoint's space cannot be rebuilt from the file: pass observation_space and action_space to load()"
        )
    if spec["type"] == "Discrete":
        return spaces.Discrete(spec["n"], start=spec["start"])
    if spec["type"] == "Box":
        dtype = np.dtype(spec["dtype"])
        return spaces.Box(
            np.array(spec["low"], dtype=dtype),
            np.array(spec["high"], dtype=dtype),
            tuple(spec["shape"]),
            dtype,
        )
    return spaces.Dict({k: space_from_json(s) for k, s in spec["spaces"].items()})

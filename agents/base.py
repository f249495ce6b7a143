"""The agent interface every perceptgym agent implements, and the loops that only use that interface.

An agent is built from the spaces and a config (never from an env), so the same agent runs on our envs and
on any Gymnasium env whose spaces match: ``QLearningAgent(obs_space, act_space, cfg, rng)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

# The one error type of every checkpoint refusal (tabular, bandit, SB3, classifier, GAN, run files).
from perceptgym.supervised.checkpoint import CheckpointError as CheckpointError


@dataclass(frozen=True)
class Transition:
    """One environment step as an agent learns from it.

    ``next_action`` is the action the agent will take in ``next_obs`` (SARSA needs it; Q-learning ignores it);
    it is None when the episode terminated (after a truncation it is still given, drawn from the agent's
    policy in ``next_obs``, so SARSA can bootstrap from it). The target bootstraps unless ``terminated``: a
    truncated step (time limit) still bootstraps, which is why Gymnasium splits the two (see
    ``gymnasium.Env.step``).
    """

    obs: Any
    action: Any
    reward: float
    next_obs: Any
    terminated: bool
    truncated: bool
    next_action: Any = None
    info: dict | None = None


@runtime_checkable
class Agent(Protocol):
    """What every agent can do: act, save, load."""

    observation_space: gym.Space
    action_space: gym.Space

    def act(self, obs: Any, *, explore: bool) -> Any:
        """Returns an action for ``obs``; ``explore=False`` gives the greedy (evaluation) action.

        An agent whose class sets ``uses_action_masks = True`` also takes ``action_mask=`` (a bool array, True:
        allowed); the loops that play it (:func:`perceptgym.agents.loop.choose_action`) pass the env's mask.
        """
        ...

    def save(self, path: str | Path) -> Path:
        """Writes a checkpoint and returns its path."""
        ...

    @classmethod
    def load(
        cls, path: str | Path, observation_space: gym.Space | None = None, action_space: gym.Space | None = None
    ) -> Agent:
        """Reads a checkpoint; refuses one made for other spaces than those given, with a clear message."""
        ...


@runtime_checkable
class Learner(Agent, Protocol):
    """An agent that trains itself on an env."""

    def learn(self, env: gym.Env, total_timesteps: int, *, seed: int | None = None, callback: Any = None) -> Any: ...


@runtime_checkable
class StepLearner(Agent, Protocol):
    """An agent that learns one transition at a time (tabular and bandit agents)."""

    def update(self, t: Transition) -> None: ...


class SpaceMismatchError(ValueError):
    """A checkpoint was made for other observation/action spaces than the env it is used with."""


def check_spaces(
    saved: dict[str, str], observation_space: gym.Space | None, action_space: gym.Space | None, path: str | Path
) -> None:
    """Compares the space descriptions stored in a checkpoint with the spaces at hand."""
    for name, space in (("observation_space", observation_space), ("action_space", action_space)):
        if space is not None and saved.get(name) != describe_space(space):
            raise SpaceMismatchError(
                f"{path}: checkpoint was made for {name} {saved.get(name)}, but the env has {describe_space(space)}"
            )


def describe_space(space: gym.Space) -> str:
    """A stable text description of a space (kind, shape, bounds summary), used to match checkpoints."""
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)}, start={int(space.start)})"
    if isinstance(space, gym.spaces.Box):
        low, high = np.unique(space.low), np.unique(space.high)
        lo = low[0].item() if low.size == 1 else "var"
        hi = high[0].item() if high.size == 1 else "var"
        return f"Box({lo}, {hi}, {space.shape}, {space.dtype})"
    if isinstance(space, gym.spaces.MultiDiscrete):
        return f"MultiDiscrete({space.nvec.tolist()})"
    if isinstance(space, gym.spaces.Tuple):
        return "Tuple(" + ", ".join(describe_space(s) for s in space.spaces) + ")"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {describe_space(s)}" for k, s in space.spaces.items()) + ")"
    return repr(space)


def space_to_json(space: gym.Space) -> dict[str, Any] | None:
    """A JSON description from which :func:`space_from_json` rebuilds the space (None if unsupported)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "dtype": str(space.dtype)}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        subs = {k: space_to_json(s) for k, s in space.spaces.items()}
        return None if None in subs.values() else {"type": "Dict", "spaces": subs}
    return None


def space_from_json(spec: dict[str, Any] | None) -> gym.Space:
    """The space :func:`space_to_json` described; a ValueError when the checkpoint could not describe it."""
    if spec is None:
        raise ValueError(
            "this checkpoint's space cannot be rebuilt from the file: pass observation_space and action_space to load()"
        )
    kind = spec["type"]
    if kind == "Discrete":
        return gym.spaces.Discrete(spec["n"], start=spec["start"])
    if kind == "Box":
        dtype = np.dtype(spec["dtype"])
        low, high = np.array(spec["low"], dtype=dtype), np.array(spec["high"], dtype=dtype)
        return gym.spaces.Box(low, high, tuple(spec["shape"]), dtype)
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(spec["nvec"], dtype=np.dtype(spec["dtype"]))
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(spec["n"])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(s) for k, s in spec["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r} in checkpoint")


def checkpoint_file(path: str | Path, suffix: str) -> Path:
    """``path`` with ``suffix`` appended unless it already ends in it; its folder is created."""
    path = Path(path)
    if path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

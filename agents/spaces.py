"""Make non-discrete observations usable by tabular agents.

* ``Tuple``/``Dict`` of ``Discrete`` and ``MultiDiscrete`` observations are encoded to one ``Discrete`` index
  with a mixed-radix code (as Taxi encodes its state): :class:`EncodeDiscreteObservation`, the envs'
  ``EncodeStateObservation`` with a cap on the number of states.
* ``Box`` observations are discretised with Gymnasium's ``DiscretizeObservation``; infinite bounds (CartPole's
  velocities) are first clipped to user-given bounds (``TransformObservation`` with ``np.clip``; Gymnasium
  1.4 has no ``ClipObservation``): :func:`discretize_box`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import DiscretizeObservation, TransformObservation

from perceptgym.envs.wrappers import EncodeStateObservation

MAX_TABULAR_STATES = 10_000_000


class EncodeDiscreteObservation(EncodeStateObservation):
    """:class:`perceptgym.envs.wrappers.EncodeStateObservation` capped at ``MAX_TABULAR_STATES`` states.

    One ``Discrete`` index per ``MultiDiscrete`` / ``Tuple(Discrete...)`` / ``Dict(Discrete...)`` observation,
    first component most significant (Taxi's ``encode``); the code is the envs' :class:`MixedRadix`.

    Example:
        >>> import gymnasium as gym
        >>> env = EncodeDiscreteObservation(gym.make("Blackjack-v1"))
        >>> env.observation_space
        Discrete(704)
    """

    def __init__(self, env: gym.Env, *, max_states: int | None = MAX_TABULAR_STATES):
        super().__init__(env, max_states=max_states)


def discretize_box(
    env: gym.Env,
    bins: int | Sequence[int],
    low: float | Sequence[float] | None = None,
    high: float | Sequence[float] | None = None,
) -> gym.Env:
    """Discretises a ``Box`` observation into ``Discrete(prod(bins))`` uniform cells.

    Args:
        env: an env with a ``Box`` observation space.
        bins: cells per dimension (one int for all).
        low, high: bounds to clip to first; needed where the space is unbounded (CartPole velocities).
    """
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"discretize_box needs a Box observation space, got {space}")
    if low is not None or high is not None:
        low_arr = np.broadcast_to(np.asarray(space.low if low is None else low, space.dtype), space.shape)
        high_arr = np.broadcast_to(np.asarray(space.high if high is None else high, space.dtype), space.shape)
        clipped = gym.spaces.Box(np.maximum(low_arr, space.low), np.minimum(high_arr, space.high), dtype=space.dtype)
        env = TransformObservation(env, partial(np.clip, a_min=clipped.low, a_max=clipped.high), clipped)
    elif not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(
            f"{space} has infinite bounds; pass obs_low/obs_high (low=, high=) to clip before discretising"
        )
    n_cells = np.prod(np.broadcast_to(np.asarray(bins), (int(np.prod(space.shape)),)))
    if n_cells > MAX_TABULAR_STATES:
        raise ValueError(f"bins={bins} over {space.shape} give {n_cells} states, more than {MAX_TABULAR_STATES}")
    return DiscretizeObservation(env, bins=bins if isinstance(bins, int) else tuple(int(b) for b in bins))


def make_tabular_env(
    env: gym.Env,
    *,
    bins: int | Sequence[int] | None = None,
    low: float | Sequence[float] | None = None,
    high: float | Sequence[float] | None = None,
) -> gym.Env:
    """Wraps ``env`` so that its observation space is ``Discrete`` (unchanged when it already is)."""
    space = env.observation_space
    if isinstance(space, gym.spaces.Discrete):
        return env
    if isinstance(space, gym.spaces.MultiDiscrete | gym.spaces.Tuple | gym.spaces.Dict):
        return EncodeDiscreteObservation(env)
    if isinstance(space, gym.spaces.Box):
        if bins is None:
            raise ValueError(f"{space} must be discretised for a tabular agent: set obs_bins (cells per dimension)")
        return discretize_box(env, bins, low, high)
    raise TypeError(
        f"tabular agents need Discrete, Tuple/Dict(Discrete...), MultiDiscrete or Box observations, got {space}"
    )

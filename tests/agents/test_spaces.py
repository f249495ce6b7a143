from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.agents.spaces import EncodeDiscreteObservation, discretize_box, make_tabular_env


class SpaceEnv(gym.Env):
    """Returns fixed observations from a given space (stub for wrapper tests)."""

    def __init__(self, space, observations):
        self.observation_space, self.action_space = space, gym.spaces.Discrete(2)
        self._observations = list(observations)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._observations[0], {}

    def step(self, action):
        return self._observations[1], 0.0, True, False, {}


def test_encode_multidiscrete_and_tuple_round_trip():
    space = gym.spaces.MultiDiscrete([3, 4, 5])
    env = EncodeDiscreteObservation(SpaceEnv(space, [np.array([2, 3, 4]), np.array([0, 0, 1])]))
    assert env.observation_space == gym.spaces.Discrete(60)
    assert env.reset()[0] == 59 and env.step(0)[0] == 1
    codes = {env.observation(np.array(x)) for x in np.ndindex(3, 4, 5)}
    assert codes == set(range(60))
    np.testing.assert_array_equal(env.decode(env.observation(np.array([1, 2, 3]))), [1, 2, 3])
    tuple_env = EncodeDiscreteObservation(
        SpaceEnv(gym.spaces.Tuple((gym.spaces.Discrete(2, start=1), gym.spaces.Discrete(3))), [(2, 1), (1, 0)])
    )
    assert tuple_env.observation_space.n == 6 and tuple_env.reset()[0] == 4


def test_blackjack_becomes_tabular():
    env = make_tabular_env(gym.make("Blackjack-v1"))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_discretize_box_with_infinite_bounds_needs_and_uses_clip_bounds():
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="infinite bounds"):
        make_tabular_env(env, bins=4)
    with pytest.raises(ValueError, match="obs_bins"):
        make_tabular_env(env)
    wrapped = discretize_box(env, [2, 3, 4, 5], low=[-2.4, -3, -0.2, -3], high=[2.4, 3, 0.2, 3])
    assert wrapped.observation_space == gym.spaces.Discrete(120)
    for seed in range(5):
        obs, _ = wrapped.reset(seed=seed)
        assert wrapped.observation_space.contains(obs)


def test_too_many_states_and_wrong_spaces_are_refused():
    with pytest.raises(ValueError, match="more than"):
        make_tabular_env(SpaceEnv(gym.spaces.Box(0, 1, (8,)), [np.zeros(8)] * 2), bins=20)
    with pytest.raises(TypeError, match="tabular agents need"):
        make_tabular_env(SpaceEnv(gym.spaces.Text(5), ["a", "b"]))


def test_one_encoder_for_envs_and_agents():
    """The agents' wrapper is the envs' EncodeStateObservation (one MixedRadix code), plus the state cap."""
    from perceptgym.envs.wrappers import EncodeStateObservation

    space = gym.spaces.Dict({"card": gym.spaces.Discrete(10), "cell": gym.spaces.Discrete(7, start=1)})
    obs = {"card": np.int64(3), "cell": np.int64(5)}
    ours = make_tabular_env(SpaceEnv(space, [obs, obs]))
    theirs = EncodeStateObservation(SpaceEnv(space, [obs, obs]))
    assert isinstance(ours, EncodeDiscreteObservation) and isinstance(ours, EncodeStateObservation)
    assert ours.observation_space == theirs.observation_space == gym.spaces.Discrete(70)
    assert ours.reset()[0] == theirs.reset()[0] == 3 * 7 + (5 - 1)
    assert ours.decode(25) == obs
    with pytest.raises(ValueError, match="more than max_states=10000000"):
        EncodeDiscreteObservation(SpaceEnv(gym.spaces.MultiDiscrete([10_000] * 2), [np.zeros(2, np.int64)] * 2))

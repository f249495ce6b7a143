"""DigitBanditVectorEnv: the numpy-batched bandit behind gym.make_vec(..., "vector_entry_point")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.envs.digit_bandit import ENV_ID, register_digit_bandit
from perceptgym.envs.digit_bandit.vector import DigitBanditVectorEnv

MODES = ("pixels", "perceived", "perceived-confidence", "symbolic")


@pytest.mark.parametrize("mode", MODES)
def test_make_vec_spaces_and_rewards(mode, stub_source, stub_reader):
    register_digit_bandit()
    envs = gym.make_vec(
        ENV_ID,
        num_envs=5,
        vectorization_mode="vector_entry_point",
        obs_mode=mode,
        digit_source=stub_source,
        reader=stub_reader,
        reward_scheme="plus_minus",
    )
    assert isinstance(envs.unwrapped, DigitBanditVectorEnv)
    obs, info = envs.reset(seed=0)
    for _ in range(30):
        assert envs.observation_space.contains(obs)
        obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert terminated.all() and not truncated.any()
        right = info["regret"] == 0
        assert np.array_equal(rewards, np.where(right, 1.0, -1.0))
        assert np.array_equal(right, info["expected_reward"] == 1.0)
    envs.close()


@pytest.mark.parametrize("mode", ["perceived", "perceived-confidence"])
def test_perceived_info_holds_what_was_read(mode, stub_source):
    from tests.conftest import StubReader

    envs = DigitBanditVectorEnv(num_envs=6, obs_mode=mode, digit_source=stub_source, reader=StubReader({4: 9}))
    shown = (lambda o: o) if mode == "perceived" else (lambda o: o["label"])
    obs, info = envs.reset(seed=0)
    np.testing.assert_array_equal(info["label_read"], shown(obs))
    confused = 0
    for _ in range(10):
        before = shown(obs)
        obs, _, _, _, info = envs.step(np.zeros(6, dtype=np.int64))
        # Step info describes the rounds just answered: what they showed, and the truth behind it.
        np.testing.assert_array_equal(info["label_read"], before)
        np.testing.assert_array_equal(before, np.where(info["label"] == 4, 9, info["label"]))
        np.testing.assert_allclose(info["label_confidence"], 0.9)
        confused += int((info["label"] == 4).sum())
    assert confused > 0


def test_optimal_actions_earn_right_reward_and_seed_fixes_stream(stub_source):
    def run(seed):
        envs = DigitBanditVectorEnv(num_envs=4, obs_mode="symbolic", digit_source=stub_source, block_size=6)
        obs, _ = envs.reset(seed=seed)
        seen = []
        for _ in range(10):  # block_size 6 rounds up to 8 = two batches per block: crosses blocks
            seen.append(obs)
            obs, rewards, _, _, info = envs.step(obs.astype(np.int64))  # symbolic obs = right answer
            assert np.all(rewards == 1.0) and np.all(info["regret"] == 0.0)
            assert np.array_equal(info["final_obs"], seen[-1])
        return np.stack(seen)

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_permutations_change_every_k_rounds(stub_source):
    envs = DigitBanditVectorEnv(num_envs=3, obs_mode="symbolic", digit_source=stub_source, permute_every=4)
    envs.reset(seed=0)
    previous = envs.permutations
    assert np.array_equal(previous, np.tile(np.arange(10), (3, 1)))
    for r in range(1, 13):
        envs.step(np.zeros(3, dtype=np.int64))
        now = envs.permutations
        changed = [not np.array_equal(a, b) for a, b in zip(now, previous, strict=True)]
        assert all(changed) if r % 4 == 0 else not any(changed), r
        previous = now


@pytest.mark.parametrize("bad", [np.array([0, 1]), np.array([0, 1, 10]), np.array([0.5, 1, 2]), 3])
def test_bad_actions_and_options_raise(stub_source, bad):
    envs = DigitBanditVectorEnv(num_envs=3, digit_source=stub_source)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be 3 int labels"):
        envs.step(bad)
    with pytest.raises(ValueError, match="num_envs"):
        DigitBanditVectorEnv(num_envs=0, digit_source=stub_source)
    with pytest.raises(ValueError, match="label_noise"):
        DigitBanditVectorEnv(num_envs=2, digit_source=stub_source, label_noise=2.0)
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed=-2)
    with pytest.raises(ValueError, match="options"):
        envs.reset(options="fast")

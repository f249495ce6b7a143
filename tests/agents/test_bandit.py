"""Bandit agents: the LinUCB algebra, learning on stub digits and on a generic Box env, save/load, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from perceptgym.agents.bandit import (
    BANDIT_AGENTS,
    EpsilonGreedyConfig,
    LinTSConfig,
    LinUCBAgent,
    LinUCBConfig,
    NeuralConfig,
    PerceptionPriorAgent,
    PerceptionPriorConfig,
    play_rounds,
)
from perceptgym.agents.bandit.ridge import RidgeArms
from perceptgym.agents.base import SpaceMismatchError, Transition
from perceptgym.envs.digit_bandit.env import DigitBanditEnv

#: Small, fast configs for the default suite. Stub digits are bars whose width (= L2 norm) is the label, so
#: the linear agents do not normalise features here (on MNIST they do: it lowers their regret).
QUICK = {
    "neural": NeuralConfig(network="mlp", hidden=32, refit_every=100),
    "epsilon_greedy": EpsilonGreedyConfig(decay_rounds=200, normalize=False),
    "linucb": LinUCBConfig(normalize=False),
    "lin_ts": LinTSConfig(normalize=False),
}


def build(name, obs_space, act_space, seed=0, **kwargs):
    cls, config_cls = BANDIT_AGENTS[name]
    return cls(obs_space, act_space, QUICK.get(name, config_cls()), rng=np.random.default_rng(seed), **kwargs)


class LinearContextEnv(gym.Env):
    """A generic one-step contextual bandit (not ours): context x in [-1, 1]^5, arm a pays w_a . x + noise."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.action_space = spaces.Discrete(4)
        self._w = np.random.default_rng(99).normal(size=(4, 5))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1, 1, 5).astype(np.float32)
        return self._x.copy(), {}

    def step(self, action):
        means = self._w @ self._x
        reward = float(means[action] + 0.1 * self.np_random.standard_normal())
        return self._x.copy(), reward, True, False, {"regret": float(means.max() - means[action])}


def test_registry_names_every_agent():
    assert set(BANDIT_AGENTS) == {
        "uniform",
        "epsilon_greedy",
        "linucb",
        "lin_ts",
        "neural",
        "perception_prior",
    }
    for name, (cls, config_cls) in BANDIT_AGENTS.items():
        assert cls.name == name and cls.config_cls is config_cls


def test_sherman_morrison_update_equals_direct_ridge_solve():
    rng = np.random.default_rng(0)
    arms = RidgeArms(n_arms=3, dim=6, lam=0.7)
    xs, acts, rs = rng.normal(size=(200, 6)), rng.integers(0, 3, 200), rng.normal(size=200)
    for x, a, r in zip(xs, acts, rs, strict=True):
        arms.update(int(a), x, float(r))
    for a in range(3):
        x = xs[acts == a]
        a_mat = 0.7 * np.eye(6) + x.T @ x
        np.testing.assert_allclose(arms.theta[a], np.linalg.solve(a_mat, x.T @ rs[acts == a]), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(arms.a_inv[a], np.linalg.inv(a_mat), rtol=1e-8, atol=1e-10)
    probe = rng.normal(size=6)
    direct = [probe @ np.linalg.solve(0.7 * np.eye(6) + xs[acts == a].T @ xs[acts == a], probe) for a in range(3)]
    np.testing.assert_allclose(arms.variance(probe), direct, rtol=1e-8)


def test_linucb_agent_scores_are_ridge_ucb():
    space = spaces.Box(-1.0, 1.0, (4,), np.float64)
    agent = LinUCBAgent(space, spaces.Discrete(2), LinUCBConfig(normalize=False, alpha=0.5, lam=2.0), rng=0)
    rng = np.random.default_rng(1)
    data = [(rng.uniform(-1, 1, 4), int(rng.integers(2)), float(rng.normal())) for _ in range(30)]
    for x, a, r in data:
        agent.update(Transition(x, a, r, x, True, False))
    probe = rng.uniform(-1, 1, 4)
    feats = lambda x: np.append((x + 1) / 2, 1.0)  # noqa: E731 - Box scaled to [0, 1], plus a bias
    for a in range(2):
        x = np.array([feats(d[0]) for d in data if d[1] == a])
        r = np.array([d[2] for d in data if d[1] == a])
        a_mat = 2.0 * np.eye(5) + x.T @ x
        theta = np.linalg.solve(a_mat, x.T @ r)
        ucb = theta @ feats(probe) + 0.5 * np.sqrt(feats(probe) @ np.linalg.solve(a_mat, feats(probe)))
        assert agent._scores(probe, explore=True)[a] == pytest.approx(ucb, abs=1e-6)


@pytest.mark.parametrize("name", ["epsilon_greedy", "linucb", "lin_ts", "neural"])
def test_agents_beat_uniform_on_stub_digits(name, stub_source):
    env = DigitBanditEnv(digit_source=stub_source)
    n = 400
    log = play_rounds(env, build(name, env.observation_space, env.action_space), n, seed=0)
    uniform = play_rounds(env, build("uniform", env.observation_space, env.action_space), n, seed=0)
    assert uniform.regret[n // 2 :].mean() > 0.8
    assert log.regret[n // 2 :].mean() < 0.5 * uniform.regret[n // 2 :].mean(), (name, log.regret.sum())


@pytest.mark.parametrize("mode", ["pixels", "perceived", "perceived-label"])
def test_perception_prior_starts_near_the_reader(mode, stub_source, stub_reader):
    env = DigitBanditEnv(obs_mode=mode, digit_source=stub_source, reader=stub_reader)
    agent = build("perception_prior", env.observation_space, env.action_space, reader=stub_reader)
    log = play_rounds(env, agent, 200, seed=0)
    assert log.regret.sum() <= 10  # the stub reader is always right: only exploration costs


def test_perception_prior_learns_a_systematic_confusion(stub_source):
    from tests.conftest import StubReader

    reader = StubReader(confuse={3: 8, 8: 3})  # swaps 3 and 8, confidently
    env = DigitBanditEnv(digit_source=stub_source)
    agent = build("perception_prior", env.observation_space, env.action_space, reader=reader)
    log = play_rounds(env, agent, 2000, seed=0)
    # Trusting the reader loses every 3 and 8 (about 20% of rounds); the posteriors learn the swap.
    assert log.regret[:200].mean() > 0.1
    assert log.regret[-500:].mean() < 0.03
    assert log.regret[:200].mean() > log.regret[-500:].mean()


def test_discounted_perception_prior_recovers_after_permutations(stub_source, stub_reader):
    env = DigitBanditEnv(digit_source=stub_source, permute_every=600)
    cls, _ = BANDIT_AGENTS["perception_prior"]
    agent = cls(
        env.observation_space, env.action_space, PerceptionPriorConfig(discount=0.95), rng=0, reader=stub_reader
    )
    per_period = play_rounds(env, agent, 1800, seed=0).regret.reshape(3, 600)
    assert per_period[0].mean() < 0.02  # the reader is right before the first change
    for period in per_period[1:]:
        assert period[:50].mean() > 0.8  # after a change the reader's labels are wrong...
        # ...and the agent learns the new permutation (forgetting keeps it exploring a little).
        assert period[-200:].mean() < 0.25


@pytest.mark.parametrize("name", ["epsilon_greedy", "linucb", "lin_ts", "neural"])
def test_agents_play_a_generic_box_env(name):
    env = LinearContextEnv()
    n = 400
    log = play_rounds(env, build(name, env.observation_space, env.action_space), n, seed=0)
    uniform = play_rounds(env, build("uniform", env.observation_space, env.action_space), n, seed=0)
    assert log.regret[-200:].mean() < 0.5 * uniform.regret[-200:].mean(), name


def test_epsilon_greedy_on_discrete_obs_is_tabular():
    env = DigitBanditEnv(
        obs_mode="symbolic", digit_source=lambda labels, rng: np.zeros((len(labels), 28, 28), dtype=np.uint8)
    )
    cls, _ = BANDIT_AGENTS["epsilon_greedy"]
    agent = cls(env.observation_space, env.action_space, EpsilonGreedyConfig(), rng=0)
    play_rounds(env, agent, 2000, seed=0)
    assert [agent.act(np.int64(y), explore=False) for y in range(10)] == list(range(10))
    assert agent.epsilon == pytest.approx(0.02)


@pytest.mark.parametrize("name", sorted(BANDIT_AGENTS))
def test_save_load_reproduces_actions(name, tmp_path, stub_source, stub_reader):
    env = DigitBanditEnv(digit_source=stub_source)
    extra = {"reader": stub_reader} if name == "perception_prior" else {}
    agent = build(name, env.observation_space, env.action_space, **extra)
    play_rounds(env, agent, 60, seed=0)
    path = agent.save(tmp_path / name)
    assert path.suffix == ".npz"
    cls, _ = BANDIT_AGENTS[name]
    loaded = cls.load(path, env.observation_space, env.action_space, **extra)
    assert loaded.config == agent.config and loaded.t == agent.t
    for i in range(30):
        obs, _ = env.reset(seed=100 if i == 0 else None)
        assert loaded.act(obs, explore=False) == agent.act(obs, explore=False)
        a, b = agent.act(obs, explore=True), loaded.act(obs, explore=True)  # same rng state too
        assert a == b
        _, reward, _, _, _ = env.step(a)
        for ag in (agent, loaded):  # and they keep learning identically
            ag.update(Transition(obs, a, reward, obs, True, False))
    without_spaces = cls.load(path, **extra)  # spaces rebuilt from the file
    assert without_spaces.observation_space == env.observation_space


def test_load_refuses_other_spaces_and_other_agents(tmp_path):
    space = spaces.Box(0, 255, (28, 28), np.uint8)
    path = LinUCBAgent(space, spaces.Discrete(10), rng=0).save(tmp_path / "a.npz")
    with pytest.raises(SpaceMismatchError, match="observation_space"):
        LinUCBAgent.load(path, spaces.Box(0, 1, (28, 28), np.float32), spaces.Discrete(10))
    with pytest.raises(SpaceMismatchError, match="action_space"):
        LinUCBAgent.load(path, space, spaces.Discrete(4))
    with pytest.raises(ValueError, match="checkpoint of agent 'linucb'"):
        BANDIT_AGENTS["lin_ts"][0].load(path)
    np.savez(tmp_path / "other.npz", q=np.zeros(3))
    with pytest.raises(ValueError, match="not a perceptgym_bandit_agent checkpoint"):
        LinUCBAgent.load(tmp_path / "other.npz")


@pytest.mark.parametrize(
    ("make_config", "match"),
    [
        (lambda: NeuralConfig(network="resnet"), "network must be one of"),
        (lambda: NeuralConfig(exploration="greedy"), "exploration must be one of"),
        (lambda: NeuralConfig(batch_size=0), "batch_size"),
        (lambda: EpsilonGreedyConfig(epsilon_end=1.5), "epsilon_end"),
        (lambda: PerceptionPriorConfig(confidence_bins=(0.9, 0.5)), "confidence_bins"),
        (lambda: PerceptionPriorConfig(discount=0.0), "discount"),
    ],
)
def test_bad_configs_raise(make_config, match):
    with pytest.raises(ValueError, match=match):
        make_config()


def test_bad_spaces_and_actions_raise():
    box = spaces.Box(0, 255, (28, 28), np.uint8)
    with pytest.raises(TypeError, match="Discrete action space"):
        LinUCBAgent(box, spaces.Box(0, 1, (2,)))
    with pytest.raises(TypeError, match="takes a LinUCBConfig"):
        LinUCBAgent(box, spaces.Discrete(10), NeuralConfig())
    with pytest.raises(TypeError, match="Box observation"):
        BANDIT_AGENTS["neural"][0](spaces.Discrete(10), spaces.Discrete(10))
    with pytest.raises(TypeError, match="28x28"):
        PerceptionPriorAgent(spaces.Box(0, 1, (5,)), spaces.Discrete(10))
    agent = LinUCBAgent(box, spaces.Discrete(10), rng=0)
    with pytest.raises(ValueError, match="outside the action space"):
        agent.update(Transition(np.zeros((28, 28), np.uint8), 10, 1.0, None, True, False))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["epsilon_greedy", "linucb", "lin_ts", "neural", "perception_prior"])
def test_agents_beat_uniform_on_real_digits(name):
    """1,000 rounds on the MNIST training stream: every agent clearly below uniform's ~900 regret."""
    pytest.importorskip("perceptgym.supervised.perception")
    env = DigitBanditEnv(digit_source="mnist-train")
    cls, config_cls = BANDIT_AGENTS[name]
    log = play_rounds(env, cls(env.observation_space, env.action_space, config_cls(), rng=0), 1000, seed=0)
    uniform = play_rounds(env, build("uniform", env.observation_space, env.action_space), 1000, seed=0)
    limit = 60 if name == "perception_prior" else 0.75 * uniform.regret.sum()
    assert log.regret.sum() < limit, (name, log.regret.sum(), uniform.regret.sum())

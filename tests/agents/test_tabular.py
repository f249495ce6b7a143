"""Tabular agents: hand-computed updates, bootstrapping, determinism, checkpoints, and learning."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.agents.base import CheckpointError, SpaceMismatchError, Transition
from perceptgym.agents.experiments.targets import policy_value
from perceptgym.agents.loop import evaluate, run_episode, train
from perceptgym.agents.registry import load_agent, make_agent
from perceptgym.agents.tabular import (
    DoubleQLearningAgent,
    ExpectedSarsaAgent,
    QLearningAgent,
    SarsaAgent,
    TabularAgent,
)

OBS, ACT = gym.spaces.Discrete(3), gym.spaces.Discrete(2)
TABULAR = ["q_learning", "sarsa", "expected_sarsa", "double_q"]


def agent_with(cls, q, **config):
    agent = cls(OBS, ACT, {"alpha": 0.5, "gamma": 0.9, **config}, np.random.default_rng(0))
    agent.set_tables([np.array(q, dtype=float)] * agent.n_tables)
    return agent


Q0 = [[1.0, 2.0], [3.0, 5.0], [0.0, 0.0]]


def test_q_learning_update_by_hand():
    agent = agent_with(QLearningAgent, Q0)
    agent.update(Transition(obs=0, action=1, reward=1.0, next_obs=1, terminated=False, truncated=False))
    # 2 + 0.5 * (1 + 0.9 * max(3, 5) - 2) = 2 + 0.5 * 3.5 = 3.75
    assert agent.q[0, 1] == pytest.approx(3.75)
    assert agent.q[1].tolist() == [3.0, 5.0]


def test_sarsa_update_by_hand_includes_minus_q():
    agent = agent_with(SarsaAgent, Q0)
    agent.update(Transition(0, 1, 1.0, 1, False, False, next_action=0))
    # 2 + 0.5 * (1 + 0.9 * Q(1, 0)=3 - 2) = 2 + 0.5 * 1.7 = 2.85 (the seed's rule without -Q would give 3.35)
    assert agent.q[0, 1] == pytest.approx(2.85)


def test_expected_sarsa_update_by_hand():
    agent = agent_with(ExpectedSarsaAgent, Q0, epsilon=0.2)
    agent.update(Transition(0, 1, 1.0, 1, False, False))
    expected_next = 0.8 * 5.0 + 0.2 * (3.0 + 5.0) / 2  # greedy gets 1-ε, every action ε/|A|
    assert agent.q[0, 1] == pytest.approx(2 + 0.5 * (1 + 0.9 * expected_next - 2))


def test_double_q_update_by_hand():
    agent = DoubleQLearningAgent(OBS, ACT, {"alpha": 0.5, "gamma": 0.9}, np.random.default_rng(0))
    qa = np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 0.0]])
    qb = np.array([[1.0, 2.0], [7.0, 4.0], [0.0, 0.0]])
    agent.set_tables([qa, qb])
    coin = np.random.default_rng(0).random()  # the agent's first uniform decides which table learns
    agent.update(Transition(0, 1, 1.0, 1, False, False))
    a_table, b_table = agent.tables()
    if coin < 0.5:  # A learns: argmax_A Q_A(1, ·) = 1, valued by B: 4
        assert a_table[0, 1] == pytest.approx(2 + 0.5 * (1 + 0.9 * 4.0 - 2))
        assert b_table[0, 1] == 2.0
    else:  # B learns: argmax_B Q_B(1, ·) = 0, valued by A: 3
        assert b_table[0, 1] == pytest.approx(2 + 0.5 * (1 + 0.9 * 3.0 - 2))
        assert a_table[0, 1] == 2.0


@pytest.mark.parametrize("name", TABULAR)
def test_terminated_does_not_bootstrap_but_truncated_does(name):
    config = {"alpha": 1.0, "gamma": 0.9, "initial_q": 4.0, "epsilon": 0.0}
    done = make_agent(name, OBS, ACT, config, seed=0)
    done.update(Transition(0, 0, 1.0, 1, terminated=True, truncated=False))
    # α=1: the updated table holds the target exactly (Double Q updates one of its two tables)
    assert sorted(t[0, 0] for t in done.tables())[0] == pytest.approx(1.0)
    cut = make_agent(name, OBS, ACT, config, seed=0)
    cut.update(Transition(0, 0, 1.0, 1, terminated=False, truncated=True, next_action=1))
    assert max(t[0, 0] for t in cut.tables()) == pytest.approx(1.0 + 0.9 * 4.0)


def test_run_episode_bootstraps_at_time_limit():
    env = gym.make("FrozenLake-v1", is_slippery=False, max_episode_steps=1)
    agent = make_agent(
        "q_learning",
        env.observation_space,
        env.action_space,
        {"alpha": 1.0, "gamma": 0.5, "initial_q": 4.0, "epsilon": 0.0},
        seed=0,
    )
    run_episode(env, agent, learn=True, seed=0)  # one step from the start, then the time limit
    assert sorted(agent.q[0]) == pytest.approx([0.0 + 0.5 * 4.0, 4.0, 4.0, 4.0])  # r + γ·max Q(s') = 2


def test_greedy_act_and_ties():
    agent = agent_with(QLearningAgent, [[0.0, 0.0], [3.0, 5.0], [2.0, 1.0]], epsilon=1.0)
    assert [agent.act(s, explore=False) for s in range(3)] == [0, 1, 0]
    actions = {agent.act(0, explore=True) for _ in range(200)}
    assert actions == {0, 1}


def test_q_is_read_only():
    agent = agent_with(QLearningAgent, Q0)
    with pytest.raises(ValueError):
        agent.q[0, 0] = 1.0


def test_non_discrete_space_is_refused():
    with pytest.raises(TypeError, match="make_tabular_env"):
        QLearningAgent(gym.spaces.Box(0, 1, (2,)), ACT)


@pytest.mark.parametrize("name", TABULAR)
def test_same_seed_same_training_run(name):
    def run(seed):
        env = gym.make("Taxi-v4")
        agent = make_agent(name, env.observation_space, env.action_space, {"epsilon": 0.3}, seed=seed)
        history = train(env, agent, n_episodes=20, seed=seed)
        return agent.q, [e.ep_return for e in history]

    q1, r1 = run(3)
    q2, r2 = run(3)
    q3, _ = run(4)
    np.testing.assert_array_equal(q1, q2)
    assert r1 == r2
    assert not np.array_equal(q1, q3)


@pytest.mark.parametrize("name", TABULAR)
def test_save_load_round_trip(tmp_path, name):
    env = gym.make("FrozenLake-v1")
    agent = make_agent(name, env.observation_space, env.action_space, {"epsilon": 0.5, "alpha": 0.3}, seed=1)
    train(env, agent, n_episodes=100, seed=1)
    path = agent.save(tmp_path / "agent")
    assert path.suffix == ".npz"
    loaded = load_agent(path, env.observation_space, env.action_space)
    assert type(loaded) is type(agent) and loaded.config == agent.config and loaded.episode == 100
    for a, b in zip(loaded.tables(), agent.tables(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the exploration stream continues where it was: both explore identically from here
    assert [loaded.act(s % 16, explore=True) for s in range(300)] == [
        agent.act(s % 16, explore=True) for s in range(300)
    ]


def test_load_refuses_other_spaces(tmp_path):
    agent = make_agent("q_learning", OBS, ACT, seed=0)
    path = agent.save(tmp_path / "a.npz")
    with pytest.raises(SpaceMismatchError, match=r"observation_space Discrete\(3, start=0\).*Discrete\(4"):
        QLearningAgent.load(path, gym.spaces.Discrete(4), ACT)
    with pytest.raises(SpaceMismatchError, match="action_space"):
        QLearningAgent.load(path, OBS, gym.spaces.Discrete(5))
    with pytest.raises(CheckpointError, match="holds a 'q_learning' agent, not 'sarsa'"):
        SarsaAgent.load(path, OBS, ACT)
    assert isinstance(TabularAgent.load(path), QLearningAgent)


def test_load_refuses_corrupt_wrong_format_and_future_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        QLearningAgent.load(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        QLearningAgent.load(corrupt)
    good = make_agent("q_learning", OBS, ACT, seed=0).save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        QLearningAgent.load(truncated)

    def rewrite(name, **changes):
        with np.load(good, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = {**json.loads(str(arrays.pop("meta"))), **changes}
        np.savez(tmp_path / name, meta=np.array(json.dumps(meta)), **arrays)
        return tmp_path / name

    with pytest.raises(CheckpointError, match=r"holds a 'other' checkpoint, expected 'perceptgym\.tabular'"):
        QLearningAgent.load(rewrite("other.npz", format="other"))
    with pytest.raises(CheckpointError, match="newer than this perceptgym reads"):
        QLearningAgent.load(rewrite("future.npz", version=99))
    with pytest.raises(CheckpointError, match="unknown tabular agent"):
        TabularAgent.load(rewrite("alien.npz", agent="alien"))


def test_short_frozenlake_run_beats_random():
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = make_agent(
        "q_learning", env.observation_space, env.action_space, {"alpha": 0.5, "epsilon": 0.1, "gamma": 0.95}, seed=0
    )
    train(env, agent, n_episodes=300, seed=0)
    learned = evaluate(agent, env, 50, seed=1)
    rng = np.random.default_rng(0)

    class Random:
        def act(self, obs, *, explore):
            return int(rng.integers(4))

    random = evaluate(Random(), env, 200, seed=1)
    assert learned.success_rate == 1.0 and random.success_rate < 0.1


@pytest.mark.slow
def test_cliff_walking_example_6_6():
    """Sutton & Barto Example 6.6: online returns of SARSA ≈ −25 and Q-learning ≈ −50; greedy Q is −13."""
    means = {}
    for name in ("sarsa", "q_learning"):
        last100 = []
        for seed in range(20):
            env = gym.make("CliffWalking-v1")
            agent = make_agent(
                name, env.observation_space, env.action_space, {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}, seed=seed
            )
            history = train(env, agent, n_episodes=500, seed=seed)
            last100.append(np.mean([e.ep_return for e in history[-100:]]))
            if name == "q_learning":
                assert evaluate(agent, env, 1, seed=0).mean_return == -13.0
        means[name] = np.mean(last100)
    assert -30 < means["sarsa"] < -20
    assert -60 < means["q_learning"] < -40


@pytest.mark.slow
def test_taxi_reaches_optimal_return():
    from perceptgym.agents.training import load_hyperparams, split_hyperparams

    run, config = split_hyperparams("q_learning", load_hyperparams("q_learning", "Taxi-v4"))
    assert run.n_episodes <= 10_000
    env = gym.make("Taxi-v4")
    agent = make_agent("q_learning", env.observation_space, env.action_space, config, seed=0)
    train(env, agent, n_episodes=run.n_episodes, seed=0)
    greedy = agent.q.argmax(axis=1)
    assert abs(policy_value(env, greedy, 200) - 7.93) < 0.15  # exact, from Taxi's P
    assert abs(evaluate(agent, env, 2000, seed=1).mean_return - 7.93) < 0.15


@pytest.mark.slow
def test_frozenlake_slippery_success():
    from perceptgym.agents.training import load_hyperparams, split_hyperparams

    run, config = split_hyperparams("q_learning", load_hyperparams("q_learning", "FrozenLake-v1"))
    env = gym.make("FrozenLake-v1")
    agent = make_agent("q_learning", env.observation_space, env.action_space, config, seed=0)
    train(env, agent, n_episodes=run.n_episodes, seed=0)
    assert policy_value(env, agent.q.argmax(axis=1), 100) >= 0.70  # optimal: 0.744
    assert evaluate(agent, env, 2000, seed=1).success_rate >= 0.70

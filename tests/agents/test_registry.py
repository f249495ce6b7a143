from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.agents import registry
from perceptgym.agents.base import CheckpointError
from perceptgym.agents.registry import agent_names, load_agent, make_agent, register_agent
from perceptgym.agents.tabular import QLearningAgent, TabularConfig

OBS, ACT = gym.spaces.Discrete(4), gym.spaces.Discrete(2)


def test_names_include_tabular_and_sb3():
    assert {"q_learning", "sarsa", "expected_sarsa", "double_q", "dqn", "ppo", "a2c"} <= set(agent_names())
    assert agent_names("tabular") == ["double_q", "expected_sarsa", "q_learning", "sarsa"]


def test_unknown_agent_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown agent 'q_learnin'; known agents: \[.*'q_learning'"):
        make_agent("q_learnin", OBS, ACT)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"alpah": 0.1}, r"unknown TabularConfig setting\(s\) \['alpah'\]; valid settings: \['alpha'"),
        ({"alpha": 0.0}, r"alpha=0.0 is out of range; allowed: \(0.0, 1.0\]"),
        ({"gamma": 1.5}, "gamma=1.5 is out of range"),
        ({"epsilon_schedule": "cosine"}, r"epsilon_schedule='cosine' is not allowed; choose one of"),
        ({"epsilon_decay_episodes": 0}, "epsilon_decay_episodes=0 must be an integer >= 1"),
        ({"initial_q": float("nan")}, "initial_q"),
    ],
)
def test_bad_hyperparameters_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        make_agent("q_learning", OBS, ACT, config)


def test_make_agent_accepts_dicts_config_objects_and_seeds():
    a = make_agent("q_learning", OBS, ACT, {"alpha": 0.3}, seed=1)
    b = make_agent("q_learning", OBS, ACT, TabularConfig(alpha=0.3), seed=1)
    assert isinstance(a, QLearningAgent) and a.config == b.config
    assert [a.act(0, explore=True) for _ in range(30)] == [b.act(0, explore=True) for _ in range(30)]


def test_register_a_new_agent(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Greedy(QLearningAgent):
        name = "greedy_q"

    register_agent("greedy_q", Greedy, TabularConfig, kind="tabular")
    assert "greedy_q" in agent_names()
    assert isinstance(make_agent("greedy_q", OBS, ACT), Greedy)
    with pytest.raises(ValueError, match="already registered"):
        register_agent("greedy_q", QLearningAgent, TabularConfig, kind="tabular")


def test_bandit_agents_are_listed():
    assert agent_names("bandit"), "perceptgym.agents.bandit imports but registers no bandit agents"


def test_load_agent_dispatches_and_refuses_unknown_files(tmp_path):
    path = make_agent("sarsa", OBS, ACT, seed=0).save(tmp_path / "s")
    assert type(load_agent(path, OBS, ACT)).__name__ == "SarsaAgent"
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a perceptgym checkpoint"):
        load_agent(tmp_path / "x.npz")
    np.savez(tmp_path / "plain.npz", q=np.zeros(3))
    with pytest.raises(CheckpointError):
        load_agent(tmp_path / "plain.npz")

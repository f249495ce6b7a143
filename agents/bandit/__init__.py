"""Contextual-bandit agents: they play any env with Discrete actions in one-step episodes.

``BANDIT_AGENTS`` maps each agent's name to ``(AgentClass, ConfigClass)``; build one with
``AgentClass(observation_space, action_space, ConfigClass(...), rng)``.
"""

from __future__ import annotations

from perceptgym.agents.bandit.base import BanditAgent
from perceptgym.agents.bandit.epsilon_greedy import EpsilonGreedyAgent, EpsilonGreedyConfig
from perceptgym.agents.bandit.lin_ts import LinTSAgent, LinTSConfig
from perceptgym.agents.bandit.linucb import LinUCBAgent, LinUCBConfig
from perceptgym.agents.bandit.loop import RoundLog, play_rounds
from perceptgym.agents.bandit.neural import NeuralAgent, NeuralConfig
from perceptgym.agents.bandit.perception_prior import PerceptionPriorAgent, PerceptionPriorConfig
from perceptgym.agents.bandit.uniform import UniformAgent, UniformConfig

BANDIT_AGENTS: dict[str, tuple[type[BanditAgent], type]] = {
    cls.name: (cls, cls.config_cls)
    for cls in (UniformAgent, EpsilonGreedyAgent, LinUCBAgent, LinTSAgent, NeuralAgent, PerceptionPriorAgent)
}

__all__ = [
    "BANDIT_AGENTS",
    "BanditAgent",
    "EpsilonGreedyAgent",
    "EpsilonGreedyConfig",
    "LinTSAgent",
    "LinTSConfig",
    "LinUCBAgent",
    "LinUCBConfig",
    "NeuralAgent",
    "NeuralConfig",
    "PerceptionPriorAgent",
    "PerceptionPriorConfig",
    "RoundLog",
    "UniformAgent",
    "UniformConfig",
    "play_rounds",
]

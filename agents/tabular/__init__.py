"""Tabular agents: one algorithm per file, all sharing :class:`perceptgym.agents.tabular.base.TabularAgent`."""

from __future__ import annotations

from perceptgym.agents.tabular.base import TabularAgent, TabularConfig
from perceptgym.agents.tabular.double_q import DoubleQLearningAgent
from perceptgym.agents.tabular.expected_sarsa import ExpectedSarsaAgent
from perceptgym.agents.tabular.q_learning import QLearningAgent
from perceptgym.agents.tabular.sarsa import SarsaAgent

TABULAR_AGENTS: dict[str, type[TabularAgent]] = {
    cls.name: cls for cls in (QLearningAgent, SarsaAgent, ExpectedSarsaAgent, DoubleQLearningAgent)
}

__all__ = [
    "TABULAR_AGENTS",
    "DoubleQLearningAgent",
    "ExpectedSarsaAgent",
    "QLearningAgent",
    "SarsaAgent",
    "TabularAgent",
    "TabularConfig",
]

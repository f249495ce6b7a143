"""Tabular agents: one algorithm per file, all sharing :class:`agents.tabular.base.TabularAgent`."""

from __future__ import annotations

from agents.tabular.base import TabularAgent, TabularConfig
from agents.tabular.double_q import DoubleQLearningAgent
from agents.tabular.expected_sarsa import ExpectedSarsaAgent
from agents.tabular.q_learning import QLearningAgent
from agents.tabular.sarsa import SarsaAgent

TABULAR_AGENTS: dict[str, type[TabularAgent]] = {
    cls.name: cls for cls in (QLearningAgent, SarsaAgent, ExpectedSarsaAgent, DoubleQLearningAgent)
}

__all__ = ["TABULAR_AGENTS", "DoubleQLearningAgent", "ExpectedSarsaAgent", "QLearningAgent", "SarsaAgent",
           "TabularAgent", "TabularConfig"]

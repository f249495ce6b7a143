"""Expected SARSA (van Seijen et al. 2009; Sutton & Barto 2018, eq. 6.9)."""

from __future__ import annotations

from typing import Any

from perceptgym.agents.tabular.base import TabularAgent


class ExpectedSarsaAgent(TabularAgent):
    """Q(s,a) ← Q(s,a) + α[r + γ Σ_a' π(a'|s') Q(s',a') − Q(s,a)] under the agent's ε-greedy policy π.

    π puts (1 − ε) on the greedy action and ε/|A| on every action, so the expectation is
    (1 − ε)·max Q(s',·) + ε·mean Q(s',·).
    """

    name = "expected_sarsa"

    def _next_value(self, s2: int, next_obs: Any, next_action: Any) -> float:
        row = self._q[s2]
        return (1.0 - self.epsilon) * max(row) + self.epsilon * sum(row) / self.n_actions

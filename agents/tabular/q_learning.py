"""Q-learning (Watkins 1989; Sutton & Barto 2018, eq. 6.8): off-policy TD control."""

from __future__ import annotations

from typing import Any

from perceptgym.agents.tabular.base import TabularAgent


class QLearningAgent(TabularAgent):
    """Q(s,a) ← Q(s,a) + α[r + γ max_a' Q(s',a') − Q(s,a)]; the target is r alone when ``terminated``."""

    name = "q_learning"

    def _next_value(self, s2: int, next_obs: Any, next_action: Any) -> float:
        return max(self._q[s2])

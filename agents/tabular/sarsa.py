"""SARSA (Rummery & Niranjan 1994; Sutton & Barto 2018, eq. 6.7): on-policy TD control."""

from __future__ import annotations

from typing import Any

from perceptgym.agents.tabular.base import TabularAgent


class SarsaAgent(TabularAgent):
    """Q(s,a) ← Q(s,a) + α[r + γ Q(s',a') − Q(s,a)], with a' the action the agent takes next.

    The project's seed prints this rule as Q(s,a) ← Q(s,a) + α[r + γQ(s',a')], without the −Q(s,a) term; that
    is not a TD update (Q grows without bound). This is the correct rule from Sutton & Barto.
    """

    name = "sarsa"
    on_policy = True

    def _next_value(self, s2: int, next_obs: Any, next_action: Any) -> float:
        if next_action is None:  # a Transition without a' (after truncation): draw it from the policy
            next_action = self.act(next_obs, explore=True)
        return self._q[s2][next_action - self._act_start]

"""Double Q-learning (van Hasselt 2010; Sutton & Barto 2018, section 6.7): removes maximisation bias."""

from __future__ import annotations

from typing import Any

from perceptgym.agents.tabular.base import TabularAgent


class DoubleQLearningAgent(TabularAgent):
    """Two tables: a fair coin picks the one to update; it chooses a' and the other one values it.

    Q_A(s,a) ← Q_A(s,a) + α[r + γ Q_B(s', argmax_a' Q_A(s',a')) − Q_A(s,a)] (and symmetrically).
    The agent acts ε-greedily on Q_A + Q_B; ``agent.q`` is their mean.
    """

    name = "double_q"
    n_tables = 2

    def _values(self, s: int) -> list[float]:
        return [x + y for x, y in zip(self._tables[0][s], self._tables[1][s], strict=True)]

    @property
    def q(self):
        q = (self.tables()[0] + self.tables()[1]) / 2.0
        q.flags.writeable = False
        return q

    def update_step(
        self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool, next_action: Any = None
    ) -> None:
        first, second = self._tables if self._uniform() < 0.5 else self._tables[::-1]
        row = first[obs - self._obs_start]
        a = action - self._act_start
        if terminated:
            target = reward
        else:
            s2 = next_obs - self._obs_start
            nxt = first[s2]
            target = reward + self.gamma * second[s2][nxt.index(max(nxt))]
        row[a] += self.alpha * (target - row[a])

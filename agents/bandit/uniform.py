"""The uniform-random baseline: every arm with probability 1/K, whatever the context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.agents.bandit.base import BanditAgent
from perceptgym.agents.base import Transition


@dataclass(frozen=True)
class UniformConfig:
    """No settings: the baseline learns nothing."""


class UniformAgent(BanditAgent):
    """Pulls a uniformly random arm (exploring or not): the regret baseline, 9/10 per round on DigitBandit."""

    name = "uniform"
    config_cls = UniformConfig

    def _scores(self, obs, explore: bool) -> np.ndarray:
        return self.rng.random(self.n_actions)

    def update(self, t: Transition) -> None:
        self.t += 1

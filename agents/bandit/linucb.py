"""LinUCB with disjoint linear models (Li, Chu, Langford & Schapire 2010, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.agents.bandit.linear import LinearAgent, LinearConfig


@dataclass(frozen=True)
class LinUCBConfig(LinearConfig):
    """Attributes:
    alpha: width of the confidence bound, ``theta_a . x + alpha sqrt(x^T A_a^-1 x)``.
    """

    alpha: float = 0.5


class LinUCBAgent(LinearAgent):
    """Pulls the arm with the highest upper confidence bound of its ridge estimate."""

    name = "linucb"
    config_cls = LinUCBConfig

    def _scores(self, obs, explore: bool) -> np.ndarray:
        x = self.features(obs)
        mean = self.model.mean(x)
        if not explore:
            return mean
        # Ties (e.g. the first round) are broken at random rather than always towards arm 0.
        return mean + self.config.alpha * np.sqrt(self.model.variance(x)) + 1e-9 * self.rng.random(self.n_actions)

"""Linear Thompson sampling (Agrawal & Goyal 2013) on per-arm ridge posteriors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.agents.bandit.linear import LinearAgent, LinearConfig


@dataclass(frozen=True)
class LinTSConfig(LinearConfig):
    """Attributes:
    v: posterior scale; each round samples ``theta_a ~ N(A_a^-1 b_a, v^2 A_a^-1)``.
    """

    v: float = 0.1


class LinTSAgent(LinearAgent):
    """Samples each arm's reward from its ridge posterior and pulls the best sample.

    Only ``theta_a . x`` matters for the choice, so it samples that scalar directly,
    ``N(theta_a . x, v^2 x^T A_a^-1 x)``, instead of a whole d-dimensional ``theta_a`` (same distribution of
    the action, O(d^2) instead of a Cholesky factor per arm per round).
    """

    name = "lin_ts"
    config_cls = LinTSConfig

    def _scores(self, obs, explore: bool) -> np.ndarray:
        x = self.features(obs)
        mean = self.model.mean(x)
        if not explore:
            return mean
        return mean + self.config.v * np.sqrt(self.model.variance(x)) * self.rng.standard_normal(self.n_actions)

"""ε-greedy on per-arm ridge estimates (tabular means when the observation is Discrete: one-hot features)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.agents.bandit.linear import LinearAgent, LinearConfig


@dataclass(frozen=True)
class EpsilonGreedyConfig(LinearConfig):
    """Attributes:
    epsilon_start: exploration rate in round 0.
    epsilon_end: exploration rate after ``decay_rounds`` rounds (linear decay in between, as cleanrl's
        ``linear_schedule``).
    decay_rounds: rounds over which ε decays [rounds].
    """

    epsilon_start: float = 1.0
    epsilon_end: float = 0.02
    decay_rounds: int = 500

    def __post_init__(self) -> None:
        for name in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.decay_rounds < 0:
            raise ValueError(f"decay_rounds must be >= 0, got {self.decay_rounds!r}")


class EpsilonGreedyAgent(LinearAgent):
    """Pulls a uniformly random arm with probability ε, else the arm with the best ridge estimate."""

    name = "epsilon_greedy"
    config_cls = EpsilonGreedyConfig

    @property
    def epsilon(self) -> float:
        cfg = self.config
        frac = min(1.0, self.t / cfg.decay_rounds) if cfg.decay_rounds else 1.0
        return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)

    def _scores(self, obs, explore: bool) -> np.ndarray:
        if explore and self.rng.random() < self.epsilon:
            return self.rng.random(self.n_actions)
        mean = self.model.mean(self.features(obs))
        # Random tie-breaking (all estimates are 0 before any reward).
        return mean + 1e-9 * self.rng.random(self.n_actions) if explore else mean

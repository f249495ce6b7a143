"""The shared body of the linear agents (ε-greedy, LinUCB, linear TS): features and per-arm ridge models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perceptgym.agents.bandit.base import BanditAgent
from perceptgym.agents.bandit.features import FeatureMap
from perceptgym.agents.bandit.ridge import RidgeArms
from perceptgym.agents.base import Transition


@dataclass(frozen=True)
class LinearConfig:
    """Features and ridge prior of a linear agent.

    Attributes:
        pool: average-pool 2-D image observations by this factor (28x28 -> 14x14 with 2); 1 = raw pixels.
        random_features: if > 0, this many random ReLU features of the (pooled) input; 0 = linear in it.
        normalize: scale each feature vector to unit L2 norm (before the bias).
        lam: ridge regularisation (prior precision) of each arm's weights.
    """

    pool: int = 2
    random_features: int = 0
    normalize: bool = True
    lam: float = 1.0


class LinearAgent(BanditAgent):
    """A bandit agent whose arms are ridge regressions on :class:`FeatureMap` features."""

    def _setup(self) -> None:
        cfg = self.config
        self.features = FeatureMap(
            self.observation_space,
            pool=cfg.pool,
            random_features=cfg.random_features,
            normalize=cfg.normalize,
            rng=self.rng,
        )
        self.model = RidgeArms(self.n_actions, self.features.dim, cfg.lam)

    def update(self, t: Transition) -> None:
        self.model.update(self._arm(t.action), self.features(t.obs), float(t.reward))
        self.t += 1

    def _state(self) -> dict[str, np.ndarray]:
        state = self.model.state()
        if self.features.projection is not None:
            state |= {"projection": self.features.projection, "offset": self.features.offset}
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.model.set_state(arrays)
        if self.features.projection is not None:
            self.features.projection, self.features.offset = arrays["projection"], arrays["offset"]

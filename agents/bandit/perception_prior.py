"""A Thompson-sampling agent that starts from a trained digit classifier and keeps exploring.

The context is what the classifier reads, ``(label l, confidence bin j)``. For each context and arm ``a`` the
agent keeps a Beta posterior over the probability that ``a`` is rewarded, with a prior that trusts the
classifier: mean ``c_j`` for ``a = l`` (``c_j`` the bin's typical confidence) and ``(1 - c_j) / (K - 1)`` for
the others, worth ``prior_strength`` pseudo-rounds. Each round it samples every arm's Beta and pulls the best
sample (Beta-Bernoulli Thompson sampling, Chapelle & Li 2011; fractional rewards are rescaled to [0, 1]). So
it starts near the classifier's accuracy, learns where the classifier is miscalibrated or systematically
wrong. With ``discount`` < 1 all of a context's counts, the classifier's prior included, decay towards a weak
uninformed prior (Beta(1/K, 1 - 1/K)) each time the context is seen, as in discounted Thompson sampling
(Raj & Kalyani 2017), so the agent re-learns a label permutation that drifts away from what the classifier
says.

Observations: 28x28 images (read with ``reader``; the default ``"cnn"`` is the shipped classifier, loaded on
first use), DigitBandit's ``perceived`` dict (``label`` and ``confidence``), or a ``Discrete`` read label.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from perceptgym.agents.bandit.base import BanditAgent, restore_arrays
from perceptgym.agents.base import Transition
from perceptgym.envs.digits import Reader, resolve_reader


@dataclass(frozen=True)
class PerceptionPriorConfig:
    """Attributes:
    reader: the classifier used on image observations: a name in ``perceptgym.envs.digits.READER_NAMES`` or a path.
    prior_strength: how many rounds of evidence the classifier's prior is worth.
    confidence_bins: inner edges of the confidence bins (contexts are (read label, bin)).
    assumed_accuracy: prior accuracy of the read label when the observation carries no confidence.
    reward_low: the reward of a miss (rewards are rescaled to [0, 1] from [reward_low, reward_high]).
    reward_high: the reward of a hit.
    discount: after each update, the context's counts decay by this factor towards a weak uninformed prior;
        1 = never forget (the classifier prior stays), < 1 tracks a drifting task.
    """

    reader: str = "cnn"
    prior_strength: float = 20.0
    confidence_bins: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
    assumed_accuracy: float = 0.95
    reward_low: float = 0.0
    reward_high: float = 1.0
    discount: float = 1.0

    def __post_init__(self) -> None:
        edges = (0.0, *self.confidence_bins, 1.0)
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"confidence_bins must increase strictly inside (0, 1), got {self.confidence_bins!r}")
        if self.prior_strength <= 0 or not 0 < self.assumed_accuracy < 1 or self.reward_high <= self.reward_low:
            raise ValueError(f"need prior_strength > 0, 0 < assumed_accuracy < 1, reward_high > reward_low: {self}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}")


class PerceptionPriorAgent(BanditAgent):
    """Beta-Bernoulli Thompson sampling per (read label, confidence bin), with the classifier as prior."""

    name = "perception_prior"
    config_cls = PerceptionPriorConfig

    def _setup(self, reader: Reader | None = None) -> None:
        observation_space = self.observation_space
        cfg = self.config
        if isinstance(observation_space, spaces.Box):
            if observation_space.shape not in ((28, 28), (28, 28, 1)):
                raise TypeError(
                    f"PerceptionPriorAgent reads 28x28 digit images; got a Box of shape {observation_space.shape}"
                )
            self._kind = "image"
        elif isinstance(observation_space, spaces.Dict) and {"label", "confidence"} <= set(observation_space.spaces):
            self._kind = "perceived"
        elif isinstance(observation_space, spaces.Discrete):
            self._kind = "label"
        else:
            raise TypeError(
                "PerceptionPriorAgent needs 28x28 images, a Dict with 'label' and 'confidence' or a "
                f"Discrete read label; got {observation_space}"
            )
        self._reader = reader
        k = self.n_actions
        edges = np.array((0.0, *cfg.confidence_bins, 1.0))
        self._inner_edges = edges[1:-1]
        reps = (edges[:-1] + edges[1:]) / 2 if self._kind != "label" else np.array([cfg.assumed_accuracy])
        # prior[j, l, a]: prior probability that arm a is right when the classifier reads l in bin j.
        hit = reps[:, None, None] * np.eye(k)[None]
        miss = ((1.0 - reps) / (k - 1))[:, None, None] * (1.0 - np.eye(k))[None]
        mean = hit + miss
        self.alpha = np.maximum(cfg.prior_strength * mean, 1e-3)
        self.beta = np.maximum(cfg.prior_strength * (1.0 - mean), 1e-3)
        self._context_cache: tuple[Any, tuple[int, int]] | None = None  # (obs, context) of the last act()

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = resolve_reader(self.config.reader)
        return self._reader

    def context(self, obs: Any) -> tuple[int, int]:
        """(confidence bin, read label) of an observation."""
        if self._kind == "image":
            labels, conf = self.reader(np.asarray(obs, dtype=np.uint8).reshape(1, 28, 28))
            label, confidence = int(np.asarray(labels).reshape(-1)[0]), float(np.asarray(conf).reshape(-1)[0])
        elif self._kind == "perceived":
            label, confidence = int(obs["label"]), float(np.asarray(obs["confidence"]).reshape(-1)[0])
        else:
            return 0, int(obs) - int(self.observation_space.start)
        if not 0 <= label < self.n_actions:
            raise ValueError(f"the reader returned label {label}, outside the {self.n_actions} arms")
        return int(np.searchsorted(self._inner_edges, confidence, side="right")), label

    def _scores(self, obs: Any, explore: bool) -> np.ndarray:
        j, label = self.context(obs)
        if self._kind == "image":  # reading is the costly part: update() reuses it for the same image
            self._context_cache = (np.array(obs, copy=True), (j, label))
        a, b = self.alpha[j, label], self.beta[j, label]
        if not explore:
            return a / (a + b)
        return self.rng.beta(a, b)

    def update(self, t: Transition) -> None:
        cfg = self.config
        cached, self._context_cache = self._context_cache, None
        same = cached is not None and np.array_equal(cached[0], t.obs)
        j, label = cached[1] if same else self.context(t.obs)
        arm = self._arm(t.action)
        s = float(np.clip((t.reward - cfg.reward_low) / (cfg.reward_high - cfg.reward_low), 0.0, 1.0))
        if cfg.discount < 1.0:
            base = 1.0 / self.n_actions
            for post, weak in ((self.alpha, base), (self.beta, 1.0 - base)):
                post[j, label] = weak + cfg.discount * (post[j, label] - weak)
        self.alpha[j, label, arm] += s
        self.beta[j, label, arm] += 1.0 - s
        self.t += 1

    def _state(self) -> dict[str, np.ndarray]:
        return {"alpha": self.alpha, "beta": self.beta}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        restore_arrays(self, arrays, ("alpha", "beta"))

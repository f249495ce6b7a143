"""DigitBandit world model: parameters, actions, context blocks and the reward rule. No gym, no pygame.

Each round shows a handwritten digit ``y``; the agent answers a label ``a``. The rewarded label is
``perm[y]`` (``perm`` is the identity unless the task is non-stationary), possibly replaced by a random label
(label noise), and the resulting reward may be flipped (reward noise). Everything random is drawn ahead in
blocks (:func:`draw_block`) from one Generator, so a seed fixes the whole stream and a step costs a few
array look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from perceptgym.envs.digits import NUM_DIGITS, DigitSource

#: Reward schemes: (reward for the right label, reward for a wrong one).
REWARD_SCHEMES: dict[str, tuple[float, float]] = {"binary": (1.0, 0.0), "plus_minus": (1.0, -1.0)}
OBS_MODES = ("pixels", "perceived", "perceived-confidence", "symbolic")
#: Former names still accepted: "perceived-label" was the name of "perceived" when "perceived" was the Dict.
OBS_MODE_ALIASES = {"perceived-label": "perceived"}


class Action(IntEnum):
    """The label the agent answers."""

    ZERO = 0
    ONE = 1
    TWO = 2
    THREE = 3
    FOUR = 4
    FIVE = 5
    SIX = 6
    SEVEN = 7
    EIGHT = 8
    NINE = 9


@dataclass(frozen=True)
class Params:
    """Validated, frozen options of the bandit.

    Attributes:
        reward_scheme: "binary" (1 right / 0 wrong) or "plus_minus" (+1 / -1, as bsuite's MNIST bandit).
        label_noise: probability in [0, 1) that a round rewards a uniformly random label instead of the
            (permuted) true one.
        reward_noise: probability in [0, 0.5) that the reward is flipped (right <-> wrong value).
        permute_every: the label permutation is redrawn every this many rounds [rounds]; 0 = never.
        block_size: contexts drawn per call to the digit source [rounds]; only affects speed, not the
            distribution (but the stream for a seed depends on it).
    """

    reward_scheme: str = "binary"
    label_noise: float = 0.0
    reward_noise: float = 0.0
    permute_every: int = 0
    block_size: int = 1024

    def __post_init__(self) -> None:
        if self.reward_scheme not in REWARD_SCHEMES:
            raise ValueError(f"reward_scheme must be one of {tuple(REWARD_SCHEMES)}, got {self.reward_scheme!r}")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must be a probability in [0, 1), got {self.label_noise!r}")
        if not 0.0 <= self.reward_noise < 0.5:
            raise ValueError(
                f"reward_noise must be a flip probability in [0, 0.5) (at 0.5 rewards carry no signal), "
                f"got {self.reward_noise!r}"
            )
        if (
            isinstance(self.permute_every, bool)
            or not isinstance(self.permute_every, int | np.integer)
            or self.permute_every < 0
        ):
            raise ValueError(f"permute_every must be an int >= 0 (0 = never permute), got {self.permute_every!r}")
        if (
            isinstance(self.block_size, bool)
            or not isinstance(self.block_size, int | np.integer)
            or self.block_size < 1
        ):
            raise ValueError(f"block_size must be an int >= 1, got {self.block_size!r}")

    @property
    def reward_right(self) -> float:
        return REWARD_SCHEMES[self.reward_scheme][0]

    @property
    def reward_wrong(self) -> float:
        return REWARD_SCHEMES[self.reward_scheme][1]

    def expected_rewards(self) -> tuple[float, float]:
        """Expected reward of the optimal action and of any other action, given the context.

        The optimal action ``perm[y]`` is rewarded with probability
        ``p_right = (1 - label_noise) + label_noise / 10``; every other one with
        ``p_wrong = label_noise / 10``;
        a reward flip with probability ``q`` turns a success probability ``p`` into ``p (1 - q) + (1 - p) q``.
        """
        hi, lo = self.reward_right, self.reward_wrong
        q = self.reward_noise
        p_right = (1.0 - self.label_noise) + self.label_noise / NUM_DIGITS
        p_wrong = self.label_noise / NUM_DIGITS
        flip = lambda p: p * (1.0 - q) + (1.0 - p) * q  # noqa: E731
        return lo + (hi - lo) * flip(p_right), lo + (hi - lo) * flip(p_wrong)


@dataclass(frozen=True)
class Block:
    """Contexts for ``len(labels)`` rounds, drawn together.

    Attributes:
        labels: the true digit shown each round.
        images: ``(n, 28, 28)`` uint8 images of those digits.
        reward_labels: the digit whose (permuted) label is rewarded: the true one, or a random one where
            label noise struck.
        flips: where True, the round's reward is flipped.
    """

    labels: npt.NDArray[np.int64]
    images: npt.NDArray[np.uint8]
    reward_labels: npt.NDArray[np.int64]
    flips: npt.NDArray[np.bool_]


def draw_block(n: int, source: DigitSource, params: Params, rng: np.random.Generator) -> Block:
    """Draws ``n`` rounds of contexts and noise from ``rng`` (labels uniform over the 10 digits).

    ``source`` is expected to return valid images: the envs pass a :class:`perceptgym.envs.digits.LazySource`,
    which checks them.
    """
    labels = rng.integers(0, NUM_DIGITS, size=n, dtype=np.int64)
    images = source(labels, rng)
    reward_labels = labels
    if params.label_noise > 0:
        noisy = rng.random(n) < params.label_noise
        reward_labels = np.where(noisy, rng.integers(0, NUM_DIGITS, size=n, dtype=np.int64), labels)
    flips = rng.random(n) < params.reward_noise if params.reward_noise > 0 else np.zeros(n, dtype=bool)
    return Block(labels=labels, images=images, reward_labels=reward_labels, flips=flips)


def draw_permutation(current: npt.NDArray[np.int64], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """A new label permutation that differs from ``current`` (so every change really changes the task)."""
    while True:
        perm = rng.permutation(NUM_DIGITS).astype(np.int64)
        if not np.array_equal(perm, current):
            return perm


def reward_for(action: int, reward_label: int, flip: bool, perm: npt.NDArray[np.int64], params: Params) -> float:
    """The realised reward of answering ``action`` in a round whose rewarded digit is ``reward_label``."""
    right = (action == perm[reward_label]) != flip
    return params.reward_right if right else params.reward_wrong

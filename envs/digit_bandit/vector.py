"""DigitBanditVectorEnv: ``num_envs`` digit bandits stepped together with numpy (``gym.make_vec``).

Every episode is one round, so every sub-env terminates at every step and is reset in the same step
(``AutoresetMode.SAME_STEP``): ``step`` returns the rewards of the rounds just answered and the observations
of the next rounds; ``info`` describes the rounds just answered (arrays of length ``num_envs``; in the
perceived modes also ``label_read`` and ``label_confidence``) and ``info["final_obs"]`` holds their
observations. One Generator draws all sub-envs' contexts in blocks, so ``reset(seed=s)`` fixes the whole
batch stream; with ``permute_every`` each sub-env has its own permutation, all redrawn on the same rounds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from perceptgym.envs.checks import ResetNeeded, check_options, check_seed
from perceptgym.envs.digit_bandit.core import Block, draw_block, draw_permutation
from perceptgym.envs.digit_bandit.env import PERCEIVED_MODES, DigitBanditEnv, observe
from perceptgym.envs.digits import NUM_DIGITS


class DigitBanditVectorEnv(VectorEnv):
    """A batch of DigitBandit envs in one numpy env; kwargs as :class:`DigitBanditEnv` plus ``num_envs``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError("DigitBanditVectorEnv does not render; use DigitBanditEnv (gym.make) to watch")
        # One single env holds the validated options and the lazily loaded source and reader.
        self._proto = DigitBanditEnv(**kwargs)
        self.params, self.obs_mode = self._proto.params, self._proto.obs_mode
        self.num_envs = int(num_envs)
        self.render_mode = None
        self.single_observation_space = self._proto.observation_space
        self.single_action_space = self._proto.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._expected_right, self._expected_wrong = self.params.expected_rewards()
        self._block: Block | None = None
        self._read: tuple[np.ndarray, np.ndarray] | None = None
        self._i = 0  # first round of the current batch in the block
        self._round = 0
        self._perms = np.tile(np.arange(NUM_DIGITS, dtype=np.int64), (self.num_envs, 1))
        self._rows = np.arange(self.num_envs)
        self._obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        check_options(options, ())
        super().reset(seed=check_seed(seed))
        self._block, self._read, self._round = None, None, 0
        self._perms = np.tile(np.arange(NUM_DIGITS, dtype=np.int64), (self.num_envs, 1))
        self._next_batch()
        info = {"round": np.zeros(self.num_envs, dtype=np.int64)}
        self._add_reads(info, slice(self._i, self._i + self.num_envs))
        return self._obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self._block is None:
            raise ResetNeeded("DigitBanditVectorEnv: call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= 10:
            raise ValueError(f"actions must be {self.num_envs} int labels in 0..9, got {actions!r}")
        sl = slice(self._i, self._i + self.num_envs)
        block, perms, rows = self._block, self._perms, self._rows
        optimal = perms[rows, block.labels[sl]]
        right = (a == perms[rows, block.reward_labels[sl]]) != block.flips[sl]
        rewards = np.where(right, self.params.reward_right, self.params.reward_wrong)
        hit = a == optimal
        info = {
            "label": block.labels[sl].copy(),
            "optimal_action": optimal,
            "expected_reward": np.where(hit, self._expected_right, self._expected_wrong),
            "regret": np.where(hit, 0.0, self._expected_right - self._expected_wrong),
            "round": np.full(self.num_envs, self._round, dtype=np.int64),
            "final_obs": self._obs,
        }
        self._add_reads(info, sl)
        self._round += 1
        k = self.params.permute_every
        if k and self._round % k == 0:
            self._perms = np.stack([draw_permutation(p, self.np_random) for p in perms])
        self._i += self.num_envs
        self._next_batch()
        done = np.ones(self.num_envs, dtype=bool)
        return self._obs, rewards, done, np.zeros(self.num_envs, dtype=bool), info

    @property
    def permutations(self) -> np.ndarray:
        """Each sub-env's label permutation, shape ``(num_envs, 10)``."""
        return self._perms.copy()

    def _add_reads(self, info: dict[str, Any], sl: slice) -> None:
        if self._read is not None:
            info["label_read"], info["label_confidence"] = self._read[0][sl].copy(), self._read[1][sl].copy()

    def _next_batch(self) -> None:
        n = self.num_envs
        if self._block is None or self._i + n > len(self._block.labels):
            # Whole batches per block: block_size rounded up to a multiple of num_envs.
            size = -(-max(self.params.block_size, n) // n) * n
            block = draw_block(size, self._proto._source, self.params, self.np_random)
            read = self._proto._reading(block.images) if self.obs_mode in PERCEIVED_MODES else None  # one batch
            self._block, self._read, self._i = block, read, 0
        self._obs = observe(self.obs_mode, self._block, self._read, slice(self._i, self._i + n))

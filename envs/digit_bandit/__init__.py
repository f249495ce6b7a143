"""DigitBandit: the handwritten-digit bandit (see :class:`perceptgym.envs.digit_bandit.env.DigitBanditEnv`)."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "perceptgym/DigitBandit-v0"
ENTRY_POINT = "perceptgym.envs.digit_bandit.env:DigitBanditEnv"
VECTOR_ENTRY_POINT = "perceptgym.envs.digit_bandit.vector:DigitBanditVectorEnv"


def register_digit_bandit() -> None:
    """Registers ``perceptgym/DigitBandit-v0`` once (calling it again does nothing).

    ``gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")`` gives the numpy-batched
    :class:`perceptgym.envs.digit_bandit.vector.DigitBanditVectorEnv`; "sync"/"async" wrap n single envs as usual.
    """
    if ENV_ID in gym.registry:
        return
    gym.register(id=ENV_ID, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT)

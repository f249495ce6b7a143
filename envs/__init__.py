"""perceptgym environments. Importing this package registers them with Gymnasium.

``gym.make("perceptgym/GridDriving-v0")`` after ``import envs``; ``gym.make_vec(id, num_envs=n,
vectorization_mode="vector_entry_point")`` gives either env's numpy-batched vector env. In a fresh process
(subprocess vector envs, SB3's SubprocVecEnv workers), ``gym.make("perceptgym:perceptgym/GridDriving-v0")``
imports and registers first.
"""

from __future__ import annotations

import gymnasium as gym

GRID_DRIVING_ID = "perceptgym/GridDriving-v0"
DIGIT_BANDIT_ID = "perceptgym/DigitBandit-v0"


def register_envs() -> None:
    """Registers the perceptgym envs; safe to call more than once (the registry is one global dict)."""
    from perceptgym.envs.digit_bandit import register_digit_bandit

    register_digit_bandit()
    if GRID_DRIVING_ID in gym.registry:
        return
    # String entry points: nothing heavy is imported until an env is made.
    gym.register(
        id=GRID_DRIVING_ID,
        entry_point="perceptgym.envs.grid_driving.env:GridDrivingEnv",
        vector_entry_point="perceptgym.envs.grid_driving.vector:GridDrivingVectorEnv",
        max_episode_steps=200,
        kwargs={"map": "small", "obs_mode": "symbolic", "digit_source": "mnist-train", "reader": "cnn"},
    )


register_envs()

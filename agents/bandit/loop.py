"""Playing a bandit agent on a one-step-episode env and recording what each round cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from perceptgym.agents.base import StepLearner, Transition


@dataclass
class RoundLog:
    """Per-round records of a run (arrays of length ``n_rounds``).

    ``regret`` is the env's ``info["regret"]`` (pseudo-regret) where the env reports it, else NaN.
    """

    action: np.ndarray
    reward: np.ndarray
    regret: np.ndarray
    optimal_action: np.ndarray

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)


def play_rounds(
    env: gym.Env,
    agent: StepLearner,
    n_rounds: int,
    *,
    seed: int | None = None,
    learn: bool = True,
    explore: bool = True,
    callback: Callable[[int, RoundLog], None] | None = None,
) -> RoundLog:
    """Plays ``n_rounds`` one-step episodes of ``env`` with ``agent``, learning after each if ``learn``.

    The env is reset with ``seed`` once, then without a seed (Gymnasium's seeding convention). An episode
    that does not end after one step raises: these agents treat every step as an independent round.
    ``callback(round_index, log)`` is called every round (for progress bars).
    """
    log = RoundLog(
        action=np.zeros(n_rounds, dtype=np.int64),
        reward=np.zeros(n_rounds),
        regret=np.full(n_rounds, np.nan),
        optimal_action=np.full(n_rounds, -1, dtype=np.int64),
    )
    for i in range(n_rounds):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        action = agent.act(obs, explore=explore)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if not (terminated or truncated):
            raise RuntimeError("play_rounds needs one-step episodes (terminated or truncated after every step)")
        if learn:
            agent.update(Transition(obs, action, float(reward), next_obs, terminated, truncated, info=info))
        log.action[i], log.reward[i] = action, reward
        if "regret" in info:
            log.regret[i] = info["regret"]
        if "optimal_action" in info:
            log.optimal_action[i] = info["optimal_action"]
        if callback is not None:
            callback(i, log)
    return log

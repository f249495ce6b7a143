"""Episode loops that only use the agent interface: training step learners, and evaluating any agent.

``run_episode`` is shared by every :class:`perceptgym.agents.base.StepLearner` (tabular and bandit agents). It calls the
agent's fast ``update_step(obs, action, reward, next_obs, terminated, next_action)`` when there is one and
builds a :class:`perceptgym.agents.base.Transition` for ``update`` otherwise: allocating a frozen dataclass per step
costs about as much as a Taxi step itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TimeLimit

from perceptgym.agents.base import Agent, Transition
from perceptgym.agents.config import check_positive_int

DEFAULT_STEP_LIMIT = 10_000
"""steps after which an episode of an env without a time limit is cut (truncated), so that no loop runs forever:
a greedy policy can walk into a wall for ever in CliffWalking, which has none"""


def has_time_limit(env: gym.Env) -> bool:
    """Whether ``env`` or a wrapper below it is a :class:`gymnasium.wrappers.TimeLimit`."""
    return time_limit(env) is not None


def time_limit(env: gym.Env) -> int | None:
    """The step limit of the outermost :class:`gymnasium.wrappers.TimeLimit` in ``env``'s wrappers (None: none)."""
    while True:
        if isinstance(env, TimeLimit):
            return int(env._max_episode_steps)  # TimeLimit exposes it only as this attribute (Gymnasium 1.x)
        if not isinstance(env, gym.Wrapper):
            return None
        env = env.env


@dataclass(frozen=True)
class Episode:
    """What one finished episode gives the callbacks and the logs."""

    index: int
    """0-based episode number (continues across resumes)"""
    global_step: int
    """env steps taken so far, this episode included"""
    ep_return: float
    length: int
    terminated: bool
    success: bool


EpisodeCallback = Callable[[Episode], Any]


def action_mask(env: gym.Env, obs: Any, info: dict) -> np.ndarray | None:
    """The actions ``env`` allows in its current state (bool, True: allowed), None when it does not say.

    sb3-contrib's convention first, an ``action_masks()`` method of the env or of one of its wrappers; then
    ``info["action_mask"]`` (GridDriving's) from the reset or step that gave ``obs``; then an ``action_mask``
    key of a dict observation.
    """
    try:
        masks = env.get_wrapper_attr("action_masks")
    except AttributeError:
        masks = None
    if callable(masks):
        return np.asarray(masks(), dtype=bool)
    if "action_mask" in info:
        return np.asarray(info["action_mask"], dtype=bool)
    if isinstance(obs, dict) and "action_mask" in obs:
        return np.asarray(obs["action_mask"], dtype=bool)
    return None


def choose_action(agent: Agent, env: gym.Env, obs: Any, info: dict, *, explore: bool = False) -> Any:
    """``agent.act(obs)``, given the env's :func:`action_mask` when the agent uses masks (``uses_action_masks``)."""
    if getattr(agent, "uses_action_masks", False):
        return agent.act(obs, explore=explore, action_mask=action_mask(env, obs, info))
    return agent.act(obs, explore=explore)


def is_success(info: dict, reward: float, terminated: bool) -> bool:
    """Whether an episode that ended with this step succeeded.

    ``info["is_success"]`` when the env reports it (our envs, SB3's convention); otherwise a *positive reward
    on termination* (reaching the goal in FrozenLake, dropping the passenger in Taxi). Envs that end with a
    non-positive reward on success (CliffWalking: −1) or a positive one on failure (CartPole: +1 when the
    pole falls) need ``is_success`` for this rate to mean anything.
    """
    if "is_success" in info:
        return bool(info["is_success"])
    return bool(terminated and reward > 0)


def run_episode(
    env: gym.Env, agent: Agent, *, learn: bool = False, seed: int | None = None, max_steps: int | None = None
) -> tuple[float, int, bool, bool]:
    """Plays one episode; learns from every step when ``learn`` (ε-greedy), else acts greedily.

    Args:
        env: a Gymnasium env whose spaces match the agent's.
        agent: any agent; ``learn=True`` needs a step learner (``update_step`` or ``update``).
        learn: explore and update after each step.
        seed: passed to ``env.reset`` (give it for the first episode only).
        max_steps: stop after this many steps, treated as a truncation (the last target still bootstraps);
            None: the env's time limit, or :data:`DEFAULT_STEP_LIMIT` for an env without one.

    Returns:
        (return, length, terminated, success).
    """
    if max_steps is None:
        max_steps = None if has_time_limit(env) else DEFAULT_STEP_LIMIT
    else:
        check_positive_int("max_steps", max_steps)
    obs, info = env.reset(seed=seed)
    act, step = agent.act, env.step
    if getattr(agent, "uses_action_masks", False):

        def act(o: Any, *, explore: bool) -> Any:  # ``info`` is that of the reset or step that gave ``o``
            return choose_action(agent, env, o, info, explore=explore)

    fast = getattr(agent, "update_step", None)
    slow = agent.update if learn and fast is None else None
    update = fast if learn else None
    on_policy = bool(getattr(agent, "on_policy", False))
    action = act(obs, explore=learn)
    ep_return, length = 0.0, 0
    while True:
        next_obs, reward, terminated, truncated, info = step(action)
        ep_return += reward
        length += 1
        done = terminated or truncated or length == max_steps
        if update is not None:
            if on_policy:  # SARSA: the target uses a', so pick it first (also after truncation, to bootstrap)
                next_action = None if terminated else act(next_obs, explore=True)
                update(obs, action, reward, next_obs, terminated, next_action)
            else:
                update(obs, action, reward, next_obs, terminated, None)
                next_action = None if done else act(next_obs, explore=True)
        elif slow is not None:
            next_action = None if terminated else act(next_obs, explore=True)
            slow(Transition(obs, action, reward, next_obs, terminated, done and not terminated, next_action, info))
        else:
            next_action = None if done else act(next_obs, explore=False)
        if done:
            return ep_return, length, bool(terminated), is_success(info, reward, terminated)
        obs, action = next_obs, next_action


def train(
    env: gym.Env,
    agent: Agent,
    *,
    n_episodes: int | None = None,
    total_timesteps: int | None = None,
    seed: int | None = None,
    callback: EpisodeCallback | None = None,
    start_step: int = 0,
    start_episode: int | None = None,
) -> list[Episode]:
    """Trains a step learner for ``n_episodes`` episodes and/or ``total_timesteps`` env steps.

    Training stops at whichever limit comes first; a step limit can cut the last episode short (counted as
    a truncation). ``callback(episode)`` runs after each episode, after ``agent.end_episode()``, so an
    exception raised there (``KeyboardInterrupt``) leaves the agent at a clean episode boundary, ready to
    save and resume.

    Args:
        seed: seeds the first ``env.reset`` only (Gymnasium's convention); None continues the env's RNG.
        start_step: env steps already taken (when resuming), so ``global_step`` continues.
        start_episode: episodes already played (when resuming); None: ``agent.episode`` where the agent counts
            them (tabular agents), else 0.
    """
    if n_episodes is None and total_timesteps is None:
        raise ValueError("train needs n_episodes or total_timesteps")
    for name, value in (("n_episodes", n_episodes), ("total_timesteps", total_timesteps)):
        if value is not None:
            check_positive_int(name, value)
    cap = None if has_time_limit(env) else DEFAULT_STEP_LIMIT
    end_episode = getattr(agent, "end_episode", None)
    first = int(getattr(agent, "episode", 0)) if start_episode is None else start_episode
    global_step = start_step
    history: list[Episode] = []
    index = first
    while (n_episodes is None or index < n_episodes) and (total_timesteps is None or global_step < total_timesteps):
        budget = None if total_timesteps is None else total_timesteps - global_step
        if budget is not None and cap is not None:
            budget = min(budget, cap)
        ep_return, length, terminated, success = run_episode(
            env, agent, learn=True, seed=seed if index == first else None, max_steps=budget
        )
        global_step += length
        if end_episode is not None:
            end_episode()
        episode = Episode(index, global_step, float(ep_return), length, terminated, success)
        history.append(episode)
        index += 1
        if callback is not None:
            callback(episode)
    return history


@dataclass(frozen=True)
class EvalResult:
    """Greedy performance over ``n_episodes`` episodes."""

    mean_return: float
    std_return: float
    success_rate: float
    mean_length: float
    returns: np.ndarray

    def __str__(self) -> str:
        return (
            f"return {self.mean_return:.3f} ± {self.std_return:.3f} over {self.returns.size} episodes, "
            f"success rate {self.success_rate:.3f}, mean length {self.mean_length:.1f}"
        )


def evaluate(
    agent: Agent, env: gym.Env, n_episodes: int, seed: int | None = None, max_steps: int | None = None
) -> EvalResult:
    """Runs the greedy policy (``act(explore=False)``) for ``n_episodes``; works for any agent.

    ``seed`` seeds the first reset only, so the episodes differ but the whole evaluation is reproducible.
    See :func:`is_success` for how success is decided.
    """
    check_positive_int("n_episodes", n_episodes)
    results = [
        run_episode(env, agent, learn=False, seed=seed if i == 0 else None, max_steps=max_steps)
        for i in range(n_episodes)
    ]
    returns = np.array([r[0] for r in results], dtype=np.float64)
    return EvalResult(
        float(returns.mean()),
        float(returns.std()),
        float(np.mean([r[3] for r in results])),
        float(np.mean([r[1] for r in results])),
        returns,
    )

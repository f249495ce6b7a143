"""GridDriving runs for the experiments: the YAML recipe with an experiment's budget, held-out evaluation.

Every agent the demo and the ladder train goes through :func:`perceptgym.agents.training.train_run`, so it is
an ordinary run directory (``config.json``, ``progress.csv``, ``model.*``, ``checkpoints/``) that
``perceptgym evaluate`` and ``perceptgym watch`` open. The evaluation on handwriting the agent never saw is
what ``perceptgym evaluate RUN_DIR --env-kwargs '{"digit_source": "mnist-test"}'`` does, plus the episode's
``event`` (arrived, wrong stop, collision).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from perceptgym.agents.config import check_positive_int
from perceptgym.agents.env_factory import make_env
from perceptgym.agents.loop import DEFAULT_STEP_LIMIT, choose_action, time_limit
from perceptgym.agents.playback import load_run
from perceptgym.agents.registry import agent_entry
from perceptgym.agents.training import HYPERPARAMS_DIR, RunResult, load_hyperparams, train_run

ENV_ID = "perceptgym/GridDriving-v0"


def budget_key(agent: str) -> str:
    """The hyperparameter that sets an agent's training budget: episodes (step learners) or env steps (SB3)."""
    return "n_timesteps" if agent_entry(agent).kind == "sb3" else "n_episodes"


def recipe(agent: str, env_id: str = ENV_ID, hyperparams_dir: str | Path = HYPERPARAMS_DIR) -> dict[str, Any]:
    """``agent``'s hyperparameters for ``env_id`` from its YAML file, which must set a budget and eval_episodes."""
    hyperparams = load_hyperparams(agent, env_id, hyperparams_dir)
    missing = [k for k in (budget_key(agent), "eval_episodes") if k not in hyperparams]
    if missing:
        raise ValueError(f"{Path(hyperparams_dir) / f'{agent}.yml'}: no {' or '.join(missing)} for {env_id}")
    return hyperparams


def with_budget(agent: str, hyperparams: Mapping[str, Any], budget: int | None) -> dict[str, Any]:
    """The recipe with another training budget; episode schedules keep their share of the budget.

    An ε that decays over the first half of 150,000 episodes decays over the first half of 20,000 in a
    ``--quick`` run, so the reduced run follows the same recipe instead of exploring to the end.
    """
    out = dict(hyperparams)
    if budget is None:
        return out
    key = budget_key(agent)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"{key}={budget!r} must be an integer >= 1")
    for name, value in hyperparams.items():
        if name.endswith("_decay_episodes") and key == "n_episodes":
            out[name] = max(1, round(value * budget / hyperparams[key]))
    out[key] = budget
    return out


def run_overrides(
    agent: str,
    overrides: Mapping[str, Any] | None = None,
    budget: int | None = None,
    hyperparams_dir: str | Path = HYPERPARAMS_DIR,
) -> dict[str, Any]:
    """What :func:`train_driving` gives ``train_run``: the agent's recipe, ``overrides``, ``budget``, no evaluation."""
    hyperparams = {**recipe(agent, ENV_ID, hyperparams_dir), **(overrides or {})}
    return {**with_budget(agent, hyperparams, budget), "eval_episodes": 0}


def train_driving(
    agent: str,
    env_kwargs: Mapping[str, Any],
    *,
    seed: int,
    runs_dir: str | Path,
    budget: int | None = None,
    progress: bool = False,
    hyperparams_dir: str | Path = HYPERPARAMS_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> RunResult:
    """Trains ``agent`` on GridDriving with its YAML recipe (``budget`` replaces the recipe's) in a run directory.

    ``overrides`` change the recipe (before ``budget``); ``env_kwargs`` (obs_mode, reader, training digit
    source) update the recipe's. The run skips train_run's evaluation on the training digits: the experiments
    evaluate on held-out handwriting (:func:`evaluate_run`).
    """
    return train_run(
        ENV_ID,
        agent,
        seed=seed,
        overrides=run_overrides(agent, overrides, budget, hyperparams_dir),
        env_kwargs=env_kwargs,
        runs_dir=runs_dir,
        progress=progress,
        tensorboard=False,
        hyperparams_dir=hyperparams_dir,
    )


def evaluate_driving(
    agent: Any, env: gym.Env, n_episodes: int, seed: int, max_steps: int | None = None
) -> dict[str, float]:
    """Greedy return, success rate and wrong-stop rate (GridDriving reports the episode's ``event``).

    Episodes end by the env's time limit (a truncation is a ``"timeout"``); ``max_steps`` (default: that
    limit, or :data:`perceptgym.agents.loop.DEFAULT_STEP_LIMIT` for an env without one) bounds the loop, and
    an episode still running after it is an error rather than a loop that never ends.
    """
    check_positive_int("n_episodes", n_episodes)
    if max_steps is None:
        max_steps = time_limit(env) or DEFAULT_STEP_LIMIT
    check_positive_int("max_steps", max_steps)
    returns, events = np.zeros(n_episodes), []
    obs, info = env.reset(seed=seed)
    for i in range(n_episodes):
        for _ in range(max_steps):
            obs, reward, terminated, truncated, info = env.step(choose_action(agent, env, obs, info))
            returns[i] += reward
            if terminated or truncated:
                events.append(info.get("event", "timeout"))
                obs, info = env.reset()
                break
        else:
            raise RuntimeError(
                f"episode {i} of the evaluation did not end within max_steps={max_steps} steps: the env has no "
                "time limit that ends it (register max_episode_steps, or pass a larger max_steps)"
            )
    events_arr = np.array(events)
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": float(np.mean(events_arr == "arrived")),
        "wrong_stop_rate": float(np.mean(events_arr == "wrong_stop")),
        "collision_rate": float(np.mean(events_arr == "collision")),
    }


def evaluate_run(run_dir: str | Path, digit_source: str, n_episodes: int, seed: int) -> dict[str, float]:
    """:func:`evaluate_driving` of a run directory's agent on ``digit_source`` handwriting."""
    run = load_run(run_dir, env_kwargs={"digit_source": digit_source})
    try:
        return evaluate_driving(run.agent, run.env, n_episodes, seed)
    finally:
        run.env.close()


def optimal_return(env_kwargs: Mapping[str, Any] | None = None) -> float:
    """The exact optimal expected return of the map (value iteration on the true state)."""
    env = make_env(ENV_ID, env_kwargs)
    try:
        return float(env.unwrapped.optimal_return())
    finally:
        env.close()

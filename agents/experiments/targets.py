"""Exact policy values from an env's ``P`` table, and the tabular agents' learning targets.

The targets are Sutton & Barto's Example 6.6 (CliffWalking), Taxi and FrozenLake, each trained with the
shipped YAML recipe of every tabular agent and scored against the known optimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from perceptgym.agents.loop import evaluate, train
from perceptgym.agents.registry import make_agent
from perceptgym.agents.training import load_hyperparams, split_hyperparams

TABULAR_AGENTS = ("q_learning", "sarsa", "expected_sarsa", "double_q")
#: env id -> (horizon of the exact value, optimal value) for the targets scored exactly
EXACT_TARGETS = {"Taxi-v4": (200, 7.93), "FrozenLake-v1": (100, 0.744)}


def policy_value(env: gym.Env, policy: np.ndarray, horizon: int) -> float:
    """Exact expected undiscounted return of a deterministic policy over ``horizon`` steps, from ``env.P``."""
    base = env.unwrapped
    v = np.zeros(base.observation_space.n)
    for _ in range(horizon):
        v = np.array(
            [
                sum(p * (r + (0.0 if done else v[s2])) for p, s2, r, done in base.P[s][int(policy[s])])
                for s in range(v.size)
            ]
        )
    return float(base.initial_state_distrib @ v)


def _trained(name: str, env_id: str, seed: int) -> tuple[gym.Env, Any, list]:
    run, config = split_hyperparams(name, load_hyperparams(name, env_id))
    env = gym.make(env_id)
    agent = make_agent(name, env.observation_space, env.action_space, config, seed=seed)
    history = train(env, agent, n_episodes=run.n_episodes, seed=seed)
    return env, agent, history


def cliff_walking(
    seeds: int, agents: Sequence[str] = TABULAR_AGENTS, log: Callable[[str], Any] | None = None
) -> dict[str, dict[str, float]]:
    """Example 6.6 (each YAML's CliffWalking-v1 entry: α 0.5, ε 0.1, 500 episodes): online and greedy returns."""
    out = {}
    for name in agents:
        last100, greedy = [], []
        for seed in range(seeds):
            env, agent, history = _trained(name, "CliffWalking-v1", seed)
            last100.append(np.mean([e.ep_return for e in history[-100:]]))
            # CliffWalking has no time limit: a greedy policy that walks into a wall would never end
            greedy.append(evaluate(agent, env, 1, seed=0, max_steps=1000).mean_return)
        out[name] = {
            "last100_online_return": float(np.mean(last100)),
            "greedy_return": float(np.mean(greedy)),
            "greedy_min": float(min(greedy)),
            "greedy_max": float(max(greedy)),
        }
        if log is not None:
            row = out[name]
            log(
                f"  {name:16s} last-100 online return {row['last100_online_return']:7.2f}   greedy return "
                f"{row['greedy_return']:6.2f} (min {row['greedy_min']:.0f}, max {row['greedy_max']:.0f})"
            )
    return out


def exact_targets(
    seeds: int, agents: Sequence[str] = TABULAR_AGENTS, log: Callable[[str], Any] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Taxi and FrozenLake with the YAML recipes: the greedy policy's exact value and a 2000-episode mean."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for env_id, (horizon, optimum) in EXACT_TARGETS.items():
        out[env_id] = {}
        for name in agents:
            exact, sampled = [], []
            for seed in range(seeds):
                env, agent, history = _trained(name, env_id, seed)
                exact.append(policy_value(env, agent.q.argmax(axis=1), horizon))
                sampled.append(evaluate(agent, env, 2000, seed=10_000 + seed).mean_return)
            row = out[env_id][name] = {
                "episodes": len(history),
                "exact_mean": float(np.mean(exact)),
                "exact_min": float(min(exact)),
                "sampled_mean": float(np.mean(sampled)),
                "sampled_min": float(min(sampled)),
                "optimal": optimum,
            }
            if log is not None:
                log(
                    f"{env_id} {name:16s} after {row['episodes']} episodes: greedy exact {row['exact_mean']:.3f} "
                    f"(min {row['exact_min']:.3f}), 2000-episode mean {row['sampled_mean']:.3f} "
                    f"(min {row['sampled_min']:.3f}) [optimal {optimum}]"
                )
    return out

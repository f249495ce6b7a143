"""Training-loop speed of the agents, against a bare random-action loop on the same env."""

from __future__ import annotations

import time
from dataclasses import replace

import gymnasium as gym

from perceptgym.agents.loop import train
from perceptgym.agents.registry import make_agent
from perceptgym.agents.training import load_hyperparams, split_hyperparams


def random_steps_per_s(env: gym.Env, steps: int, seed: int) -> float:
    """A bare loop: ``env.step(env.action_space.sample())`` with resets, the reference."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    return steps / (time.perf_counter() - start)


def agent_steps_per_s(env: gym.Env, name: str, steps: int, seed: int) -> float:
    """Training steps/s of a fresh agent through :func:`perceptgym.agents.loop.train`."""
    agent = make_agent(name, env.observation_space, env.action_space, seed=seed)
    start = time.perf_counter()
    train(env, agent, total_timesteps=steps, seed=seed)
    return steps / (time.perf_counter() - start)


def ppo_steps_per_s(threads: int | None, steps: int) -> float:
    """PPO on CartPole-v1 with the ppo.yml recipe (RL Zoo's) and ``threads`` torch threads (None: torch's)."""
    import torch

    _, config = split_hyperparams("ppo", load_hyperparams("ppo", "CartPole-v1"))
    env = gym.make("CartPole-v1")
    config = replace(config, torch_threads=threads or torch.get_num_threads())
    agent = make_agent("ppo", env.observation_space, env.action_space, config, seed=0)
    start = time.perf_counter()
    agent.learn("CartPole-v1", steps, seed=0)
    return agent.num_timesteps / (time.perf_counter() - start)

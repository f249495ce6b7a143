"""Speed of the agents' training loops, against a random agent on the same env in the same run.

``python -m perceptgym.benchmark_agents`` (Taxi-v4, tabular agents) and ``--sb3`` (PPO on CartPole-v1 through
the adapter, one torch thread against torch's default). Repeats are interleaved and medians reported, so
that load from other processes hits every contender alike. Run it alone: ``flock /tmp/perceptgym-cpu.lock``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
import tyro

from perceptgym.agents.loop import train
from perceptgym.agents.registry import make_agent


@dataclass
class Args:
    env: str = "Taxi-v4"
    """env for the tabular comparison"""
    steps: int = 100_000
    """env steps per measurement"""
    repeats: int = 5
    """interleaved repeats (medians are reported)"""
    agents: tuple[str, ...] = ("q_learning", "sarsa", "expected_sarsa", "double_q")
    """tabular agents to time"""
    sb3: bool = False
    """also time PPO on CartPole-v1 (RL Zoo settings) with 1 and with torch's default threads"""
    sb3_steps: int = 30_000
    """env steps per PPO measurement"""
    learning: bool = False
    """also measure the issue's learning targets: S&B Example 6.6, Taxi-v4, FrozenLake-v1 (20 / 5 seeds)"""
    seeds: int = 20
    """seeds for Example 6.6 (Taxi and FrozenLake use a quarter of them)"""


def random_steps_per_s(env: gym.Env, steps: int, seed: int) -> float:
    """A bare loop: ``env.step(env.action_space.sample())`` with resets, the issue's reference."""
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
    import torch

    from perceptgym.agents.training import load_hyperparams, split_hyperparams

    _, config = split_hyperparams("ppo", load_hyperparams("ppo", "CartPole-v1"))
    env = gym.make("CartPole-v1")
    config = replace(config, torch_threads=threads or torch.get_num_threads())
    agent = make_agent("ppo", env.observation_space, env.action_space, config, seed=0)
    start = time.perf_counter()
    agent.learn("CartPole-v1", steps, seed=0)
    return agent.num_timesteps / (time.perf_counter() - start)


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


def learning_targets(seeds: int) -> None:
    """Example 6.6 (α 0.5, ε 0.1, 500 episodes), then Taxi and FrozenLake with the shipped YAML settings."""
    from perceptgym.agents.loop import evaluate
    from perceptgym.agents.training import load_hyperparams, split_hyperparams

    print(f"CliffWalking-v1, Sutton & Barto Example 6.6, {seeds} seeds:", flush=True)
    for name in ("sarsa", "q_learning", "expected_sarsa", "double_q"):
        last100, greedy = [], []
        for seed in range(seeds):
            env = gym.make("CliffWalking-v1")
            agent = make_agent(
                name, env.observation_space, env.action_space, {"alpha": 0.5, "epsilon": 0.1, "gamma": 1.0}, seed=seed
            )
            history = train(env, agent, n_episodes=500, seed=seed)
            last100.append(np.mean([e.ep_return for e in history[-100:]]))
            # CliffWalking has no time limit: a greedy policy that walks into a wall would never end
            greedy.append(evaluate(agent, env, 1, seed=0, max_steps=1000).mean_return)
        print(
            f"  {name:16s} last-100 online return {np.mean(last100):7.2f}   "
            f"greedy return {np.mean(greedy):6.2f} (min {min(greedy):.0f}, max {max(greedy):.0f})",
            flush=True,
        )
    for env_id, horizon, target in (("Taxi-v4", 200, "optimal 7.93"), ("FrozenLake-v1", 100, "optimal 0.744")):
        for name in ("q_learning", "sarsa", "expected_sarsa", "double_q"):
            run, config = split_hyperparams(name, load_hyperparams(name, env_id))
            exact, sampled = [], []
            for seed in range(max(1, seeds // 4)):
                env = gym.make(env_id)
                agent = make_agent(name, env.observation_space, env.action_space, config, seed=seed)
                train(env, agent, n_episodes=run["n_episodes"], seed=seed)
                exact.append(policy_value(env, agent.q.argmax(axis=1), horizon))
                result = evaluate(agent, env, 2000, seed=10_000 + seed)
                sampled.append(result.mean_return)
            print(
                f"{env_id} {name:16s} after {run['n_episodes']} episodes: greedy exact "
                f"{np.mean(exact):.3f} (min {min(exact):.3f}), 2000-episode mean {np.mean(sampled):.3f} "
                f"(min {min(sampled):.3f}) [{target}]",
                flush=True,
            )


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench agents") -> int:
    args = tyro.cli(Args, args=None if argv is None else list(argv), prog=prog, description=__doc__)
    env = gym.make(args.env)
    results: dict[str, list[float]] = {"random": [], **{name: [] for name in args.agents}}
    for r in range(args.repeats):
        results["random"].append(random_steps_per_s(env, args.steps, seed=r))
        for name in args.agents:
            results[name].append(agent_steps_per_s(env, name, args.steps, seed=r))
    base = statistics.median(results["random"])
    print(f"{args.env}: {args.steps} steps × {args.repeats} interleaved repeats (median steps/s)")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:16s} {median:10.0f} steps/s   ratio to random {median / base:.2f}")
    if args.sb3:
        import torch

        default_threads = torch.get_num_threads()
        ppo = {1: [], default_threads: []}
        for _ in range(max(1, args.repeats // 2)):
            for threads in ppo:
                ppo[threads].append(ppo_steps_per_s(threads, args.sb3_steps))
        print(f"PPO CartPole-v1 (RL Zoo settings, n_envs 8), {args.sb3_steps} steps:")
        for threads, values in ppo.items():
            print(f"  torch threads {threads}: {statistics.median(values):8.0f} steps/s")
    if args.learning:
        learning_targets(args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

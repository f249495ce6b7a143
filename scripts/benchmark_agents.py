"""Speed of the agents' training loops, against a random agent on the same env in the same run.

``perceptgym bench agents`` (Taxi-v4, tabular agents) and ``--sb3`` (PPO on CartPole-v1 through the adapter,
one torch thread against torch's default). Repeats are interleaved and medians reported, so that load from
other processes hits every contender alike. Run it alone: ``flock /tmp/perceptgym-cpu.lock``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.agents.env_factory import make_env
from perceptgym.agents.experiments.speed import agent_steps_per_s, ppo_steps_per_s, random_steps_per_s
from perceptgym.agents.experiments.targets import TABULAR_AGENTS, cliff_walking, exact_targets


@dataclass
class Args:
    env: str = "Taxi-v4"
    """env for the tabular comparison"""
    steps: int = 100_000
    """env steps per measurement"""
    repeats: int = 5
    """interleaved repeats (medians are reported)"""
    agents: tuple[str, ...] = TABULAR_AGENTS
    """tabular agents to time"""
    sb3: bool = False
    """also time PPO on CartPole-v1 (RL Zoo settings) with 1 and with torch's default threads"""
    sb3_steps: int = 30_000
    """env steps per PPO measurement"""
    learning: bool = False
    """also measure the learning targets: S&B Example 6.6, Taxi-v4, FrozenLake-v1 (20 / 5 seeds)"""
    seeds: int = 20
    """seeds for Example 6.6 (Taxi and FrozenLake use a quarter of them)"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"steps": 1, "repeats": 1, "sb3_steps": 1, "seeds": 1})


def say(line: str) -> None:
    print(line, flush=True)


def run(args: Args) -> None:
    env = make_env(args.env)
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
        ppo: dict[int, list[float]] = {1: [], default_threads: []}
        for _ in range(max(1, args.repeats // 2)):
            for threads in ppo:
                ppo[threads].append(ppo_steps_per_s(threads, args.sb3_steps))
        print(f"PPO CartPole-v1 (RL Zoo settings, n_envs 8), {args.sb3_steps} steps:")
        for threads, values in ppo.items():
            print(f"  torch threads {threads}: {statistics.median(values):8.0f} steps/s")
    if args.learning:
        say(f"CliffWalking-v1, Sutton & Barto Example 6.6, {args.seeds} seeds:")
        cliff_walking(args.seeds, log=say)
        exact_targets(max(1, args.seeds // 4), log=say)


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench agents") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

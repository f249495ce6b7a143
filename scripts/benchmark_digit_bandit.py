"""How fast DigitBandit runs: raw env, through gym.make's wrappers, and as gym.make_vec vector envs.

    python -m perceptgym.benchmark_digit_bandit --rounds 200000

A round is one ``reset`` plus one ``step`` (episodes are one step long); the rate counts rounds per second,
which equals env steps per second. The digit source's own cost is included (it is called once per
``block_size`` rounds).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from perceptgym._cli import run_program
from perceptgym.agents.config import check_settings
from perceptgym.envs.digit_bandit import ENV_ID, register_digit_bandit
from perceptgym.envs.digit_bandit.env import DigitBanditEnv


@dataclass(frozen=True)
class Args:
    rounds: int = 200_000
    """rounds per measurement"""
    obs_modes: tuple[str, ...] = ("pixels", "symbolic")
    """observation modes to time (perceived modes also time the reader)"""
    digit_source: str = "mnist-train"
    """digit source"""
    num_envs: int = 16
    """sub-envs of the vector-env measurement"""
    repeats: int = 3
    """best of this many measurements"""

    def __post_init__(self) -> None:
        check_settings(self, at_least={"rounds": 1, "num_envs": 1, "repeats": 1})


def rate_raw(env: gym.Env, rounds: int, rng: np.random.Generator) -> float:
    actions = rng.integers(0, 10, size=rounds).tolist()
    env.reset(seed=0)
    env.step(0)
    start = time.perf_counter()
    for a in actions:
        env.reset()
        env.step(a)
    return rounds / (time.perf_counter() - start)


def rate_vector(env: gym.vector.VectorEnv, rounds: int, rng: np.random.Generator) -> float:
    n = env.num_envs
    steps = max(1, rounds // n)
    actions = rng.integers(0, 10, size=(steps, n))
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps * n / (time.perf_counter() - start)


def run(args: Args) -> dict[str, float]:
    register_digit_bandit()
    rng = np.random.default_rng(0)
    results: dict[str, float] = {}
    for mode in args.obs_modes:
        raw = DigitBanditEnv(obs_mode=mode, digit_source=args.digit_source)
        raw.reset(seed=0)  # loads the source (and reader) before timing
        made = gym.make(ENV_ID, obs_mode=mode, digit_source=raw.source)
        # SAME_STEP autoreset: with one-step episodes the default NEXT_STEP mode would spend every other
        # step on a reset that returns no reward.
        vec = gym.make_vec(
            ENV_ID,
            num_envs=args.num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            obs_mode=mode,
            digit_source=raw.source,
        )
        results[f"{mode} raw env"] = max(rate_raw(raw, args.rounds, rng) for _ in range(args.repeats))
        results[f"{mode} gym.make (checker + order wrappers)"] = max(
            rate_raw(made, args.rounds, rng) for _ in range(args.repeats)
        )
        results[f"{mode} gym.make_vec sync x{args.num_envs}"] = max(
            rate_vector(vec, args.rounds, rng) for _ in range(args.repeats)
        )
        vec.close()
        for n in (args.num_envs, 256):
            native = gym.make_vec(
                ENV_ID,
                num_envs=n,
                vectorization_mode="vector_entry_point",
                obs_mode=mode,
                digit_source=raw.source,
            )
            results[f"{mode} gym.make_vec native x{n}"] = max(
                rate_vector(native, args.rounds, rng) for _ in range(args.repeats)
            )
    width = max(map(len, results))
    for name, rate in results.items():
        print(f"{name:<{width}}  {rate:>12,.0f} steps/s")
    return results


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bench digit-bandit") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

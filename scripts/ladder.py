"""The perception ladder: the same driving task at every rung, from true symbols to raw pixels.

    python -m perceptgym.ladder                       # 3 seeds; ~15 min on 2 cores (the pixels rung is most of it)
    python -m perceptgym.ladder --seeds 0 --episodes 20000 --pixels-steps 20000 --eval-episodes 100   # a quick look

Rungs (every agent is evaluated greedily on handwriting it never saw in training):

1. ``symbolic``: Q-learning on the true state (the upper bound).
2. ``perceived (MLP)``: Q-learning on the state as read by the seed's tutorial MLP (97.4% on MNIST test).
3. ``perceived (CNN)``: the same with the shipped CNN (99.3%).
4. ``perceived (CNN), GAN digits``: the rung-3 agents, with the world drawn by the GAN instead of MNIST test.
5. ``pixels (PPO)``: stable-baselines3 PPO on the ``dict`` observation (the car's position, heading and
   traffic phase, plus the trip card and the sign under the car as 28×28 images), with the small CNN
   extractor: it must learn to read the digits from pixels while it learns to drive. (The full top-down
   ``pixels`` image, 154×126×3, is too costly for a CPU budget of minutes.)

Training uses MNIST training digits; evaluation uses MNIST test digits (rung 4: GAN digits). Writes
``ladder.json`` (per-seed numbers), ``ladder.md`` (the table) and ``ladder.png`` into ``--out``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import perceptgym.envs  # noqa: F401  (registers the perceptgym envs)
from perceptgym._cli import run_program
from perceptgym.agents.loop import train
from perceptgym.agents.registry import make_agent

ENV_ID = "perceptgym/GridDriving-v0"
PPO_CONFIG = {
    "n_envs": 8,
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "ent_coef": 0.01,
    "gamma": 0.99,
}
Q_CONFIG = {"alpha": 0.5, "gamma": 0.99, "epsilon": 1.0, "epsilon_end": 0.05, "epsilon_schedule": "linear"}


@dataclass(frozen=True)
class Rung:
    name: str
    obs_mode: str
    reader: str
    train_source: str
    eval_source: str
    agent: str  # "q_learning" or "ppo"
    shares_agent_with: str | None = None  # evaluate the agents trained for that rung instead of training


RUNGS = (
    Rung("symbolic", "symbolic", "cnn", "mnist-train", "mnist-test", "q_learning"),
    Rung("perceived (MLP)", "perceived", "mlp", "mnist-train", "mnist-test", "q_learning"),
    Rung("perceived (CNN)", "perceived", "cnn", "mnist-train", "mnist-test", "q_learning"),
    Rung(
        "perceived (CNN), GAN digits",
        "perceived",
        "cnn",
        "mnist-train",
        "gan",
        "q_learning",
        shares_agent_with="perceived (CNN)",
    ),
    Rung("pixels (PPO)", "dict", "cnn", "mnist-train", "mnist-test", "ppo"),
)


@dataclass
class Args:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """one full ladder per seed"""
    episodes: int = 150_000
    """Q-learning training episodes per rung and seed"""
    pixels_steps: int = 200_000
    """PPO training env steps per seed on the pixels rung (0 skips the rung)"""
    eval_episodes: int = 1_000
    """greedy evaluation episodes per rung and seed"""
    out: Path = Path("reports/ladder")
    """output folder"""

    def __post_init__(self) -> None:
        if not self.seeds or self.episodes < 1 or self.eval_episodes < 1 or self.pixels_steps < 0:
            raise ValueError("need at least one seed, episodes >= 1, eval_episodes >= 1, pixels_steps >= 0")


def make(rung: Rung, source: str, render_mode: str | None = None) -> gym.Env:
    return gym.make(ENV_ID, obs_mode=rung.obs_mode, reader=rung.reader, digit_source=source, render_mode=render_mode)


def evaluate_driving(agent, env: gym.Env, n_episodes: int, seed: int) -> dict[str, float]:
    """Greedy return, success rate and wrong-stop rate (GridDriving reports the episode's ``event``)."""
    returns, events = np.zeros(n_episodes), []
    obs, info = env.reset(seed=seed)
    for i in range(n_episodes):
        while True:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, explore=False))
            returns[i] += reward
            if terminated or truncated:
                events.append(info.get("event", "timeout"))
                obs, info = env.reset()
                break
    events_arr = np.array(events)
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": float(np.mean(events_arr == "arrived")),
        "wrong_stop_rate": float(np.mean(events_arr == "wrong_stop")),
        "collision_rate": float(np.mean(events_arr == "collision")),
    }


def train_agent(rung: Rung, args: Args, seed: int):
    env = make(rung, rung.train_source)
    if rung.agent == "q_learning":
        agent = make_agent(
            "q_learning",
            env.observation_space,
            env.action_space,
            {**Q_CONFIG, "epsilon_decay_episodes": max(1, args.episodes // 2)},
            seed=seed,
        )
        train(env, agent, n_episodes=args.episodes, seed=seed)
        return agent
    agent = make_agent("ppo", env.observation_space, env.action_space, PPO_CONFIG, seed=seed)
    factory = lambda: gym.wrappers.TimeLimit(make(rung, rung.train_source).unwrapped, 200)  # noqa: E731
    agent.learn(factory, args.pixels_steps, seed=seed, progress_bar=True)
    return agent


def run(args: Args) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    from perceptgym.supervised.perception import SHIPPED

    rungs = [
        r
        for r in RUNGS
        if (r.agent != "ppo" or args.pixels_steps > 0) and (r.eval_source != "gan" or SHIPPED["gan"].is_file())
    ]
    results: dict[str, list[dict[str, float]]] = {r.name: [] for r in rungs}
    for seed in args.seeds:
        trained: dict[str, Any] = {}
        for rung in rungs:
            start = time.perf_counter()
            if rung.shares_agent_with:
                agent, train_seconds = trained[rung.shares_agent_with], 0.0
            else:
                agent = trained[rung.name] = train_agent(rung, args, seed)
                train_seconds = time.perf_counter() - start
            row = evaluate_driving(agent, make(rung, rung.eval_source), args.eval_episodes, seed + 10_000)
            row.update(seed=seed, train_seconds=train_seconds)
            results[rung.name].append(row)
            print(
                f"seed {seed} | {rung.name:<28} | return {row['mean_return']:+.3f} | success "
                f"{row['success_rate']:.3f} | wrong stop {row['wrong_stop_rate']:.3f} | "
                f"train {train_seconds:.0f} s",
                flush=True,
            )
    optimum = make(RUNGS[0], "mnist-train").unwrapped.optimal_return()
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "optimal_return": optimum,
        "rungs": results,
    }
    (args.out / "ladder.json").write_text(json.dumps(summary, indent=2))
    table = markdown_table(summary)
    (args.out / "ladder.md").write_text(table + "\n")
    plot(summary, args.out / "ladder.png")
    print("\n" + table)
    return summary


def _mean_std(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
    values = np.array([r[key] for r in rows])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def markdown_table(summary: dict[str, Any]) -> str:
    lines = ["| rung | return | success rate | wrong-stop rate | collision rate | seeds |", "|---|---|---|---|---|---|"]
    for name, rows in summary["rungs"].items():
        cells = [
            f"{m:.3f} ± {s:.3f}"
            for m, s in (
                _mean_std(rows, k) for k in ("mean_return", "success_rate", "wrong_stop_rate", "collision_rate")
            )
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(rows)} |")
    lines.append(
        f"\nOptimal expected return (value iteration on the true state): {summary['optimal_return']:.3f}. "
        "Mean ± std over seeds; each seed's numbers are greedy averages over "
        f"{summary['args']['eval_episodes']} episodes on unseen handwriting."
    )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["rungs"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=110)
    for ax, (key, label) in zip(
        axes,
        (("mean_return", "greedy return"), ("success_rate", "success rate"), ("wrong_stop_rate", "wrong-stop rate")),
        strict=True,
    ):
        stats = [_mean_std(summary["rungs"][n], key) for n in names]
        x = np.arange(len(names))
        ax.bar(
            x,
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            capsize=4,
            color=plt.cm.viridis(np.linspace(0.15, 0.85, len(names))),
        )
        for xi, (m, _) in zip(x, stats, strict=True):
            ax.text(xi, m, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
        if key == "mean_return":
            ax.axhline(summary["optimal_return"], color="k", ls="--", lw=1, label="optimal")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([n.replace(" (", "\n(").replace(", ", ",\n") for n in names], fontsize=7)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Perception ladder on GridDriving-v0 (mean ± std over {len(summary['args']['seeds'])} seeds)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym ladder") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

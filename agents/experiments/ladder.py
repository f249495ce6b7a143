"""The perception ladder: the same driving task at every rung, from true symbols to raw pixels.

Rungs (every agent is evaluated greedily on handwriting it never saw in training):

1. ``symbolic``: Q-learning on the true state (the upper bound).
2. ``perceived (MLP)``: Q-learning on the state as read by the seed's tutorial MLP (97.4% on MNIST test).
3. ``perceived (CNN)``: the same with the shipped CNN (99.3%).
4. ``perceived (CNN), GAN digits``: the rung-3 agents, with the world drawn by the GAN instead of MNIST test.
5. ``pixels (PPO)``: stable-baselines3 PPO on the ``dict`` observation (the car's position, heading and
   traffic phase, plus the trip card and the sign under the car as 28×28 images), with the small CNN
   extractor: it must learn to read the digits from pixels while it learns to drive. (The full top-down
   ``pixels`` image, 154×126×3, is too costly for a CPU budget of minutes.)

The agents' recipes are the ``perceptgym/GridDriving-v0`` entries of ``q_learning.yml`` and ``ppo.yml``;
the ladder may change only their budgets. Training uses MNIST training digits; evaluation uses MNIST test
digits (rung 4: GAN digits). Each trained agent is a run directory under ``<out>/runs/<rung>/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.agents.config import check_seeds, check_settings
from perceptgym.agents.experiments.driving import (
    budget_key,
    evaluate_run,
    optimal_return,
    recipe,
    train_driving,
)
from perceptgym.agents.experiments.files import pyplot, save_figure, write_json, write_text

EVAL_SEED_OFFSET = 10_000
"""evaluation episodes of seed s start from reset(seed=s + EVAL_SEED_OFFSET)"""


@dataclass(frozen=True)
class Rung:
    name: str
    obs_mode: str
    reader: str
    train_source: str
    eval_source: str
    agent: str
    """a registered agent name; its recipe is the GridDriving entry of ``<agent>.yml``"""
    shares_agent_with: str | None = None
    """evaluate the agents trained for that rung instead of training"""

    @property
    def slug(self) -> str:
        """The rung's folder name under ``<out>/runs/``: ``"perceived (CNN)"`` -> ``"perceived-cnn"``."""
        return "-".join("".join(c if c.isalnum() else " " for c in self.name.lower()).split())

    @property
    def env_kwargs(self) -> dict[str, str]:
        return {"obs_mode": self.obs_mode, "reader": self.reader, "digit_source": self.train_source}


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
class LadderSettings:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """one full ladder per seed"""
    episodes: int | None = None
    """Q-learning training episodes per rung and seed (default: q_learning.yml, 150,000)"""
    pixels_steps: int | None = None
    """PPO training env steps per seed on the pixels rung (default: ppo.yml, 200,000; 0 skips the rung)"""
    eval_episodes: int | None = None
    """greedy evaluation episodes per rung and seed (default: each agent's eval_episodes in its YAML, 1,000)"""
    out: Path = Path("reports/ladder")
    """output folder: ladder.json, ladder.md, ladder.png and the run directories (runs/)"""
    progress: bool = True
    """show a progress bar per training run"""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        check_seeds(self.seeds)
        check_settings(self, at_least={"episodes": 1, "pixels_steps": 0, "eval_episodes": 1})


def budgets(settings: LadderSettings) -> dict[str, dict[str, int]]:
    """Per agent of the ladder: its training budget and evaluation episodes (the settings, else the YAML)."""
    out = {}
    for agent, budget in (("q_learning", settings.episodes), ("ppo", settings.pixels_steps)):
        hyperparams = recipe(agent)
        out[agent] = {
            "budget": hyperparams[budget_key(agent)] if budget is None else budget,
            "eval_episodes": settings.eval_episodes or hyperparams["eval_episodes"],
        }
    return out


def rungs_to_run(settings: LadderSettings, budget: dict[str, dict[str, int]]) -> list[Rung]:
    """The rungs this run can measure: no PPO rung with a zero budget, no GAN rung without a GAN."""
    from perceptgym.supervised.perception import SHIPPED

    return [r for r in RUNGS if budget[r.agent]["budget"] > 0 and (r.eval_source != "gan" or SHIPPED["gan"].is_file())]


def run_ladder(settings: LadderSettings, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Trains and evaluates every rung for every seed; writes ladder.json, ladder.md and ladder.png.

    Returns the summary saved as ladder.json: ``rungs`` maps each rung's name to one row per seed
    (``mean_return``, ``std_return``, ``success_rate``, ``wrong_stop_rate``, ``collision_rate``, ``seed``,
    ``train_seconds``, ``eval_episodes`` and the ``run_dir`` of the agent evaluated).
    """
    out = Path(settings.out)
    budget = budgets(settings)
    rungs = rungs_to_run(settings, budget)
    results: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rungs}
    for seed in settings.seeds:
        trained: dict[str, Path] = {}
        for rung in rungs:
            start = time.perf_counter()
            if rung.shares_agent_with:
                run_dir, train_seconds = trained[rung.shares_agent_with], 0.0
            else:
                run = train_driving(
                    rung.agent,
                    rung.env_kwargs,
                    seed=seed,
                    runs_dir=out / "runs" / rung.slug,
                    budget=budget[rung.agent]["budget"],
                    progress=settings.progress,
                )
                run_dir = trained[rung.name] = run.run_dir
                train_seconds = time.perf_counter() - start
            n_eval = budget[rung.agent]["eval_episodes"]
            row: dict[str, Any] = evaluate_run(run_dir, rung.eval_source, n_eval, seed + EVAL_SEED_OFFSET)
            row.update(seed=seed, train_seconds=train_seconds, eval_episodes=n_eval, run_dir=str(run_dir))
            results[rung.name].append(row)
            if log is not None:
                log(
                    f"seed {seed} | {rung.name:<28} | return {row['mean_return']:+.3f} | success "
                    f"{row['success_rate']:.3f} | wrong stop {row['wrong_stop_rate']:.3f} | "
                    f"train {train_seconds:.0f} s | {run_dir}"
                )
    summary = {
        "args": {
            "seeds": list(settings.seeds),
            "episodes": budget["q_learning"]["budget"],
            "pixels_steps": budget["ppo"]["budget"],
            "eval_episodes": _one_or_each({a: budget[a]["eval_episodes"] for a in {r.agent for r in rungs}}),
            "out": str(out),
        },
        "optimal_return": optimal_return(),
        "rungs": results,
    }
    write_json(out / "ladder.json", summary)
    write_text(out / "ladder.md", markdown_table(summary) + "\n")
    plot_ladder(summary, out / "ladder.png")
    return summary


def _one_or_each(values: dict[str, int]) -> int | dict[str, int]:
    """One number when every agent got the same, else the number of each (sorted by agent)."""
    return next(iter(values.values())) if len(set(values.values())) == 1 else dict(sorted(values.items()))


def _mean_std(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
    values = np.array([r[key] for r in rows])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def markdown_table(summary: dict[str, Any]) -> str:
    """The ladder as a Markdown table: mean ± std over seeds of each rung's greedy numbers."""
    lines = ["| rung | return | success rate | wrong-stop rate | collision rate | seeds |", "|---|---|---|---|---|---|"]
    for name, rows in summary["rungs"].items():
        cells = [
            f"{m:.3f} ± {s:.3f}"
            for m, s in (
                _mean_std(rows, k) for k in ("mean_return", "success_rate", "wrong_stop_rate", "collision_rate")
            )
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(rows)} |")
    n_eval = summary["args"]["eval_episodes"]
    if isinstance(n_eval, dict):
        n_eval = ", ".join(f"{n} ({agent})" for agent, n in n_eval.items())
    lines.append(
        f"\nOptimal expected return (value iteration on the true state): {summary['optimal_return']:.3f}. "
        "Mean ± std over seeds; each seed's numbers are greedy averages over "
        f"{n_eval} episodes on unseen handwriting."
    )
    return "\n".join(lines)


def plot_ladder(summary: dict[str, Any], path: str | Path) -> Path:
    """Bars of greedy return, success rate and wrong-stop rate per rung, with the std over seeds."""
    plt = pyplot()
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
    return save_figure(fig, path)

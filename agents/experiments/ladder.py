"""The perception ladder: the same driving task at every rung, from true symbols to raw pixels.

Rungs (every agent is evaluated greedily on handwriting it never saw in training):

1. ``symbolic``: Q-learning on the true state (the upper bound).
2. ``perceived (MLP)``: Q-learning on the state as read by the seed's tutorial MLP (97.4% on MNIST test).
3. ``perceived (CNN)``: the same with the shipped CNN (99.3%).
4. ``perceived (CNN), GAN digits``: the rung-3 agents, with the world drawn by the GAN instead of MNIST test.
5. ``pixels (PPO)``: stable-baselines3 PPO on the ``dict`` observation (the car's position, heading and
   traffic phase, plus the trip card and the sign under the car as 28×28 images) with ppo.yml's ``digit_slots``
   network: it must learn to read the digits from reward while it learns to drive (training adds the env's
   potential-based ``progress`` term, ``train_env_kwargs``; evaluation uses the default rewards).
6. ``pixels (DQN, slot tables)``: stable-baselines3 DQN on the same observation with dqn.yml's ``digit_table``
   network (:mod:`perceptgym.agents.slot_table`): a CNN reads the card into one of 16 slots it invents, one
   Q-table per slot over the base states, the tables stepped as Q-learning steps a table. Same rewards.
7. ``pixels (PPO), pretrained CNN encoder``: rung 5's agent, its digit encoder the shipped CNN's trained
   layers, frozen: how much of rung 5's cost is learning to read.
8. ``pixels (DQN), pretrained CNN encoder``: rung 6's agent, its card reader the shipped CNN's trained layers,
   frozen (``pretrained_encoder: cnn``): the same question for the DQN slot-table agent.
9. ``top-down pixels (PPO)``: the same recipe on the full 154×126×3 raster (SB3's NatureCNN), at a budget of
   minutes: with PPO's updates it runs at ~90 env steps/s here alone, 49k steps in ~9 minutes a seed (it learns
   nothing that pays at that budget: an honest number, not a result; ``--device cuda`` where there is a GPU).

The agents' recipes are the ``perceptgym/GridDriving-v0`` entries of ``q_learning.yml``, ``ppo.yml`` and
``dqn.yml`` with each rung's ``overrides``; the ladder's settings may change only their budgets. Training uses
MNIST training digits; evaluation uses MNIST test digits (rung 4: GAN digits). Each trained agent is a run
directory under ``<out>/runs/<rung>/``. The ladder is a benchmark protocol: every rung reports success, wrong-stop
and collision rates, greedy return and a **normalised score** (0 = the uniform-random policy, 1 = value iteration's
greedy policy on the true state, both run on the very same evaluation episodes as the rung's agent: GridDriving's
episode starts and cards depend only on the reset seed, not on the policy or the observation mode), plus its
training env steps and wall time, each as the mean over seeds with a 95% percentile-bootstrap interval
(``summary["protocol"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.agents.config import check_seeds, check_settings
from perceptgym.agents.env_factory import make_env
from perceptgym.agents.experiments.curves import group_curves, plot_curves
from perceptgym.agents.experiments.driving import (
    ENV_ID,
    budget_key,
    evaluate_driving,
    evaluate_run,
    optimal_return,
    recipe,
    run_overrides,
    train_driving,
)
from perceptgym.agents.experiments.files import save_figure, subplots, write_json, write_text
from perceptgym.agents.experiments.stats import bootstrap_ci
from perceptgym.agents.sweep.spec import Trial

EVAL_SEED_OFFSET = 10_000
"""evaluation episodes of seed s start from reset(seed=s + EVAL_SEED_OFFSET)"""
QUICK = {"episodes": 3_000, "pixels_steps": 2_048, "eval_episodes": 50}
"""the budgets of ``--quick`` (CI), 3 seeds as always: the recipes stay the YAML's"""
PROTOCOL_KEYS = (
    "normalised_score",
    "success_rate",
    "wrong_stop_rate",
    "collision_rate",
    "mean_return",
    "train_env_steps",
    "train_seconds",
)
"""the numbers every rung reports as mean and 95% bootstrap interval over seeds"""


PRETRAINED_STEPS = 1_500_000
"""env steps of the pretrained-encoder rung (ppo.yml's recipe, the shipped CNN's layers frozen as its reader)"""
TOP_DOWN_STEPS = 49_152
"""env steps of the top-down pixels rung (ppo.yml's recipe over the 154x126x3 raster, SB3's NatureCNN): 12
rollouts, ~9 minutes a seed here alone"""
TOP_DOWN_EVAL = 100
"""its evaluation episodes: a policy that has not learned to stop drives each to the 200-step limit"""


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
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """changes to the agent's recipe for this rung (its budget, if given, is the rung's default budget)"""
    in_quick: bool = True
    """part of ``--quick`` (the top-down rung is not: one PPO rollout on the raster takes minutes)"""
    minutes: float = 0.5
    """training minutes per seed at the default budget, one run alone on the 2-core machine of docs/results.md
    (measured; the Q-learning rungs: 10-34 s; ``--sweep`` starts the longest trials first)"""

    @property
    def slug(self) -> str:
        """The rung's folder name under ``<out>/runs/``: ``"perceived (CNN)"`` -> ``"perceived-cnn"``."""
        return "-".join("".join(c if c.isalnum() else " " for c in self.name.lower()).split())

    @property
    def deep(self) -> bool:
        """An SB3 agent (its budget in env steps), not a tabular one (in episodes)."""
        return budget_key(self.agent) == "n_timesteps"

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
    Rung("pixels (PPO)", "dict", "cnn", "mnist-train", "mnist-test", "ppo", minutes=16),
    Rung("pixels (DQN, slot tables)", "dict", "cnn", "mnist-train", "mnist-test", "dqn", minutes=9.3),
    Rung(
        "pixels (PPO), pretrained CNN encoder",
        "dict",
        "cnn",
        "mnist-train",
        "mnist-test",
        "ppo",
        overrides={"pretrained_encoder": "cnn", "n_timesteps": PRETRAINED_STEPS},
        minutes=5,
    ),
    Rung(
        "pixels (DQN), pretrained CNN encoder",
        "dict",
        "cnn",
        "mnist-train",
        "mnist-test",
        "dqn",
        overrides={"pretrained_encoder": "cnn"},
        minutes=6.3,
    ),
    Rung(
        "top-down pixels (PPO)",
        "pixels",
        "cnn",
        "mnist-train",
        "mnist-test",
        "ppo",
        overrides={"features_extractor": "default", "n_timesteps": TOP_DOWN_STEPS, "eval_episodes": TOP_DOWN_EVAL},
        in_quick=False,
        minutes=9,
    ),
)


@dataclass
class LadderSettings:
    quick: bool = False
    """reduced budgets for CI (3,000 Q-learning episodes, 2,048 PPO steps, 50 evaluation episodes; no top-down
    rung)"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """one full ladder per seed"""
    episodes: int | None = None
    """Q-learning training episodes per rung and seed (default: q_learning.yml, 140,000)"""
    pixels_steps: int | None = None
    """training env steps per seed on every deep rung, PPO's and DQN's (default: each rung's own, else its
    agent's YAML's; 0 skips them)"""
    eval_episodes: int | None = None
    """greedy evaluation episodes per rung and seed (default: each rung's own, else its agent's YAML's, 1,000)"""
    rungs: list[str] | None = None
    """only these rungs, by name (default: all); a rung that evaluates another's agents needs that one too"""
    out: Path = Path("reports/ladder")
    """output folder: ladder.json, ladder.md, ladder.png and the run directories (runs/)"""
    progress: bool = True
    """show a progress bar per training run"""
    sweep: bool = False
    """train the rungs x seeds as the trials of a sweep (Ray Tune, as perceptgym sweep does; needs
    perceptgym[distributed]): the same runs and ladder.json, trained in parallel, one trial per CPU"""
    address: str | None = None
    """with --sweep: an existing Ray cluster, HOST:PORT or auto (default: a local Ray for the ladder)"""
    max_concurrent: int | None = None
    """with --sweep: at most this many trials at a time (default: one per CPU)"""
    device: str = "cpu"
    """torch device of the deep (SB3) rungs: cpu, or cuda / cuda:N where torch sees a GPU (not with --sweep);
    nothing else of their recipes changes"""

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.sweep and self.device != "cpu":
            raise ValueError(f"device={self.device!r}: --sweep trains on the CPUs; drop --device or --sweep")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        check_seeds(self.seeds)
        check_settings(self, at_least={"episodes": 1, "pixels_steps": 0, "eval_episodes": 1, "max_concurrent": 1})
        if not self.sweep and (self.address is not None or self.max_concurrent is not None):
            raise ValueError("address and max_concurrent are settings of --sweep: add --sweep")
        if self.rungs is not None:
            names = [r.name for r in RUNGS]
            unknown = [n for n in self.rungs if n not in names]
            if unknown or not self.rungs:
                raise ValueError(f"rungs={self.rungs!r}: choose among {names}")
            for rung in RUNGS:
                if rung.name in self.rungs and rung.shares_agent_with and rung.shares_agent_with not in self.rungs:
                    raise ValueError(f"rungs: {rung.name!r} evaluates the agents of {rung.shares_agent_with!r}: add it")


def check_device(device: str) -> None:
    """Refuses a torch device the deep rungs cannot train on here (SB3 would quietly fall back to the CPU)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device={device!r}: not a torch device (cpu, cuda or cuda:N)") from e
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: use cpu, cuda or cuda:N")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA device(s) on this machine")


def budgets(settings: LadderSettings) -> dict[str, dict[str, int]]:
    """Per rung: its training budget and evaluation episodes (the settings, else quick's, else the rung's own
    budget, else its agent's YAML's); 0 (not run) for a rung that is not part of ``--quick``."""
    quick = QUICK if settings.quick else {}
    eval_episodes = settings.eval_episodes or quick.get("eval_episodes")
    out = {}
    for rung in RUNGS:
        hyperparams = rung_recipe(rung)
        name = "pixels_steps" if rung.deep else "episodes"
        budget = getattr(settings, name)
        if budget is None and settings.quick and not rung.in_quick:
            budget = 0
        elif budget is None:
            budget = quick.get(name, hyperparams[budget_key(rung.agent)])
        out[rung.name] = {"budget": budget, "eval_episodes": eval_episodes or hyperparams["eval_episodes"]}
    return out


def rung_recipe(rung: Rung) -> dict[str, Any]:
    """The rung's agent's YAML recipe with the rung's overrides."""
    return {**recipe(rung.agent), **rung.overrides}


class UniformPolicy:
    """The normalised score's 0: a uniformly random action every step, from its own generator."""

    def __init__(self, n_actions: int, seed: int):
        self.n_actions, self._rng = n_actions, np.random.default_rng(seed)

    def act(self, obs: Any, *, explore: bool) -> int:
        return int(self._rng.integers(self.n_actions))


class PlannerPolicy:
    """The normalised score's 1: greedy in value iteration's exact action values, on the true (symbolic) state."""

    def __init__(self, q: np.ndarray):
        self.q = q

    def act(self, obs: Any, *, explore: bool) -> int:
        return int(np.argmax(self.q[int(obs)]))


def reference_rows(n_episodes: int, seed: int, env_kwargs: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """The uniform-random and the value-iteration policies evaluated on a rung's evaluation episodes.

    They run on the ``symbolic`` mode of the same map and reset seed: the episodes (start, card, traffic) are the
    ones the rung's agent meets, whatever its observation.
    """
    env = make_env(ENV_ID, {**(env_kwargs or {}), "obs_mode": "symbolic"})
    try:
        _, q = env.unwrapped.value_iteration()
        policies = {"random": UniformPolicy(env.action_space.n, seed), "value_iteration": PlannerPolicy(q)}
        return {name: evaluate_driving(policy, env, n_episodes, seed) for name, policy in policies.items()}
    finally:
        env.close()


def normalised_score(mean_return: float, random_return: float, optimal_return: float) -> float:
    """``(R - R_random) / (R_optimal - R_random)``: 0 for the random policy, 1 for the optimal one."""
    if not optimal_return > random_return:
        raise ValueError(f"the optimal return {optimal_return} must exceed the random policy's {random_return}")
    return (mean_return - random_return) / (optimal_return - random_return)


def with_score(row: dict[str, Any], references: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``row`` plus the reference returns measured on its episodes and its normalised score."""
    random_return = references["random"]["mean_return"]
    vi_return = references["value_iteration"]["mean_return"]
    return {
        **row,
        "random_return": random_return,
        "value_iteration_return": vi_return,
        "normalised_score": normalised_score(row["mean_return"], random_return, vi_return),
    }


def protocol_summary(rungs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Rung -> number -> ``{"mean", "low", "high"}``: the mean over seeds and its 95% bootstrap interval."""
    out = {}
    for name, rows in rungs.items():
        out[name] = {}
        for key in PROTOCOL_KEYS:
            mean, low, high = bootstrap_ci([r[key] for r in rows])
            out[name][key] = {"mean": mean, "low": low, "high": high}
    return out


def rungs_to_run(settings: LadderSettings, budget: dict[str, dict[str, int]]) -> list[Rung]:
    """The rungs this run can measure: no deep rung with a zero budget, no GAN rung without a GAN."""
    from perceptgym.supervised.perception import SHIPPED

    chosen = [r for r in RUNGS if settings.rungs is None or r.name in settings.rungs]
    return [r for r in chosen if budget[r.name]["budget"] > 0 and (r.eval_source != "gan" or SHIPPED["gan"].is_file())]


def run_ladder(settings: LadderSettings, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Trains and evaluates every rung for every seed; writes ladder.json, ladder.md and ladder.png.

    Returns the summary saved as ladder.json: ``rungs`` maps each rung's name to one row per seed
    (``mean_return``, ``std_return``, ``success_rate``, ``wrong_stop_rate``, ``collision_rate``, ``seed``,
    ``train_seconds``, ``train_env_steps``, ``eval_episodes``, the ``run_dir`` of the agent evaluated, the
    ``random_return`` and ``value_iteration_return`` measured on the same episodes and the
    ``normalised_score``); ``protocol`` has each rung's means over seeds with 95% bootstrap intervals.
    A rung that shares another's agents reports no training of its own (0 s, 0 steps).
    """
    out = Path(settings.out)
    budget = budgets(settings)
    rungs = rungs_to_run(settings, budget)
    swept = train_by_sweep(settings, rungs, budget) if settings.sweep else {}
    results: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rungs}
    for seed in settings.seeds:
        trained: dict[str, Path] = {}
        references: dict[int, dict[str, dict[str, float]]] = {}
        for rung in rungs:
            start = time.perf_counter()
            if rung.shares_agent_with:
                run_dir, train_seconds, train_steps = trained[rung.shares_agent_with], 0.0, 0
            elif settings.sweep:
                run_dir, train_seconds, train_steps = swept[rung.name, seed]
                trained[rung.name] = run_dir
            else:
                run = train_driving(
                    rung.agent,
                    rung.env_kwargs,
                    seed=seed,
                    runs_dir=out / "runs" / rung.slug,
                    budget=budget[rung.name]["budget"],
                    progress=settings.progress,
                    overrides={**rung.overrides, "device": settings.device} if rung.deep else rung.overrides,
                )
                run_dir = trained[rung.name] = run.run_dir
                train_seconds, train_steps = time.perf_counter() - start, run.global_step
            n_eval = budget[rung.name]["eval_episodes"]
            row: dict[str, Any] = evaluate_run(run_dir, rung.eval_source, n_eval, seed + EVAL_SEED_OFFSET)
            if n_eval not in references:
                references[n_eval] = reference_rows(n_eval, seed + EVAL_SEED_OFFSET)
            row = with_score(row, references[n_eval])
            row.update(
                seed=seed,
                train_seconds=train_seconds,
                train_env_steps=train_steps,
                eval_episodes=n_eval,
                run_dir=str(run_dir),
            )
            results[rung.name].append(row)
            if log is not None:
                log(
                    f"seed {seed} | {rung.name:<28} | score {row['normalised_score']:+.3f} | "
                    f"return {row['mean_return']:+.3f} | success "
                    f"{row['success_rate']:.3f} | wrong stop {row['wrong_stop_rate']:.3f} | "
                    f"train {train_seconds:.0f} s | {run_dir}"
                )
    summary = {
        "args": {
            "quick": settings.quick,
            "seeds": list(settings.seeds),
            "episodes": budget["symbolic"]["budget"],
            "pixels_steps": budget["pixels (PPO)"]["budget"],
            "budgets": {r.name: budget[r.name]["budget"] for r in rungs},
            "eval_episodes": _one_or_each({r.name: budget[r.name]["eval_episodes"] for r in rungs}),
            "out": str(out),
        },
        "optimal_return": optimal_return(),
        "rungs": results,
        "protocol": protocol_summary(results),
    }
    write_json(out / "ladder.json", summary)
    write_text(out / "ladder.md", markdown_table(summary) + "\n")
    plot_ladder(summary, out / "ladder.png")
    deep = {r.name: [Path(row["run_dir"]) for row in results[r.name]] for r in rungs if r.deep}
    if deep:
        plot_deep_curves(deep, out / "ladder_curves.png")
    return summary


def plot_deep_curves(runs: dict[str, list[Path]], path: str | Path, smooth: int = 500) -> Path:
    """Training success rate against env steps of the deep rungs' runs, the seeds as a band (progress.csv)."""
    curves = {}
    for name, run_dirs in runs.items():
        curves.update(group_curves(run_dirs, "global_step", smooth, metric="success", label=name))
    title = f"Deep rungs: training success (moving average of {smooth} episodes)"
    return plot_curves(curves, path, "global_step", title=title, ylim=(0.0, 1.0), metric="success")


def sweep_folder(out: str | Path) -> Path:
    """Where ``--sweep`` keeps its sweep (results.json and the run directories)."""
    return Path(out) / "sweep"


def sweep_trials(rungs: list[Rung], budget: dict[str, dict[str, int]], seeds: list[int]) -> list[tuple[Rung, Trial]]:
    """The trials of ``--sweep``: every rung that trains agents of its own × the seeds, the longest first.

    Each trial is the rung's recipe with the ladder's budget: the very hyperparameters :func:`train_driving`
    passes, so a seed trains the same agent either way. Longest first (``Rung.minutes``): one queue of all
    the rungs' trials keeps every CPU busy until the last ones, which are the short ones.
    """
    trials = []
    for rung in sorted((r for r in rungs if not r.shares_agent_with), key=lambda r: -r.minutes):
        hyperparams = run_overrides(rung.agent, rung.overrides, budget[rung.name]["budget"])
        # what tells the rungs apart first (the sweep's labels show the start of a config)
        config = {"env_kwargs": None, **rung.overrides, **hyperparams}
        config["env_kwargs"] = {**(hyperparams.get("env_kwargs") or {}), **rung.env_kwargs}
        trials += [(rung, Trial(ENV_ID, rung.agent, config, seed)) for seed in seeds]
    return trials


def train_by_sweep(
    settings: LadderSettings, rungs: list[Rung], budget: dict[str, dict[str, int]]
) -> dict[tuple[str, int], tuple[Path, float, int]]:
    """Trains every rung that has agents of its own, on every seed, as the trials of one sweep.

    Returns (rung name, seed) -> (run directory, trial wall time in its worker, training env steps).
    """
    from perceptgym.agents.sweep import SweepSpec, run_sweep

    folder = sweep_folder(settings.out)
    if folder.exists():
        raise ValueError(f"{folder} holds the sweep of an earlier ladder: give another --out")
    listed = sweep_trials(rungs, budget, list(settings.seeds))
    rung_of = {trial.key: rung for rung, trial in listed}
    spec = SweepSpec.of_trials([trial for _, trial in listed])
    result = run_sweep(
        spec, folder, address=settings.address, max_concurrent=settings.max_concurrent, progress=settings.progress
    )
    trained: dict[tuple[str, int], tuple[Path, float, int]] = {}
    for t in result.results["trials"]:
        rung = rung_of[t["key"]]
        if t["status"] != "finished":
            raise RuntimeError(
                f"ladder --sweep: rung {rung.name!r}, seed {t['seed']}: {t['status']}"
                + (f": {t['error']}" if t.get("error") else f" (see {folder / 'results.json'})")
            )
        trained[rung.name, t["seed"]] = (Path(t["run_dir"]), t["metrics"]["time_s"], t["metrics"]["global_step"])
    return trained


def _one_or_each(values: dict[str, int]) -> int | dict[str, int]:
    """One number when every rung got the same, else the number of each (sorted by rung)."""
    return next(iter(values.values())) if len(set(values.values())) == 1 else dict(sorted(values.items()))


PROTOCOL_COLUMNS = (
    ("normalised_score", "score"),
    ("success_rate", "success rate"),
    ("wrong_stop_rate", "wrong-stop rate"),
    ("collision_rate", "collision rate"),
    ("mean_return", "return"),
    ("train_env_steps", "train env steps"),
    ("train_seconds", "train time [s]"),
)


def _cell(stats: dict[str, float], key: str) -> str:
    if key == "train_env_steps":
        return f"{stats['mean']:,.0f} [{stats['low']:,.0f}, {stats['high']:,.0f}]"
    if key == "train_seconds":
        return f"{stats['mean']:.0f} [{stats['low']:.0f}, {stats['high']:.0f}]"
    return f"{stats['mean']:.3f} [{stats['low']:.3f}, {stats['high']:.3f}]"


def markdown_table(summary: dict[str, Any]) -> str:
    """The ladder as a Markdown table: each rung's mean over seeds [95% bootstrap interval]."""
    lines = [
        "| rung | " + " | ".join(label for _, label in PROTOCOL_COLUMNS) + " | seeds |",
        "|---" * (len(PROTOCOL_COLUMNS) + 2) + "|",
    ]
    for name, stats in summary["protocol"].items():
        cells = [_cell(stats[key], key) for key, _ in PROTOCOL_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(summary['rungs'][name])} |")
    n_eval = summary["args"]["eval_episodes"]
    if isinstance(n_eval, dict):
        n_eval = ", ".join(f"{n} ({agent})" for agent, n in n_eval.items())
    lines.append(
        f"\nOptimal expected return (value iteration on the true state): {summary['optimal_return']:.3f}. "
        "Mean over seeds [95% percentile-bootstrap interval]; each seed's numbers are greedy averages over "
        f"{n_eval} episodes on unseen handwriting. Score: 0 = uniform-random policy, 1 = value iteration's "
        "greedy policy, both run on the same evaluation episodes."
    )
    return "\n".join(lines)


def plot_ladder(summary: dict[str, Any], path: str | Path) -> Path:
    """Bars of normalised score, success rate and wrong-stop rate per rung, with the 95% bootstrap interval."""
    from matplotlib import colormaps

    names = list(summary["rungs"])
    # horizontal bars, the rungs top-down in ladder order: their names stay readable however many there are
    fig, axes = subplots(1, 3, figsize=(14, 1.4 + 0.45 * len(names)), dpi=110)
    y = np.arange(len(names))
    for ax, (key, label) in zip(
        axes,
        (
            ("normalised_score", "normalised score"),
            ("success_rate", "success rate"),
            ("wrong_stop_rate", "wrong-stop rate"),
        ),
        strict=True,
    ):
        stats = [summary["protocol"][n][key] for n in names]
        means = np.array([s["mean"] for s in stats])
        err = np.array(
            [
                [m - s["low"] for m, s in zip(means, stats, strict=True)],
                [s["high"] - m for m, s in zip(means, stats, strict=True)],
            ]
        )
        ax.barh(y, means, xerr=err, capsize=3, color=colormaps["viridis"](np.linspace(0.15, 0.85, len(names))))
        for yi, m, low_err, high_err in zip(y, means, err[0], err[1], strict=True):
            if m < 0:  # the label beyond the bar's end, on its side of 0
                ax.text(m - low_err, yi, f"{m:.3f} ", ha="right", va="center", fontsize=8)
            else:
                ax.text(m + high_err, yi, f" {m:.3f}", ha="left", va="center", fontsize=8)
        if key == "normalised_score":
            ax.axvline(1.0, color="k", ls="--", lw=1)
            label += " (dashed: value iteration)"
        floor = 0.0 if key == "wrong_stop_rate" else 1.0  # rates of a few percent get an axis of their own size
        low = min(0.0, float(np.min(means - err[0])))  # a score below the random policy's is negative
        high = max(floor, float(np.max(means + err[1])), 1e-3)
        ax.set_xlim(low - 0.15 * (high - low) if low < 0 else 0.0, high * 1.15)
        ax.set_yticks(y)
        ax.set_yticklabels(names if ax is axes[0] else [], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "Perception ladder on GridDriving-v0 "
        f"(mean and 95% bootstrap interval over {len(summary['args']['seeds'])} seeds)"
    )
    fig.tight_layout()
    return save_figure(fig, path)

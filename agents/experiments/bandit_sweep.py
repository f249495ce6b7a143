"""Bandit agents × seeds on DigitBandit: per-round regret, cumulative-regret curves with confidence bands.

A sweep writes one directory with ``config.json``, ``regret.npz`` (per agent an ``(n_seeds, rounds)`` array
of per-round regret), ``regret.csv`` (the same, one column per agent and seed), ``summary.json``,
``cumulative_regret.png`` (mean with a 95% confidence band of the mean over seeds) and, when the task is
non-stationary, ``per_round_regret.png`` (moving average, one line per permutation change). Every agent
sees the same digit stream for a given seed, so the comparison is paired.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.agents.bandit import BANDIT_AGENTS, play_rounds
from perceptgym.agents.config import check_range, check_seeds, check_settings, config_from_dict
from perceptgym.agents.experiments.files import save_figure, subplots, write_atomic, write_json
from perceptgym.agents.training import new_run_dir
from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from perceptgym.envs.digits import DigitSource, Reader


@dataclass(frozen=True)
class BanditSweep:
    agents: tuple[str, ...] = ("uniform", "epsilon_greedy", "linucb", "lin_ts", "neural", "perception_prior")
    """agents to run, by name (see perceptgym.agents.bandit.BANDIT_AGENTS)"""
    rounds: int = 10_000
    """rounds T per run"""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """one run per seed and agent; a seed fixes the digit stream and the agent's randomness"""
    obs_mode: str = "pixels"
    """observation mode of the env: pixels, perceived, perceived-confidence or symbolic"""
    digit_source: str = "mnist-train"
    """digit source: mnist-train, mnist-test, gan or gan:<checkpoint>"""
    reader: str = "cnn"
    """classifier of the perceived modes and of the perception-prior agent: cnn, mlp or a checkpoint path"""
    reward_scheme: str = "binary"
    """binary (1/0) or plus_minus (+1/-1)"""
    label_noise: float = 0.0
    """probability that a round rewards a random label"""
    reward_noise: float = 0.0
    """probability that a reward is flipped"""
    permute_every: int = 0
    """redraw the label permutation every this many rounds (0: stationary)"""
    overrides: str = "{}"
    """JSON object of per-agent config overrides, e.g. '{"neural": {"nu": 0.2}, "linucb": {"alpha": 1.0}}'"""
    moving_average: int = 250
    """window of the per-round regret plot [rounds]"""
    exp_name: str = "run_bandit"
    """name of the run directory under runs_dir"""
    runs_dir: str = "runs"
    """where run directories are created"""
    progress: bool = True
    """show a progress bar"""

    def __post_init__(self) -> None:
        if not self.agents or not self.seeds:
            raise ValueError("agents and seeds: give at least one of each")
        check_seeds(self.seeds)
        check_settings(self, at_least={"rounds": 1, "moving_average": 1, "permute_every": 0})
        for name in ("label_noise", "reward_noise"):
            check_range(name, getattr(self, name), 0.0, 1.0)


def sweep_dir(settings: BanditSweep) -> Path:
    """A new directory ``<runs_dir>/DigitBandit-v0__<exp_name>__<unix_time>`` (``-2``... if taken)."""
    return new_run_dir(settings.runs_dir, f"DigitBandit-v0__{settings.exp_name}__{int(time.time())}")


def agent_configs(settings: BanditSweep) -> dict[str, Any]:
    """The config of every requested agent, with overrides applied (clear errors for bad names and fields)."""
    unknown = [n for n in settings.agents if n not in BANDIT_AGENTS]
    if unknown:
        raise ValueError(f"unknown agents {unknown}: choose from {sorted(BANDIT_AGENTS)}")
    try:
        overrides = json.loads(settings.overrides)
    except json.JSONDecodeError as e:
        raise ValueError(f"overrides {settings.overrides!r} is not JSON: {e}") from e
    if not isinstance(overrides, dict) or set(overrides) - set(settings.agents):
        raise ValueError(
            f"overrides must be a JSON object keyed by the agents run {list(settings.agents)}, "
            f"got {settings.overrides!r}"
        )
    configs = {}
    for name in settings.agents:
        config_cls = BANDIT_AGENTS[name][1]
        fields = {f.name for f in dataclasses.fields(config_cls)}
        values = dict(overrides.get(name, {}))
        if name == "perception_prior":
            values.setdefault("reader", settings.reader)
            if settings.reward_scheme == "plus_minus":
                values.setdefault("reward_low", -1.0)
        bad = set(values) - fields
        if bad:
            raise ValueError(f"{name} has no settings {sorted(bad)}; its settings are {sorted(fields)}")
        try:
            configs[name] = config_from_dict(config_cls, values)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: {e}") from e
    return configs


def run_bandits(
    settings: BanditSweep,
    digit_source: DigitSource | None = None,
    reader: Reader | None = None,
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Runs every agent on every seed, writes the sweep directory and returns the summary.

    ``digit_source``/``reader`` replace ``settings.digit_source``/``settings.reader`` (tests pass stubs);
    ``run_dir`` defaults to a new :func:`sweep_dir`; the summary names it (``run_dir``).
    """
    configs = agent_configs(settings)
    env = DigitBanditEnv(
        obs_mode=settings.obs_mode,
        digit_source=digit_source or settings.digit_source,
        reader=reader or settings.reader,
        reward_scheme=settings.reward_scheme,
        label_noise=settings.label_noise,
        reward_noise=settings.reward_noise,
        permute_every=settings.permute_every,
    )
    run_dir = sweep_dir(settings) if run_dir is None else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        run_dir / "config.json",
        {"args": dataclasses.asdict(settings), "agents": {n: dataclasses.asdict(c) for n, c in configs.items()}},
    )
    regret = {n: np.zeros((len(settings.seeds), settings.rounds)) for n in settings.agents}
    seconds = {n: np.zeros(len(settings.seeds)) for n in settings.agents}
    bar = _progress(settings)
    for name in settings.agents:
        cls = BANDIT_AGENTS[name][0]
        for k, seed in enumerate(settings.seeds):
            env_seed, agent_seed = np.random.SeedSequence(seed).generate_state(2)
            kwargs = {"reader": reader} if name == "perception_prior" and reader is not None else {}
            agent = cls(
                env.observation_space,
                env.action_space,
                configs[name],
                rng=np.random.default_rng(agent_seed),
                **kwargs,
            )
            if bar is not None:
                bar.set_description(f"{name} seed {seed}")
            start = time.perf_counter()
            log = play_rounds(
                env,
                agent,
                settings.rounds,
                seed=int(env_seed),
                callback=None if bar is None else lambda i, _log: bar.update(1),
            )
            seconds[name][k] = time.perf_counter() - start
            regret[name][k] = log.regret
    if bar is not None:
        bar.close()
    summary = {**summarise(settings, regret, seconds), "run_dir": str(run_dir)}
    save_results(run_dir, settings, regret, summary)
    plot_cumulative(run_dir / "cumulative_regret.png", settings, regret)
    if settings.permute_every:
        plot_per_round(run_dir / "per_round_regret.png", settings, regret)
    return summary


def _progress(settings: BanditSweep):
    if not settings.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=len(settings.agents) * len(settings.seeds) * settings.rounds, unit="round", mininterval=1.0)


def summarise(settings: BanditSweep, regret: dict[str, np.ndarray], seconds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Final cumulative regret (mean, std, per seed) and seconds per run of every agent."""
    out: dict[str, Any] = {"rounds": settings.rounds, "seeds": list(settings.seeds), "agents": {}}
    for name, r in regret.items():
        final = r.sum(axis=1)
        out["agents"][name] = {
            "final_cumulative_regret_mean": float(final.mean()),
            "final_cumulative_regret_std": float(final.std(ddof=1)) if len(final) > 1 else 0.0,
            "final_cumulative_regret_per_seed": final.tolist(),
            "seconds_per_run_mean": float(seconds[name].mean()),
            "seconds_per_run": seconds[name].tolist(),
        }
    return out


def save_results(run_dir: Path, settings: BanditSweep, regret: dict[str, np.ndarray], summary: dict[str, Any]) -> None:
    """regret.npz, regret.csv and summary.json."""
    write_atomic(run_dir / "regret.npz", lambda f: np.savez_compressed(f, seeds=np.array(settings.seeds), **regret))
    columns = [f"{n}_seed{s}" for n in regret for s in settings.seeds]
    table = np.column_stack([np.arange(settings.rounds)] + [r[k] for r in regret.values() for k in range(len(r))])
    text = io.StringIO()
    np.savetxt(
        text,
        table,
        delimiter=",",
        header="round," + ",".join(columns),
        comments="",
        fmt=["%d"] + ["%.6g"] * len(columns),
    )
    write_atomic(run_dir / "regret.csv", lambda f: f.write(text.getvalue().encode()))
    write_json(run_dir / "summary.json", summary)


def _mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the half-width of its 95% confidence interval (normal approximation)."""
    mean = curves.mean(axis=0)
    if len(curves) < 2:
        return mean, np.zeros_like(mean)
    return mean, 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))


def _env_title(settings: BanditSweep) -> str:
    extras = [
        f"{k}={getattr(settings, k)}" for k in ("label_noise", "reward_noise", "permute_every") if getattr(settings, k)
    ]
    return f"DigitBandit ({settings.obs_mode}, {settings.digit_source}{', ' + ', '.join(extras) if extras else ''})"


def _plot_bands(ax, x: np.ndarray, curves: dict[str, np.ndarray], final: bool = False) -> None:
    """One line per agent (mean over seeds) with its 95% band; uniform dashed grey as the baseline."""
    for name, c in curves.items():
        mean, half = _mean_band(c)
        style = {"linestyle": "--", "color": "grey"} if name == "uniform" else {}
        (line,) = ax.plot(x, mean, label=f"{name} ({mean[-1]:.0f})" if final else name, **style)
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.grid(True, which="both", alpha=0.3)


def plot_cumulative(path: Path, settings: BanditSweep, regret: dict[str, np.ndarray]) -> Path:
    """Cumulative regret, linear scale (left) and log scale (right, to tell the good agents apart)."""
    fig, axes = subplots(1, 2, figsize=(13, 5))
    cumulative = {name: np.cumsum(r, axis=1) for name, r in regret.items()}
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        _plot_bands(ax, np.arange(1, settings.rounds + 1), cumulative, final=scale == "linear")
        ax.set(xlabel="round", ylabel=f"cumulative regret ({scale} scale)")
        if scale == "log":
            ax.set_yscale("symlog", linthresh=10)
            ax.set_ylim(0, None)
        else:
            ax.set_ylim(0, None)
            ax.legend()
    fig.suptitle(f"{_env_title(settings)}: mean over {len(settings.seeds)} seeds, 95% band (final value in legend)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_per_round(path: Path, settings: BanditSweep, regret: dict[str, np.ndarray]) -> Path:
    """Moving average of the per-round regret, with the permutation changes marked."""
    w = max(1, min(settings.moving_average, settings.rounds))
    kernel = np.ones(w) / w
    smooth = {name: np.stack([np.convolve(row, kernel, mode="valid") for row in r]) for name, r in regret.items()}
    fig, ax = subplots(figsize=(9, 5))
    _plot_bands(ax, np.arange(w, settings.rounds + 1), smooth)
    for change in range(settings.permute_every, settings.rounds, settings.permute_every):
        ax.axvline(change, color="black", linewidth=0.8, linestyle=":")
    ax.set(
        xlabel="round (dotted: the label permutation changes)",
        ylabel=f"regret per round ({w}-round moving average)",
        ylim=(0, None),
        title=f"{_env_title(settings)}: mean over {len(settings.seeds)} seeds, 95% band",
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(smooth), frameon=False)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)

"""Run bandit agents on DigitBandit over several seeds; save per-round regret, plot cumulative regret.

    python -m perceptgym.run_bandit --rounds 10000 --seeds 0 1 2 3 4
    python -m perceptgym.run_bandit --agents neural linucb uniform --permute-every 2500   # non-stationary

Writes ``runs/DigitBandit-v0__<exp_name>__<unix_time>/`` with ``config.json``, ``regret.npz`` (per agent an
``(n_seeds, rounds)`` array of per-round regret), ``regret.csv`` (the same, one column per agent and seed),
``summary.json``, ``cumulative_regret.png`` (mean with a 95% confidence band of the mean over seeds) and, when
the task is non-stationary, ``per_round_regret.png`` (moving average, one line per permutation change).
Every agent sees the same digit stream for a given seed, so the comparison is paired.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym._cli import run_program
from perceptgym.agents.bandit import BANDIT_AGENTS, play_rounds
from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from perceptgym.envs.digits import DigitSource, Reader


@dataclass(frozen=True)
class Args:
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


def agent_configs(args: Args) -> dict[str, Any]:
    """The config of every requested agent, with overrides applied (clear errors for bad names and fields)."""
    unknown = [n for n in args.agents if n not in BANDIT_AGENTS]
    if unknown:
        raise ValueError(f"unknown agents {unknown}: choose from {sorted(BANDIT_AGENTS)}")
    overrides = json.loads(args.overrides)
    if not isinstance(overrides, dict) or set(overrides) - set(args.agents):
        raise ValueError(
            f"overrides must be a JSON object keyed by the agents run {list(args.agents)}, got {args.overrides!r}"
        )
    configs = {}
    for name in args.agents:
        config_cls = BANDIT_AGENTS[name][1]
        fields = {f.name for f in dataclasses.fields(config_cls)}
        values = dict(overrides.get(name, {}))
        if name == "perception_prior":
            values.setdefault("reader", args.reader)
            if args.reward_scheme == "plus_minus":
                values.setdefault("reward_low", -1.0)
        bad = set(values) - fields
        if bad:
            raise ValueError(f"{name} has no settings {sorted(bad)}; its settings are {sorted(fields)}")
        configs[name] = config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    return configs


def run_bandits(
    args: Args,
    digit_source: DigitSource | None = None,
    reader: Reader | None = None,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Runs every agent on every seed, writes the run directory and returns the summary.

    ``digit_source``/``reader`` replace ``args.digit_source``/``args.reader`` (tests pass stubs).
    """
    configs = agent_configs(args)
    if run_dir is None:
        run_dir = Path(args.runs_dir) / f"DigitBandit-v0__{args.exp_name}__{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(
        json.dumps(
            {
                "args": dataclasses.asdict(args),
                "agents": {n: dataclasses.asdict(c) for n, c in configs.items()},
            },
            indent=2,
        )
    )
    env = DigitBanditEnv(
        obs_mode=args.obs_mode,
        digit_source=digit_source or args.digit_source,
        reader=reader or args.reader,
        reward_scheme=args.reward_scheme,
        label_noise=args.label_noise,
        reward_noise=args.reward_noise,
        permute_every=args.permute_every,
    )
    regret = {n: np.zeros((len(args.seeds), args.rounds)) for n in args.agents}
    seconds = {n: np.zeros(len(args.seeds)) for n in args.agents}
    bar = _progress(args)
    for name in args.agents:
        cls = BANDIT_AGENTS[name][0]
        for k, seed in enumerate(args.seeds):
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
                args.rounds,
                seed=int(env_seed),
                callback=None if bar is None else lambda i, _log: bar.update(1),
            )
            seconds[name][k] = time.perf_counter() - start
            regret[name][k] = log.regret
    if bar is not None:
        bar.close()
    summary = summarise(args, regret, seconds)
    save_results(run_dir, args, regret, summary)
    plot_cumulative(run_dir / "cumulative_regret.png", args, regret)
    if args.permute_every:
        plot_per_round(run_dir / "per_round_regret.png", args, regret)
    return summary


def _progress(args: Args):
    if not args.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=len(args.agents) * len(args.seeds) * args.rounds, unit="round", mininterval=1.0)


def summarise(args: Args, regret: dict[str, np.ndarray], seconds: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": args.rounds, "seeds": list(args.seeds), "agents": {}}
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


def save_results(run_dir: Path, args: Args, regret: dict[str, np.ndarray], summary: dict[str, Any]) -> None:
    np.savez_compressed(run_dir / "regret.npz", seeds=np.array(args.seeds), **regret)
    columns = [f"{n}_seed{s}" for n in regret for s in args.seeds]
    table = np.column_stack([np.arange(args.rounds)] + [r[k] for r in regret.values() for k in range(len(r))])
    np.savetxt(
        run_dir / "regret.csv",
        table,
        delimiter=",",
        header="round," + ",".join(columns),
        comments="",
        fmt=["%d"] + ["%.6g"] * len(columns),
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def _mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the half-width of its 95% confidence interval (normal approximation)."""
    mean = curves.mean(axis=0)
    if len(curves) < 2:
        return mean, np.zeros_like(mean)
    return mean, 1.96 * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))


def _env_title(args: Args) -> str:
    extras = [f"{k}={getattr(args, k)}" for k in ("label_noise", "reward_noise", "permute_every") if getattr(args, k)]
    return f"DigitBandit ({args.obs_mode}, {args.digit_source}{', ' + ', '.join(extras) if extras else ''})"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_bands(ax, x: np.ndarray, curves: dict[str, np.ndarray], final: bool = False) -> None:
    """One line per agent (mean over seeds) with its 95% band; uniform dashed grey as the baseline."""
    for name, c in curves.items():
        mean, half = _mean_band(c)
        style = {"linestyle": "--", "color": "grey"} if name == "uniform" else {}
        (line,) = ax.plot(x, mean, label=f"{name} ({mean[-1]:.0f})" if final else name, **style)
        ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.grid(True, which="both", alpha=0.3)


def plot_cumulative(path: Path, args: Args, regret: dict[str, np.ndarray]) -> None:
    """Cumulative regret, linear scale (left) and log scale (right, to tell the good agents apart)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    cumulative = {name: np.cumsum(r, axis=1) for name, r in regret.items()}
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        _plot_bands(ax, np.arange(1, args.rounds + 1), cumulative, final=scale == "linear")
        ax.set(xlabel="round", ylabel=f"cumulative regret ({scale} scale)")
        if scale == "log":
            ax.set_yscale("symlog", linthresh=10)
            ax.set_ylim(0, None)
        else:
            ax.set_ylim(0, None)
            ax.legend()
    fig.suptitle(f"{_env_title(args)}: mean over {len(args.seeds)} seeds, 95% band (final value in legend)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_per_round(path: Path, args: Args, regret: dict[str, np.ndarray]) -> None:
    """Moving average of the per-round regret, with the permutation changes marked."""
    plt = _pyplot()
    w = max(1, min(args.moving_average, args.rounds))
    kernel = np.ones(w) / w
    smooth = {name: np.stack([np.convolve(row, kernel, mode="valid") for row in r]) for name, r in regret.items()}
    fig, ax = plt.subplots(figsize=(9, 5))
    _plot_bands(ax, np.arange(w, args.rounds + 1), smooth)
    for change in range(args.permute_every, args.rounds, args.permute_every):
        ax.axvline(change, color="black", linewidth=0.8, linestyle=":")
    ax.set(
        xlabel="round (dotted: the label permutation changes)",
        ylabel=f"regret per round ({w}-round moving average)",
        ylim=(0, None),
        title=f"{_env_title(args)}: mean over {len(args.seeds)} seeds, 95% band",
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(smooth), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"DigitBandit, T={summary['rounds']}, seeds {summary['seeds']}")
    for col in ("agent", "regret (mean ± std)", "seconds per run"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for name, s in summary["agents"].items():
        table.add_row(
            name,
            f"{s['final_cumulative_regret_mean']:.1f} ± {s['final_cumulative_regret_std']:.1f}",
            f"{s['seconds_per_run_mean']:.1f}",
        )
    Console().print(table)


def run(args: Args) -> Path:
    run_dir = Path(args.runs_dir) / f"DigitBandit-v0__{args.exp_name}__{int(time.time())}"
    summary = run_bandits(args, run_dir=run_dir)
    print_table(summary)
    print(f"results in {run_dir}")
    return run_dir


def main(argv: Sequence[str] | None = None, prog: str = "perceptgym bandit") -> int:
    return run_program(run, Args, argv, prog)


if __name__ == "__main__":
    sys.exit(main())

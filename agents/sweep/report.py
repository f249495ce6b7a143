"""The sweep's folder: ``results.json`` (trials as they finish, per-config statistics), ``results.md``, ``results.png``.

``results.json`` is also what ``--resume`` reads (plain JSON, nothing in it can run code): the sweep as
parsed, the run settings, and one entry per trial keyed by the trial's content (:attr:`Trial.key`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from perceptgym.agents.sweep.spec import SweepSpec, Trial, config_label
from perceptgym.agents.sweep.stats import best_by_lower_bound, summarize, summary_dict

FORMAT_VERSION = 1
RESULTS = "results.json"
#: trial statuses that are final: a resumed sweep does not run these again
DONE = ("finished", "stopped", "error")
#: the eval metric each sweep metric is judged by, and its label
METRIC_KEYS = {"return": ("mean_return", "greedy return"), "success": ("success_rate", "success rate")}


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C mid-write must not leave a half-written results file
        Path(tmp).unlink(missing_ok=True)
        raise


class Ledger:
    """Every trial of a sweep and its status, saved to ``results.json`` after each change."""

    def __init__(self, out: Path, spec: SweepSpec, settings: Mapping[str, Any], trials: Iterable[dict] = ()):
        self.out, self.spec, self.settings = Path(out), spec, dict(settings)
        self.trials: dict[str, dict] = {t["key"]: t for t in trials}
        self.elapsed_s = float(self.settings.pop("elapsed_s", 0.0))

    @classmethod
    def load(cls, out: Path) -> Ledger:
        from perceptgym.agents.sweep.spec import parse_sweep

        path = Path(out) / RESULTS
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise ValueError(f"--resume {out}: no sweep there ({path}: {e.strerror or e})") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"--resume {out}: {path} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or "sweep" not in data:
            raise ValueError(
                f"--resume {out}: {path} is not a perceptgym sweep results file (version {FORMAT_VERSION})"
            )
        spec = parse_sweep(data["sweep"], where=f"{path}: sweep")
        return cls(out, spec, {**data.get("settings", {}), "elapsed_s": data.get("elapsed_s", 0.0)}, data["trials"])

    def status(self, key: str) -> str | None:
        entry = self.trials.get(key)
        return None if entry is None else entry["status"]

    def update(self, trial: Trial, **fields: Any) -> dict:
        entry = self.trials.setdefault(
            trial.key,
            {
                "key": trial.key,
                "env": trial.env,
                "agent": trial.agent,
                "config": trial.config,
                "seed": trial.seed,
                "status": "pending",
                "attempts": 0,
                "metrics": None,
                "run_dir": None,
                "error": None,
            },
        )
        entry.update(fields)
        self.save()
        return entry

    def close_unfinished(self) -> int:
        """Marks trials still running (the sweep was stopped) as unfinished; returns how many."""
        n = 0
        for entry in self.trials.values():
            if entry["status"] not in DONE:
                entry["status"], n = "unfinished", n + 1
        self.save()
        return n

    def data(self) -> dict[str, Any]:
        trials = list(self.trials.values())
        configs = aggregate(trials, self.spec)
        return {
            "version": FORMAT_VERSION,
            "sweep": self.spec.to_dict(),
            "settings": self.settings,
            "elapsed_s": round(self.elapsed_s, 3),
            "metric": self.spec.metric,
            "trials": trials,
            "configs": configs,
            "best": best_configs(configs, self.spec),
        }

    def save(self) -> None:
        """results.json and the results.md table, after every change (the plot comes at the end)."""
        data = self.data()
        atomic_write_text(self.out / RESULTS, json.dumps(data, indent=2, default=str) + "\n")
        atomic_write_text(self.out / "results.md", markdown(data))


def aggregate(trials: Iterable[Mapping[str, Any]], spec: SweepSpec) -> list[dict[str, Any]]:
    """Per config (env, agent, values): status counts and statistics over its finished seeds."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for t in trials:
        groups.setdefault(Trial(t["env"], t["agent"], t["config"], 0).config_key, []).append(t)
    listed = Counter(t.config_key for t in spec.trials)  # explicit trials: the seeds listed for each config
    rows = []
    for config_key, members in groups.items():
        planned = listed[config_key] if spec.trials else len(spec.seeds)
        first = members[0]
        finished = sorted((t for t in members if t["status"] == "finished"), key=lambda t: t["seed"])
        row: dict[str, Any] = {
            "config_key": config_key,
            "env": first["env"],
            "agent": first["agent"],
            "config": first["config"],
            "label": config_label(first["config"]),
            "n_seeds": planned,
            "seeds_finished": [t["seed"] for t in finished],
            "n_stopped": sum(t["status"] == "stopped" for t in members),
            "n_error": sum(t["status"] == "error" for t in members),
            "complete": len(finished) == planned,
        }
        for metric, (key, _) in METRIC_KEYS.items():
            values = [t["metrics"][key] for t in finished if t["metrics"] and t["metrics"].get(key) is not None]
            row[metric] = summary_dict(summarize(values)) if values else None
        rows.append(row)
    return rows


def best_configs(configs: list[dict[str, Any]], spec: SweepSpec) -> list[dict[str, Any]]:
    """Per env × agent: the complete config (every seed finished) with the highest lower 95% bound."""
    from perceptgym.agents.sweep.stats import Summary

    best = []
    for env in spec.envs:
        for agent in spec.agents:
            candidates = {
                c["config_key"]: Summary(**{**c[spec.metric], "mean_ci": tuple(c[spec.metric]["mean_ci"])})
                for c in configs
                if c["env"] == env and c["agent"] == agent and c["complete"] and c[spec.metric] is not None
            }
            key = best_by_lower_bound(candidates)
            if key is None:
                continue
            row = next(c for c in configs if c["config_key"] == key)
            best.append(
                {
                    "env": env,
                    "agent": agent,
                    "config_key": key,
                    "config": row["config"],
                    "label": row["label"],
                    "metric": spec.metric,
                    "mean": row[spec.metric]["mean"],
                    "mean_ci": row[spec.metric]["mean_ci"],
                    "iqm": row[spec.metric]["iqm"],
                }
            )
    return best


def _ci(summary: Mapping[str, Any] | None, key: str = "mean", digits: int = 3) -> str:
    if summary is None:
        return "–"
    low, high = summary[f"{key}_ci"]
    return f"{summary[key]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _ranked(data: Mapping[str, Any], env: str, agent: str) -> list[dict[str, Any]]:
    metric = data["metric"]
    rows = [c for c in data["configs"] if c["env"] == env and c["agent"] == agent]
    # complete configs first, by lower confidence bound (the rule "best" uses), then the rest
    return sorted(rows, key=lambda c: (not c["complete"], -(c[metric]["mean_ci"][0] if c[metric] else -np.inf)))


def markdown(data: Mapping[str, Any]) -> str:
    """The per-config table, one section per env × agent, ranked by the lower 95% bound of the metric."""
    spec = data["sweep"]
    metric = data["metric"]
    lines = [
        "# Sweep results",
        "",
        f"{len(data['trials'])} trials; seeds {spec['seeds']}; best = highest lower bound of the 95% bootstrap "
        f"CI of the mean {METRIC_KEYS[metric][1]} over seeds (configs with every seed finished). Greedy "
        "evaluation at the end of each run; IQM = interquartile mean.",
    ]
    best = {(b["env"], b["agent"]): b["config_key"] for b in data["best"]}
    for env in spec["envs"]:
        for agent in spec["agents"]:
            rows = _ranked(data, env, agent)
            if not rows:
                continue
            lines += [
                "",
                f"## {env} · {agent}",
                "",
                "| config | seeds done | return mean [95% CI] | return IQM [95% CI] | success mean [95% CI] "
                "| stopped | errors |",
                "|---|---|---|---|---|---|---|",
            ]
            for c in rows:
                star = " **(best)**" if best.get((env, agent)) == c["config_key"] else ""
                lines.append(
                    f"| {c['label']}{star} | {len(c['seeds_finished'])}/{c['n_seeds']} | {_ci(c['return'])} | "
                    f"{_ci(c['return'], 'iqm')} | {_ci(c['success'])} | {c['n_stopped']} | {c['n_error']} |"
                )
    errors = [t for t in data["trials"] if t["status"] == "error"]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [
            f"- {t['env']} · {t['agent']} · {config_label(t['config'])} · seed {t['seed']}: {t['error']}"
            for t in errors
        ]
    return "\n".join(lines) + "\n"


MAX_PLOTTED = 15


def plot(data: Mapping[str, Any], path: Path) -> None:
    """One panel per env × agent: each seed's value, the mean and its 95% CI, for the best-ranked configs."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    metric = data["metric"]
    key, label = METRIC_KEYS[metric]
    spec = data["sweep"]
    panels = [(e, a, _ranked(data, e, a)[:MAX_PLOTTED]) for e in spec["envs"] for a in spec["agents"]]
    panels = [p for p in panels if p[2]]
    if not panels:
        return
    lines = max(_wrap(c["label"]).count("\n") + 1 for *_, rows in panels for c in rows)
    height = max(2.5, (0.3 + 0.15 * lines) * max(len(rows) for *_, rows in panels) + 1.2)
    fig = Figure(figsize=(6.5 * len(panels), height))
    axes = fig.subplots(1, len(panels), squeeze=False)
    best = {(b["env"], b["agent"]): b["config_key"] for b in data["best"]}
    by_config: dict[str, list[float]] = {}
    for t in data["trials"]:
        if t["status"] == "finished" and (t["metrics"] or {}).get(key) is not None:  # eval_episodes: 0 has none
            by_config.setdefault(Trial(t["env"], t["agent"], t["config"], 0).config_key, []).append(t["metrics"][key])
    for ax, (env, agent, rows) in zip(axes[0], panels, strict=True):
        for y, c in enumerate(reversed(rows)):
            values = by_config.get(c["config_key"], [])
            color = "tab:green" if best.get((env, agent)) == c["config_key"] else "tab:blue"
            ax.scatter(values, [y] * len(values), s=14, color="0.55", zorder=2)
            s = c[metric]
            if s is not None:
                low, high = s["mean_ci"]
                ax.errorbar(
                    s["mean"],
                    y,
                    xerr=[[s["mean"] - low], [high - s["mean"]]],
                    fmt="o",
                    color=color,
                    capsize=3,
                    zorder=3,
                )
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([_wrap(c["label"]) for c in reversed(rows)], fontsize=7)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(f"{label}: each seed (grey), mean and 95% bootstrap CI", fontsize=8)
        ax.set_title(f"{env} · {agent} (green: best by lower bound)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _wrap(label: str, width: int = 28) -> str:
    """One setting per line once a label gets long (tick labels must fit beside the panel)."""
    return label if len(label) <= width else label.replace(" ", "\n")


def write_reports(ledger: Ledger) -> dict[str, Any]:
    """results.json, results.md and results.png in the sweep's folder; returns the results."""
    ledger.save()
    data = ledger.data()
    plot(data, ledger.out / "results.png")
    return data

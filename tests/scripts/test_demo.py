"""The main job end to end: ``perceptgym demo --quick`` in a fresh subprocess, as CI and users run it.

The demo is :func:`perceptgym.agents.experiments.demo.run_demo`; its agents are run directories that
``perceptgym evaluate`` and ``perceptgym watch`` open.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptgym.agents.experiments.demo import QUICK, DemoSettings, run_demo
from perceptgym.agents.experiments.driving import recipe
from tests.scripts.test_train_script import run

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = (
    "report.md",
    "report.json",
    "confusion_matrix.png",
    "learning_curves.png",
    "regret_curves.png",
    "episode.mp4",
    "episode.gif",
    "viewer.png",
    "bandit/regret.npz",
)
#: what changes between two runs with the same seed: the clock, and the run directories named after it
TIMING = {"generated", "seconds", "train_seconds", "steps_per_second", "run_dir"}


def _numbers(results):
    """``results`` without its timings (wall-clock seconds, speeds, time-stamped paths)."""
    if isinstance(results, dict):
        return {k: _numbers(v) for k, v in results.items() if k not in TIMING and k != "seconds_per_run"}
    return results


def test_demo_settings_are_validated_and_budgets_come_from_the_yaml():
    from perceptgym.demo import main

    with pytest.raises(ValueError, match="episodes"):
        DemoSettings(episodes=0)
    assert main(["--render", "window"]) == 2  # tyro reports a bad flag value in one box
    full, quick = DemoSettings(), DemoSettings(quick=True, rounds=7)
    assert full.budget("episodes") == recipe("q_learning")["n_episodes"]
    assert full.budget("eval_episodes") == recipe("q_learning")["eval_episodes"]
    assert quick.budget("episodes") == QUICK["episodes"] and quick.budget("rounds") == 7


def _evaluate_printout(run_dir: str, episodes: int, seed: int, capsys) -> str:
    from perceptgym.evaluate import main as evaluate_main

    kwargs = '{"digit_source": "mnist-test"}'
    assert evaluate_main([run_dir, "--episodes", str(episodes), "--seed", str(seed), "--env-kwargs", kwargs]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_small_demo_in_process_is_deterministic_and_its_runs_reproduce_the_report(tmp_path, capsys):
    settings = {"episodes": 400, "eval_episodes": 30, "rounds": 60, "progress": False, "seed": 3}
    first = run_demo(DemoSettings(out=tmp_path / "a", **settings))
    second = run_demo(DemoSettings(out=tmp_path / "b", **settings))
    assert _numbers(first) == _numbers(second)
    assert json.loads((tmp_path / "a" / "report.json").read_text()) == first
    for mode in ("symbolic", "perceived"):
        r = first["driving"][mode]
        out = _evaluate_printout(r["run_dir"], 30, 3 + 10_000, capsys)
        assert f"mean return {r['mean_return']:.3f} ± {r['std_return']:.3f} over 30 episodes" in out
        assert f"success rate {r['success_rate']:.3f}" in out


@pytest.mark.slow(seconds=83)
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.run(
        [sys.executable, "-m", "perceptgym.demo", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done in" in proc.stdout
    for name in ARTEFACTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    from perceptgym.supervised.perception import SHIPPED

    if SHIPPED["gan"].is_file():
        assert (out / "gan_samples.png").stat().st_size > 0

    data = json.loads((out / "report.json").read_text())
    report = (out / "report.md").read_text()
    # The numbers in report.md are the saved ones.
    assert f"**{data['perception']['classifier']['test_accuracy']:.2%}**" in report
    for mode in ("symbolic", "perceived"):
        r = data["driving"][mode]
        assert (
            f"| {mode} | {r['train_episodes']} | {r['mean_return']:.3f} ± {r['std_return']:.3f} | "
            f"{r['success_rate']:.3f} | {r['wrong_stop_rate']:.3f} |"
        ) in report
        assert r["train_episodes"] == QUICK["episodes"] and r["eval_episodes"] == QUICK["eval_episodes"]
    for name, row in data["bandit"]["agents"].items():
        assert f"| {name} | {row['cumulative_regret']:.1f} |" in report
    assert f"{data['driving']['optimal_return']:.3f}" in report
    # The saved regret curves are the ones summarised.
    regret = np.load(out / "bandit" / "regret.npz")
    for name, row in data["bandit"]["agents"].items():
        assert regret[name].sum(axis=1).mean() == pytest.approx(row["cumulative_regret"])
    # Even the quick run learns to drive, and perception costs at most a few points of success.
    assert data["driving"]["symbolic"]["success_rate"] > 0.4
    assert data["driving"]["perceived"]["success_rate"] > 0.4

    # The perceived agent is an ordinary run directory: `perceptgym evaluate` repeats the report's evaluation
    # exactly, and `perceptgym watch` records it.
    r = data["driving"]["perceived"]
    run_dir = Path(r["run_dir"])
    assert run_dir.parent == out / "runs" / "perceived" and (run_dir / "model.npz").is_file()
    assert json.loads((run_dir / "config.json").read_text())["run_settings"]["env_kwargs"]["obs_mode"] == "perceived"
    printed = _evaluate_printout(str(run_dir), r["eval_episodes"], data["seed"] + 10_000, capsys)
    assert f"mean return {r['mean_return']:.3f} ± {r['std_return']:.3f} over {r['eval_episodes']} episodes" in printed
    assert f"success rate {r['success_rate']:.3f}" in printed
    gif = tmp_path / "watch.gif"
    run("perceptgym.watch", str(run_dir), "--episodes", "1", "--record", str(gif))
    with Image.open(gif) as image:
        assert image.n_frames > 1

"""The main job end to end: ``python -m perceptgym.demo --quick`` in a fresh subprocess, as CI and users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = (
    "report.md",
    "report.json",
    "confusion_matrix.png",
    "learning_curves.png",
    "regret_curves.png",
    "episode.gif",
    "viewer.png",
    "models/q_learning_perceived.npz",
    "bandit/regret.npz",
)


def test_demo_args_are_validated():
    from perceptgym.demo import Args

    with pytest.raises(ValueError, match="render"):
        Args(render="window")
    with pytest.raises(ValueError, match="episodes"):
        Args(episodes=0)


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
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
    for name, row in data["bandit"]["agents"].items():
        assert f"| {name} | {row['cumulative_regret']:.1f} |" in report
    assert f"{data['driving']['optimal_return']:.3f}" in report
    # The saved regret curves are the ones summarised.
    import numpy as np

    regret = np.load(out / "bandit" / "regret.npz")
    for name, row in data["bandit"]["agents"].items():
        assert regret[name].sum(axis=1).mean() == pytest.approx(row["cumulative_regret"])
    # Even the quick run learns to drive, and perception costs at most a few points of success.
    assert data["driving"]["symbolic"]["success_rate"] > 0.4
    assert data["driving"]["perceived"]["success_rate"] > 0.4

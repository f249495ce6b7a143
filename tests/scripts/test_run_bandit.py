"""scripts/run_bandit.py: a tiny in-process run on stub digits, bad arguments, a CLI run on real MNIST."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perceptgym.agents.experiments.bandit_sweep import BanditSweep as Args
from perceptgym.agents.experiments.bandit_sweep import agent_configs, run_bandits

REPO = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_regret_plots_and_summary(tmp_path, stub_source, stub_reader):
    args = Args(
        agents=("uniform", "linucb", "perception_prior"),
        rounds=120,
        seeds=(0, 1),
        permute_every=50,
        moving_average=20,
        progress=False,
        overrides='{"linucb": {"normalize": false}}',
    )
    summary = run_bandits(args, digit_source=stub_source, reader=stub_reader, run_dir=tmp_path)
    regret = np.load(tmp_path / "regret.npz")
    assert regret["linucb"].shape == (2, 120)
    assert set(np.unique(regret["uniform"])) <= {0.0, 1.0}
    s = summary["agents"]["uniform"]
    assert s["final_cumulative_regret_mean"] == pytest.approx(regret["uniform"].sum(axis=1).mean())
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    csv = np.loadtxt(tmp_path / "regret.csv", delimiter=",", skiprows=1)
    assert csv.shape == (120, 1 + 3 * 2)
    np.testing.assert_allclose(csv[:, 1], regret["uniform"][0])
    for png in ("cumulative_regret.png", "per_round_regret.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["agents"]["linucb"]["normalize"] is False


def test_same_seed_same_regret(tmp_path, stub_source):
    args = Args(agents=("lin_ts",), rounds=60, seeds=(3,), progress=False)
    a = run_bandits(args, digit_source=stub_source, run_dir=tmp_path / "a")
    b = run_bandits(args, digit_source=stub_source, run_dir=tmp_path / "b")
    assert (
        a["agents"]["lin_ts"]["final_cumulative_regret_per_seed"]
        == b["agents"]["lin_ts"]["final_cumulative_regret_per_seed"]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agents": ("linucb", "ppo")}, "unknown agents"),
        ({"overrides": '{"neural": {"nu": 1}}', "agents": ("linucb",)}, "keyed by the agents run"),
        ({"overrides": '{"linucb": {"gamma": 1}}', "agents": ("linucb",)}, "has no settings"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        agent_configs(Args(**kwargs))


@pytest.mark.slow
def test_cli_on_real_mnist(tmp_path):
    pytest.importorskip("perceptgym.supervised.perception")
    cmd = [
        sys.executable,
        "-m",
        "perceptgym.run_bandit",
        "--agents",
        "uniform",
        "linucb",
        "--rounds",
        "200",
        "--seeds",
        "0",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
    ]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (
        summary["agents"]["linucb"]["final_cumulative_regret_mean"]
        < summary["agents"]["uniform"]["final_cumulative_regret_mean"]
    )

"""scripts/evaluate.py and scripts/watch.py on a freshly trained run (subprocesses, headless)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from perceptgym.agents.training import train_run
from tests.scripts.test_train_script import run


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    return train_run(
        "Taxi-v4",
        "q_learning",
        seed=0,
        runs_dir=tmp_path_factory.mktemp("runs"),
        overrides={"n_episodes": 600, "alpha": 1.0, "epsilon": 0.2, "eval_episodes": 5},
        progress=False,
        tensorboard=False,
    ).run_dir


def test_evaluate_prints_mean_std_success_and_writes_gif(taxi_run, tmp_path):
    gif = tmp_path / "taxi.gif"
    out = run("perceptgym.evaluate", str(taxi_run), "--episodes", "50", "--video", str(gif))
    assert "mean return" in out.stdout and "±" in out.stdout and "success rate" in out.stdout
    with Image.open(gif) as image:
        assert image.n_frames > 1


@pytest.mark.slow
def test_evaluate_checkpoint_file_and_mismatch(taxi_run):
    checkpoint = json.loads((taxi_run / "checkpoints" / "state.json").read_text())["checkpoint"]
    out = run("perceptgym.evaluate", str(taxi_run / "checkpoints" / checkpoint), "--episodes", "3")
    assert "mean return" in out.stdout
    out = run("perceptgym.evaluate", str(taxi_run), "--env", "FrozenLake-v1", check=False)
    assert out.returncode == 2 and "checkpoint was made for observation_space Discrete(500" in out.stderr


@pytest.mark.slow
def test_watch_records_a_gif_headless(taxi_run, tmp_path):
    gif = tmp_path / "watch.gif"
    out = run("perceptgym.watch", str(taxi_run), "--episodes", "2", "--record", str(gif))
    assert "episode 1: return" in out.stdout
    with Image.open(gif) as image:
        assert image.n_frames > 2


@pytest.mark.slow
def test_watch_in_a_window(taxi_run):
    pytest.importorskip("pygame")
    out = run("perceptgym.watch", str(taxi_run), "--episodes", "1")  # SDL dummy video driver: no real window
    assert "episode 0: return" in out.stdout


def test_plot_curves_with_seed_bands(tmp_path):
    from perceptgym.plot_curves import main

    for seed in range(2):
        train_run(
            "FrozenLake-v1",
            "q_learning",
            seed=seed,
            runs_dir=tmp_path / "runs",
            overrides={"n_episodes": 50, "eval_episodes": 0},
            progress=False,
            tensorboard=False,
        )
    out = tmp_path / "curves.png"
    assert main([*map(str, (tmp_path / "runs").iterdir()), "--out", str(out), "--smooth", "5"]) == 0
    with Image.open(out) as image:
        assert image.size[0] > 300
    assert main([str(tmp_path), "--out", str(out)]) == 2  # not a run directory

"""The experiments layer: YAML recipes with an experiment's budget, run directories, held-out evaluation, the ladder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptgym.agents.experiments.curves import group_curves, moving_average, read_progress
from perceptgym.agents.experiments.driving import (
    ENV_ID,
    evaluate_driving,
    evaluate_run,
    recipe,
    train_driving,
    with_budget,
)
from perceptgym.agents.experiments.ladder import RUNGS, LadderSettings, markdown_table, run_ladder
from perceptgym.agents.loop import evaluate
from perceptgym.agents.training import load_hyperparams
from perceptgym.envs.grid_driving import Action, GridDrivingEnv
from tests.conftest import StubSource


def test_budget_override_keeps_the_recipe_and_scales_the_decays():
    full = recipe("q_learning")
    assert full == load_hyperparams("q_learning", ENV_ID)
    quick = with_budget("q_learning", full, 20_000)
    # the YAML decays epsilon over a share of its episodes: a quick run decays over the same share of 20,000
    assert quick["epsilon_decay_episodes"] == round(full["epsilon_decay_episodes"] * 20_000 / full["n_episodes"])
    assert {k: v for k, v in quick.items() if k not in ("n_episodes", "epsilon_decay_episodes")} == {
        k: v for k, v in full.items() if k not in ("n_episodes", "epsilon_decay_episodes")
    }
    ppo = with_budget("ppo", recipe("ppo"), 5_000)  # SB3 schedules are fractions of the budget already
    assert ppo == {**recipe("ppo"), "n_timesteps": 5_000}
    with pytest.raises(ValueError, match="n_episodes=0"):
        with_budget("q_learning", full, 0)


def test_recipe_without_a_budget_names_the_file(tmp_path):
    (tmp_path / "q_learning.yml").write_text("default:\n  alpha: 0.3\n")
    with pytest.raises(ValueError, match=r"q_learning\.yml: no n_episodes or eval_episodes"):
        recipe("q_learning", hyperparams_dir=tmp_path)


def test_train_driving_uses_the_yaml_and_writes_a_run_directory(tmp_path):
    (tmp_path / "q_learning.yml").write_text(
        f"{ENV_ID}:\n  n_episodes: 1000\n  alpha: 0.3\n  epsilon: 1.0\n  epsilon_end: 0.1\n"
        "  epsilon_schedule: linear\n  epsilon_decay_episodes: 500\n  eval_episodes: 7\n"
    )
    run = train_driving(
        "q_learning", {"obs_mode": "symbolic"}, seed=0, runs_dir=tmp_path / "runs", budget=200, hyperparams_dir=tmp_path
    )
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["env_id"] == ENV_ID and config["agent"] == "q_learning"
    assert config["agent_config"]["alpha"] == 0.3  # from the YAML, not from the experiment
    assert config["agent_config"]["epsilon_decay_episodes"] == 100  # half the budget, as in the YAML
    assert config["run_settings"]["env_kwargs"] == {"obs_mode": "symbolic"}
    assert run.episodes == 200 and (run.run_dir / "model.npz").is_file()
    assert len(read_progress(run.run_dir)[0]) == 200


@pytest.fixture(scope="module")
def symbolic_runs(tmp_path_factory):
    """Three short symbolic runs: seed 0 twice and seed 1."""
    root = tmp_path_factory.mktemp("driving")
    return [
        train_driving("q_learning", {"obs_mode": "symbolic"}, seed=seed, runs_dir=root / name, budget=400).run_dir
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]


def test_same_seed_same_run_and_evaluation_different_seed_different_run(symbolic_runs):
    a, b, c = symbolic_runs
    q = [np.load(r / "model.npz")["q"] for r in symbolic_runs]
    np.testing.assert_array_equal(q[0], q[1])
    assert not np.array_equal(q[0], q[2])
    assert evaluate_run(a, "mnist-test", 30, seed=7) == evaluate_run(b, "mnist-test", 30, seed=7)
    np.testing.assert_array_equal(read_progress(a)[2], read_progress(b)[2])
    assert not np.array_equal(read_progress(a)[2], read_progress(c)[2])


def test_evaluate_and_watch_open_an_experiment_run(symbolic_runs, tmp_path, capsys):
    from perceptgym.evaluate import main as evaluate_main
    from perceptgym.watch import main as watch_main

    run_dir = symbolic_runs[0]
    row = evaluate_run(run_dir, "mnist-test", 40, seed=3)
    kwargs = '{"digit_source": "mnist-test"}'
    assert evaluate_main([str(run_dir), "--episodes", "40", "--seed", "3", "--env-kwargs", kwargs]) == 0
    out = capsys.readouterr().out
    # `perceptgym evaluate` on the run directory gives the experiment's numbers exactly
    assert f"mean return {row['mean_return']:.3f} ± {row['std_return']:.3f} over 40 episodes" in out
    assert f"success rate {row['success_rate']:.3f}" in out
    gif = tmp_path / "watch.gif"
    assert watch_main([str(run_dir), "--episodes", "1", "--record", str(gif), "--env-kwargs", kwargs]) == 0
    with Image.open(gif) as image:
        assert image.n_frames > 1


class Waits:
    def act(self, obs, *, explore=False):
        return int(Action.WAIT)


def test_evaluate_driving_is_bounded_by_the_time_limit_or_fails_clearly():
    """An episode that never ends is an error naming the limit, not a loop that runs for ever."""
    import gymnasium as gym

    endless = GridDrivingEnv(digit_source=StubSource(), n_cars=0, green_steps=0)  # waiting never ends a trip here
    with pytest.raises(RuntimeError, match="did not end within max_steps=30 steps"):
        evaluate_driving(Waits(), endless, 2, seed=0, max_steps=30)
    with pytest.raises(RuntimeError, match="max_steps=10000"):  # no time limit: loop.DEFAULT_STEP_LIMIT
        evaluate_driving(Waits(), endless, 1, seed=0)
    limited = gym.wrappers.TimeLimit(endless, 25)
    row = evaluate_driving(Waits(), limited, 3, seed=0)  # the env's own limit ends each episode: a timeout
    assert row["success_rate"] == row["wrong_stop_rate"] == row["collision_rate"] == 0.0
    assert row["mean_return"] == pytest.approx(evaluate(Waits(), limited, 3, seed=0).mean_return)


def test_curves_group_seeds_and_smooth(symbolic_runs):
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    curves = group_curves(symbolic_runs, "episode", 10)
    ((label, (grid, ys)),) = curves.items()
    assert label == "perceptgym-GridDriving-v0__q_learning" and ys.shape == (3, 400) and grid[-1] == 399
    with pytest.raises(ValueError, match="smooth=0"):
        group_curves(symbolic_runs, "episode", 0)


def test_ladder_settings_are_validated():
    gan_rung = "perceived (CNN), GAN digits"  # evaluates the agents the "perceived (CNN)" rung trains
    for kwargs, match in (
        ({"seeds": []}, "seeds"),
        ({"episodes": 0}, "episodes=0"),
        ({"pixels_steps": -1}, "pixels"),
        ({"rungs": []}, "choose among"),
        ({"rungs": [gan_rung]}, re.escape(f"{gan_rung!r} evaluates the agents of 'perceived (CNN)': add it")),
        ({"device": "tpu"}, "device='tpu': not a torch device"),
        ({"device": "mps"}, "device='mps': use cpu, cuda or cuda:N"),
        # SB3 would train on the CPU instead, quietly: a device torch does not see is refused
        ({"device": f"cuda:{torch.cuda.device_count()}"}, "CUDA device"),
        ({"device": "cuda", "sweep": True} if torch.cuda.is_available() else {"device": "cuda"}, "device='cuda'"),
    ):
        with pytest.raises(ValueError, match=match):
            LadderSettings(**kwargs)
    assert LadderSettings(rungs=[gan_rung, "perceived (CNN)"]).rungs == [gan_rung, "perceived (CNN)"]


def test_ladder_device_reaches_the_deep_rungs_only(tmp_path, monkeypatch):
    """--device cuda: each deep rung trains with device="cuda", the tabular rungs as before (no GPU needed here:
    torch is told it sees one, and training stops at the first call)."""
    import perceptgym.agents.experiments.ladder as ladder

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    calls = []

    class Stop(Exception):
        pass

    def record(agent, env_kwargs, *, overrides, **kwargs):
        calls.append((agent, overrides))
        raise Stop

    monkeypatch.setattr(ladder, "train_driving", record)
    for rung in ("symbolic", "pixels (DQN), pretrained CNN encoder"):
        with pytest.raises(Stop):
            run_ladder(LadderSettings(seeds=[0], rungs=[rung], device="cuda", out=tmp_path, progress=False))
    assert calls == [
        ("q_learning", {}),
        ("dqn", {"pretrained_encoder": "cnn", "device": "cuda"}),
    ]


def test_tiny_ladder_rows_are_run_directories(tmp_path):
    from perceptgym.supervised.perception import SHIPPED

    settings = LadderSettings(seeds=[0], episodes=300, pixels_steps=0, eval_episodes=20, out=tmp_path, progress=False)
    summary = run_ladder(settings)
    assert json.loads((tmp_path / "ladder.json").read_text()) == summary
    expected = [
        r.name for r in RUNGS if not r.deep and (r.eval_source != "gan" or SHIPPED["gan"].is_file())
    ]  # pixels_steps=0: no deep rung
    assert list(summary["rungs"]) == expected
    assert summary["args"]["episodes"] == 300 and summary["args"]["eval_episodes"] == 20
    keys = {"mean_return", "std_return", "success_rate", "wrong_stop_rate", "collision_rate", "seed", "train_seconds"}
    for rung in RUNGS:
        if rung.name not in summary["rungs"]:
            continue
        (row,) = summary["rungs"][rung.name]
        assert keys <= set(row) and row["seed"] == 0
        config = json.loads((Path(row["run_dir"]) / "config.json").read_text())
        assert config["run_settings"]["env_kwargs"] == rung.env_kwargs
        # each row is the held-out evaluation of its run directory
        again = evaluate_run(row["run_dir"], rung.eval_source, 20, seed=10_000)
        assert again == {k: row[k] for k in again}
    if "perceived (CNN), GAN digits" in summary["rungs"]:
        gan, cnn = summary["rungs"]["perceived (CNN), GAN digits"][0], summary["rungs"]["perceived (CNN)"][0]
        assert gan["run_dir"] == cnn["run_dir"] and gan["train_seconds"] == 0.0
    table = (tmp_path / "ladder.md").read_text()
    assert table.strip() == markdown_table(summary) and "| perceived (MLP) |" in table
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow(seconds=77)
def test_ladder_pixels_rung_is_a_ppo_run_directory(tmp_path):
    settings = LadderSettings(seeds=[0], episodes=50, pixels_steps=1024, eval_episodes=3, out=tmp_path, progress=False)
    summary = run_ladder(settings)
    (row,) = summary["rungs"]["pixels (PPO)"]
    assert (Path(row["run_dir"]) / "model.pt").is_file()
    config = json.loads((Path(row["run_dir"]) / "config.json").read_text())
    assert config["agent"] == "ppo" and config["run_settings"]["n_timesteps"] == 1024
    assert config["agent_config"]["n_steps"] == recipe("ppo")["n_steps"]  # the recipe is ppo.yml's
    again = evaluate_run(row["run_dir"], "mnist-test", 3, seed=10_000)
    assert again == {k: row[k] for k in again}

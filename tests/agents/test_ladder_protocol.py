"""The ladder as a benchmark protocol: bootstrap intervals over seeds and the normalised score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perceptgym.agents.env_factory import make_env
from perceptgym.agents.experiments.driving import ENV_ID, evaluate_driving
from perceptgym.agents.experiments.ladder import (
    PRETRAINED_STEPS,
    PROTOCOL_KEYS,
    TOP_DOWN_STEPS,
    LadderSettings,
    PlannerPolicy,
    UniformPolicy,
    budgets,
    markdown_table,
    normalised_score,
    reference_rows,
    run_ladder,
    with_score,
)
from perceptgym.agents.experiments.stats import bootstrap_ci
from perceptgym.agents.training import load_hyperparams

TINY_MAP = ["#####", "#0.1#", "#.#.#", "#...#", "#####"]


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 5), rng.normal(1.0, 1.0, 500)
    mean, low, high = bootstrap_ci(small)
    assert mean == pytest.approx(small.mean()) and low < mean < high
    _, low_l, high_l = bootstrap_ci(large)
    assert high_l - low_l < (high - low) / 3
    assert low_l < 1.0 < high_l
    assert bootstrap_ci(small) == bootstrap_ci(small)  # its own generator: reproducible
    assert bootstrap_ci([0.5]) == (0.5, 0.5, 0.5)
    for bad, match in (([], "non-empty"), ([1.0, np.nan], "finite")):
        with pytest.raises(ValueError, match=match):
            bootstrap_ci(bad)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.0)


def test_normalisation_puts_random_at_zero_and_value_iteration_at_one_on_a_small_map():
    kwargs = {"map": TINY_MAP, "n_cars": 0}  # no traffic: every start can reach its stop
    refs = reference_rows(40, seed=3, env_kwargs=kwargs)
    assert refs["value_iteration"]["success_rate"] == 1.0 and refs["random"]["success_rate"] < 0.6
    # The two reference policies run as if they were a rung's agents, on the same episodes, from their own
    # env (the dict observation: the episodes must not depend on the observation mode).
    env = make_env(ENV_ID, {**kwargs, "obs_mode": "symbolic"})
    try:
        _, q = env.unwrapped.value_iteration()
        planner_row = evaluate_driving(PlannerPolicy(q), env, 40, seed=3)
        random_row = evaluate_driving(UniformPolicy(env.action_space.n, 3), env, 40, seed=3)
        exact = env.unwrapped.optimal_return()
    finally:
        env.close()
    vi = refs["value_iteration"]
    assert abs(vi["mean_return"] - exact) < 3 * vi["std_return"] / np.sqrt(40) + 1e-9  # the measured optimum
    assert with_score(planner_row, refs)["normalised_score"] == pytest.approx(1.0)
    assert with_score(random_row, refs)["normalised_score"] == pytest.approx(0.0)
    # a policy between the two lands between 0 and 1
    halfway = (refs["random"]["mean_return"] + refs["value_iteration"]["mean_return"]) / 2
    assert with_score({"mean_return": halfway}, refs)["normalised_score"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must exceed"):
        normalised_score(0.0, 1.0, 1.0)


def test_reference_episodes_do_not_depend_on_the_observation_mode():
    refs_symbolic = reference_rows(20, seed=5)
    env = make_env(ENV_ID, {"obs_mode": "dict", "digit_source": "mnist-test"})
    try:
        random_dict = evaluate_driving(UniformPolicy(env.action_space.n, 5), env, 20, seed=5)
    finally:
        env.close()
    assert random_dict == refs_symbolic["random"]


def test_quick_settings_are_three_seeds_at_ci_budgets():
    quick = budgets(LadderSettings(quick=True))
    assert quick["symbolic"]["budget"] == 3_000 and quick["pixels (PPO)"]["budget"] == 2_048
    assert quick["pixels (PPO), pretrained CNN encoder"]["budget"] == 2_048
    assert quick["pixels (DQN, slot tables)"]["budget"] == 2_048
    assert quick["pixels (DQN), pretrained CNN encoder"]["budget"] == 2_048
    assert quick["top-down pixels (PPO)"]["budget"] == 0  # not part of --quick: one rollout on the raster is minutes
    assert {b["eval_episodes"] for b in quick.values()} == {50}
    assert LadderSettings(quick=True).seeds == [0, 1, 2]
    assert budgets(LadderSettings(quick=True, episodes=500))["perceived (CNN)"]["budget"] == 500  # a flag wins
    full = budgets(LadderSettings())  # each deep rung's own budget, else its agent's YAML recipe's
    assert full["pixels (PPO), pretrained CNN encoder"]["budget"] == PRETRAINED_STEPS
    assert full["top-down pixels (PPO)"]["budget"] == TOP_DOWN_STEPS
    assert full["pixels (PPO)"]["budget"] == load_hyperparams("ppo", "perceptgym/GridDriving-v0")["n_timesteps"]
    assert full["pixels (DQN, slot tables)"]["budget"] == load_hyperparams("dqn", ENV_ID)["n_timesteps"]
    assert full["pixels (DQN), pretrained CNN encoder"]["budget"] == load_hyperparams("dqn", ENV_ID)["n_timesteps"]


@pytest.mark.slow
def test_ladder_rows_carry_the_protocol(tmp_path):
    settings = LadderSettings(seeds=[0, 1, 2], episodes=300, pixels_steps=0, eval_episodes=20, out=tmp_path)
    settings.progress = False
    summary = run_ladder(settings)
    assert json.loads((tmp_path / "ladder.json").read_text()) == summary
    for name, rows in summary["rungs"].items():
        assert [r["seed"] for r in rows] == [0, 1, 2]
        for row in rows:
            score = (row["mean_return"] - row["random_return"]) / (row["value_iteration_return"] - row["random_return"])
            assert row["normalised_score"] == pytest.approx(score)
            if "GAN" not in name:
                assert row["train_env_steps"] > 300  # episodes take several steps each
        stats = summary["protocol"][name]
        assert set(stats) == set(PROTOCOL_KEYS)
        for key in PROTOCOL_KEYS:
            values = [r[key] for r in rows]
            assert stats[key]["mean"] == pytest.approx(np.mean(values))
            eps = 1e-9 * (1 + max(map(abs, values)))  # a mean of equal floats may round by an ulp
            low, mean, high = stats[key]["low"], stats[key]["mean"], stats[key]["high"]
            assert min(values) - eps <= low <= mean + eps and mean - eps <= high <= max(values) + eps
    # the same evaluation episodes for every rung of a seed: the same reference returns
    for seed in range(3):
        refs = {
            (r["random_return"], r["value_iteration_return"])
            for rows in summary["rungs"].values()
            for r in [rows[seed]]
        }
        assert len(refs) == 1
    table = (tmp_path / "ladder.md").read_text().strip()
    assert table == markdown_table(summary)
    assert table.splitlines()[0].startswith("| rung | score | success rate | wrong-stop rate |")
    symbolic = summary["protocol"]["symbolic"]["success_rate"]
    assert (
        "| symbolic | " in table and f"{symbolic['mean']:.3f} [{symbolic['low']:.3f}, {symbolic['high']:.3f}]" in table
    )


def test_the_top_down_rung_trains_a_cnn_on_the_raster_and_is_evaluated(tmp_path):
    """The top-down rung is not part of --quick (minutes per rollout): its path at a tiny size."""
    from perceptgym.agents.experiments.driving import evaluate_run, train_driving
    from perceptgym.agents.experiments.ladder import RUNGS

    rung = next(r for r in RUNGS if r.name == "top-down pixels (PPO)")
    small = {**rung.overrides, "n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1}
    run = train_driving(rung.agent, rung.env_kwargs, seed=0, runs_dir=tmp_path, budget=32, overrides=small)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["run_settings"]["env_kwargs"]["obs_mode"] == "pixels"
    assert config["agent_config"]["features_extractor"] == "default"  # SB3's NatureCNN over 154x126x3
    row = evaluate_run(run.run_dir, rung.eval_source, 2, seed=0)
    assert 0.0 <= row["success_rate"] <= 1.0 and np.isfinite(row["mean_return"])

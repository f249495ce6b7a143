"""Training runs: run directory contents, Ctrl-C then resume, hyperparameter files, user envs."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import yaml

import perceptgym  # noqa: F401  (registers the perceptgym ids the YAML files name)
from perceptgym.agents.env_factory import build_env
from perceptgym.agents.registry import agent_entry, agent_names, load_agent, make_agent
from perceptgym.agents.training import (
    HYPERPARAMS_DIR,
    load_hyperparams,
    run_hyperparams,
    split_hyperparams,
    train_run,
)

FAST = {"progress": False, "tensorboard": False}


def read_progress(run_dir):
    with (run_dir / "progress.csv").open() as f:
        return list(csv.DictReader(f))


class Interrupt:
    """Raises KeyboardInterrupt (what Ctrl-C raises) after the given episode."""

    def __init__(self, after: int):
        self.after = after

    def __call__(self, episode):
        if episode.index + 1 == self.after:
            raise KeyboardInterrupt


def test_tabular_interrupt_then_resume_equals_uninterrupted_run(tmp_path):
    overrides = {"n_episodes": 60, "eval_episodes": 5, "epsilon": 0.3, "checkpoint_every": 25}
    whole = train_run("Taxi-v4", "sarsa", seed=3, overrides=overrides, runs_dir=tmp_path / "a", **FAST)
    cut = train_run(
        "Taxi-v4", "sarsa", seed=3, overrides=overrides, runs_dir=tmp_path / "b", on_episode=Interrupt(after=23), **FAST
    )
    assert cut.interrupted and cut.episodes == 23
    state = json.loads((cut.run_dir / "checkpoints" / "state.json").read_text())
    assert state["episode"] == 23 and not state["finished"]
    assert not (cut.run_dir / "model.npz").exists()
    resumed = train_run(resume=cut.run_dir, **FAST)
    assert not resumed.interrupted and resumed.episodes == 60
    a = load_agent(whole.run_dir / "model.npz")
    b = load_agent(resumed.run_dir / "model.npz")
    np.testing.assert_array_equal(a.q, b.q)
    assert read_progress(whole.run_dir) == read_progress(resumed.run_dir)
    assert resumed.eval.mean_return == whole.eval.mean_return


def test_run_dir_contents(tmp_path):
    result = train_run(
        "FrozenLake-v1",
        "q_learning",
        seed=0,
        runs_dir=tmp_path,
        progress=False,
        overrides={"n_episodes": 30, "eval_episodes": 10, "checkpoint_every": 10},
    )
    run_dir = result.run_dir
    assert run_dir.name.startswith("FrozenLake-v1__q_learning__0__")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "FrozenLake-v1" and config["agent_config"]["alpha"] == 0.1
    assert config["hyperparams"]["n_episodes"] == 30  # the override wins over the YAML
    rows = read_progress(run_dir)
    assert [int(r["episode"]) for r in rows] == list(range(30))
    assert int(rows[-1]["global_step"]) == result.global_step
    assert list((run_dir / "tb").iterdir()), "no TensorBoard events"
    assert (run_dir / "model.npz").is_file() and (run_dir / "eval.json").is_file()


def test_train_env_kwargs_shape_training_only(tmp_path):
    """A shaping term set for training (train_env_kwargs) is not the task the run is evaluated and replayed on."""
    from perceptgym.agents.playback import load_run

    overrides = {"n_episodes": 20, "eval_episodes": 5, "train_env_kwargs": {"time_cost": 0.5}}
    result = train_run(
        "perceptgym/GridDriving-v0", "q_learning", seed=0, runs_dir=tmp_path, overrides=overrides, **FAST
    )
    for row in read_progress(result.run_dir):  # every training step cost 0.5
        assert float(row["return"]) <= 1.0 - 0.5 * int(row["length"]) + 1e-9
    run = load_run(result.run_dir)
    assert run.env.unwrapped.params.time_cost == 0.01  # the env's own default, as env_kwargs say
    run.env.close()
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["run_settings"]["train_env_kwargs"] == {"time_cost": 0.5}
    assert result.eval.mean_return > -1.5  # evaluated without the 0.5 per step (at most 200 steps x 0.01)
    with pytest.raises(ValueError, match="train_env_kwargs"):
        train_run(
            "FrozenLake-v1", "q_learning", seed=0, runs_dir=tmp_path, overrides={"train_env_kwargs": {1: 2}}, **FAST
        )


def test_sb3_interrupt_then_resume(tmp_path):
    overrides = {"n_timesteps": 600, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "eval_episodes": 2}
    cut = train_run(
        "CartPole-v1", "ppo", seed=0, overrides=overrides, runs_dir=tmp_path, on_episode=Interrupt(after=3), **FAST
    )
    assert cut.interrupted and 0 < cut.global_step < 600
    resumed = train_run(resume=cut.run_dir, **FAST)
    assert not resumed.interrupted and resumed.global_step >= 600
    assert (resumed.run_dir / "model.pt").is_file()
    episodes = [int(r["episode"]) for r in read_progress(resumed.run_dir)]
    assert episodes == list(range(len(episodes)))


def test_yaml_default_then_env_entry(tmp_path):
    (tmp_path / "q_learning.yml").write_text("default:\n  n_episodes: 7\n  alpha: 0.2\nMyEnv-v0:\n  alpha: 0.7\n")
    assert load_hyperparams("q_learning", "MyEnv-v0", tmp_path) == {"n_episodes": 7, "alpha": 0.7}
    assert load_hyperparams("q_learning", "Other-v0", tmp_path) == {"n_episodes": 7, "alpha": 0.2}
    assert load_hyperparams("sarsa", "Other-v0", tmp_path) == {}


def test_run_hyperparams_recipe_then_overrides_then_env_kwargs(tmp_path):
    """The one place a run's hyperparameters are put together: train_run, train_driving and sweep trials."""
    (tmp_path / "q_learning.yml").write_text(
        "default:\n  n_episodes: 7\n  alpha: 0.2\n  env_kwargs: {n_cars: 2, obs_mode: symbolic}\n"
    )
    assert run_hyperparams("q_learning", "MyEnv-v0", {"alpha": 0.5}, hyperparams_dir=tmp_path) == {
        "n_episodes": 7,
        "alpha": 0.5,
        "env_kwargs": {"n_cars": 2, "obs_mode": "symbolic"},
    }
    merged = run_hyperparams(
        "q_learning", "MyEnv-v0", {"n_episodes": 3}, env_kwargs={"obs_mode": "pixels"}, hyperparams_dir=tmp_path
    )
    assert merged == {"n_episodes": 3, "alpha": 0.2, "env_kwargs": {"n_cars": 2, "obs_mode": "pixels"}}
    replaced = run_hyperparams("q_learning", "MyEnv-v0", {"env_kwargs": {"n_cars": 0}}, hyperparams_dir=tmp_path)
    assert replaced["env_kwargs"] == {"n_cars": 0}  # an env_kwargs override replaces the mapping
    with pytest.raises(ValueError, match="overrides must be a mapping"):
        run_hyperparams("q_learning", "MyEnv-v0", [("alpha", 1)])
    # resuming: the run's saved hyperparameters, not the YAML's, under the overrides
    run = train_run(
        "FrozenLake-v1",
        "q_learning",
        overrides={"n_episodes": 5, "alpha": 0.3, "eval_episodes": 0},
        env_kwargs={"is_slippery": False},
        runs_dir=tmp_path / "runs",
        progress=False,
        tensorboard=False,
    ).run_dir
    saved = json.loads((run / "config.json").read_text())["hyperparams"]
    assert saved["env_kwargs"] == {"is_slippery": False} and saved["alpha"] == 0.3
    resumed = run_hyperparams("q_learning", "FrozenLake-v1", {"n_episodes": 9}, resume=run)
    assert resumed == {**saved, "n_episodes": 9}
    with pytest.raises(ValueError, match=r"no config\.json"):
        run_hyperparams("q_learning", "FrozenLake-v1", resume=tmp_path)


def _yaml_entries() -> list[tuple[str, str]]:
    entries = []
    for path in sorted(HYPERPARAMS_DIR.glob("*.yml")):
        entries += [(path.stem, key) for key in yaml.safe_load(path.read_text())]
    return entries


@pytest.mark.parametrize("agent, env_id", _yaml_entries(), ids=lambda v: str(v))
def test_every_shipped_hyperparameter_entry_builds_its_env_and_agent(agent, env_id):
    """Each entry of each YAML file: a registered agent, a registered env id, a valid config, and the env and
    agent it describes can be built (so a typo in an env kwarg or a setting fails here, not in a user's run)."""
    assert agent in agent_names(), f"{agent}.yml names no registered agent"
    run, config = split_hyperparams(agent, load_hyperparams(agent, env_id))
    if env_id == "default":
        return
    gym.spec(env_id)  # registered (perceptgym ids included)
    env = build_env(env_id, run.env_settings(), tabular=agent_entry(agent).kind == "tabular")
    try:
        make_agent(agent, env.observation_space, env.action_space, config, seed=0)
    finally:
        env.close()


def test_bad_hyperparameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"bad hyperparameters for 'q_learning'.*'alphaa'.*run settings"):
        split_hyperparams("q_learning", {"alphaa": 1})


def test_user_env_as_module_class(tmp_path):
    result = train_run(
        "perceptgym.examples.my_env:CorridorEnv",
        "q_learning",
        seed=0,
        runs_dir=tmp_path,
        overrides={
            "n_episodes": 100,
            "env_kwargs": {"length": 6},
            "max_episode_steps": 50,
            "alpha": 0.5,
            "epsilon": 0.2,
            "eval_episodes": 10,
        },
        **FAST,
    )
    assert result.eval.success_rate == 1.0
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        train_run("no_such_module:MyEnv", "q_learning", runs_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match=r"not a gymnasium\.Env subclass"):
        train_run("json:JSONDecoder", "q_learning", runs_dir=tmp_path, **FAST)

"""scripts/train.py end to end in a subprocess with tiny budgets (as cleanrl tests its scripts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def run_dir_from(output: str) -> Path:
    return Path(next(line for line in output.splitlines() if line.startswith("run: "))[5:])


def test_train_tabular_then_extend_with_resume(tmp_path):
    out = run(
        "perceptgym.train",
        "--env",
        "FrozenLake-v1",
        "--agent",
        "q_learning",
        "--seed",
        "1",
        "--set",
        "n_episodes=40",
        "eval_episodes=5",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
        "--no-tensorboard",
    )
    run_dir = run_dir_from(out.stdout)
    assert "trained 40 episodes" in out.stdout and "greedy evaluation: return" in out.stdout
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 1
    out = run(
        "perceptgym.train", "--resume", str(run_dir), "--set", "n_episodes=60", "--no-progress", "--no-tensorboard"
    )
    assert "trained 60 episodes" in out.stdout


@pytest.mark.slow
def test_train_sb3_tiny(tmp_path):
    out = run(
        "perceptgym.train",
        "--env",
        "CartPole-v1",
        "--agent",
        "a2c",
        "--set",
        "n_timesteps=200",
        "n_envs=2",
        "eval_episodes=2",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
    )
    run_dir = run_dir_from(out.stdout)
    assert (run_dir / "model.pt").is_file() and not (run_dir / "model.zip").exists()
    assert (run_dir / "sb3" / "progress.csv").is_file()


@pytest.mark.slow
def test_train_user_env_and_user_agent(tmp_path):
    out = run(
        "perceptgym.train",
        "--plugin",
        "perceptgym.examples.my_agent",
        "--agent",
        "monte_carlo",
        "--env",
        "perceptgym.examples.my_env:CorridorEnv",
        "--set",
        "n_episodes=300",
        "max_episode_steps=100",
        "epsilon=0.2",
        "eval_episodes=5",
        "--runs-dir",
        str(tmp_path),
        "--no-progress",
        "--no-tensorboard",
    )
    assert "success rate 1.000" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "FrozenLake-v1", "--agent", "q_learnin"], "unknown agent 'q_learnin'"),
        pytest.param(
            ["--env", "FrozenLake-v1", "--agent", "q_learning", "--set", "alpha=2"],
            "alpha=2 is out of range",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--env", "FrozenLake-v1", "--agent", "q_learning", "--set", "alpah=0.1"],
            "valid settings",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--env", "NoSuchEnv-v0", "--agent", "q_learning"], "cannot make env 'NoSuchEnv-v0'", marks=pytest.mark.slow
        ),
        pytest.param(["--agent", "q_learning"], "give --env and --agent", marks=pytest.mark.slow),
    ],
)
def test_train_errors_are_clear(tmp_path, args, message):
    out = run("perceptgym.train", *args, "--runs-dir", str(tmp_path), "--no-progress", check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.slow
def test_list_agents():
    out = run("perceptgym.train", "--list-agents")
    assert {"q_learning", "ppo", "dqn"} <= set(out.stdout.split())

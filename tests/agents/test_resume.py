"""Nothing is lost: runs interrupted by a real Ctrl-C (SIGINT) or killed (SIGKILL) resume to the same result.

Each test runs the program in a subprocess, signals it while it trains (most of the time is spent inside
episodes, so SIGINT lands mid-episode), resumes it, and compares the result with an uninterrupted run of the
same settings: the same Q table (tabular), the same arrays (bandit), the same network (classifier). SB3 runs
cannot resume mid-rollout exactly (the envs restart their episodes); what is guaranteed and tested there is
that the checkpoint holds the model as of its last completed update, exactly, and that no episode is logged
twice.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.agents.registry import load_agent
from perceptgym.agents.training import train_run

FAST = {"progress": False, "tensorboard": False}
TAXI = {"n_episodes": 3000, "eval_episodes": 5, "checkpoint_every": 200}
BANDIT = {"n_episodes": 4000, "eval_episodes": 5, "checkpoint_every": 250, "env_kwargs": {"block_size": 256}}
PPO = {"n_timesteps": 12_000, "n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1, "eval_episodes": 2}
PPO |= {"learning_rate": 0.001, "clip_range": 0.2}  # constant: the YAML's linear decays depend on n_timesteps
ROLLOUT = PPO["n_envs"] * PPO["n_steps"]


def program(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def train_program(runs: Path, *args: str, tensorboard: bool = False) -> subprocess.Popen:
    flags = ["--runs-dir", str(runs), "--no-progress"] + ([] if tensorboard else ["--no-tensorboard"])
    return program("perceptgym.train", *args, *flags, cwd=runs.parent)


def overrides(settings: dict) -> list[str]:
    return ["--set", *(f"{k}={json.dumps(v)}" for k, v in settings.items())]


def wait_for_checkpoint(runs: Path, proc: subprocess.Popen, key: str, at_least: int, timeout: float = 240) -> Path:
    """The run directory, once its state.json records ``key >= at_least`` (the run is then well under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state_file in runs.glob("*/checkpoints/state.json"):
            state = json.loads(state_file.read_text())  # written atomically: never half a file
            if state[key] >= at_least:
                return state_file.parents[1]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it was signalled:\n{proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no checkpoint with {key} >= {at_least} after {timeout} s")


def signal_and_wait(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def progress_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "progress.csv").open() as f:
        return list(csv.DictReader(f))


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def tensorboard_steps(run_dir: Path, tag: str = "charts/episodic_return") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


# ---- tabular --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def taxi_whole(tmp_path_factory):
    return train_run(
        "Taxi-v4", "q_learning", seed=4, overrides=TAXI, runs_dir=tmp_path_factory.mktemp("whole"), **FAST
    ).run_dir


def test_tabular_sigint_mid_episode_then_resume_ends_with_the_same_q_table(tmp_path, taxi_whole):
    runs = tmp_path / "runs"
    proc = train_program(runs, "--env", "Taxi-v4", "--agent", "q_learning", "--seed", "4", *overrides(TAXI))
    run_dir = wait_for_checkpoint(runs, proc, "episode", 200)
    code, err = signal_and_wait(proc, signal.SIGINT)
    assert code == 130 and "interrupted: checkpoint saved" in err, err
    assert "Traceback" not in err
    state = state_of(run_dir)
    assert not state["finished"] and 200 <= state["episode"] < TAXI["n_episodes"]
    assert len(progress_rows(run_dir)) == state["episode"]  # the interrupted episode was finished, then saved
    finish(train_program(runs, "--resume", str(run_dir)))
    np.testing.assert_array_equal(load_agent(run_dir / "model.npz").q, load_agent(taxi_whole / "model.npz").q)
    assert progress_rows(run_dir) == progress_rows(taxi_whole)


@pytest.mark.slow
def test_tabular_sigkill_then_resume_cuts_the_logs_back_and_ends_the_same(tmp_path, taxi_whole):
    runs = tmp_path / "runs"
    proc = train_program(
        runs, "--env", "Taxi-v4", "--agent", "q_learning", "--seed", "4", *overrides(TAXI), tensorboard=True
    )
    run_dir = wait_for_checkpoint(runs, proc, "episode", 600)
    time.sleep(0.3)  # more episodes are logged after the checkpoint: the resumed run must not repeat them
    code, _ = signal_and_wait(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    finish(train_program(runs, "--resume", str(run_dir), tensorboard=True))
    np.testing.assert_array_equal(load_agent(run_dir / "model.npz").q, load_agent(taxi_whole / "model.npz").q)
    assert progress_rows(run_dir) == progress_rows(taxi_whole)  # each episode once, as in the whole run
    steps = tensorboard_steps(run_dir)
    assert steps == sorted(set(steps)) and steps[-1] == int(progress_rows(taxi_whole)[-1]["global_step"])


class InterruptMidEpisode(gym.Wrapper):
    """Raises KeyboardInterrupt at the ``at``-th step (counted over all instances), as a second Ctrl-C would."""

    at, steps = 0, 0

    def step(self, action):
        InterruptMidEpisode.steps += 1
        if InterruptMidEpisode.steps == InterruptMidEpisode.at:
            raise KeyboardInterrupt
        return self.env.step(action)


def test_a_second_ctrl_c_mid_episode_keeps_the_last_checkpoint_and_resume_is_exact(tmp_path, taxi_whole):
    """A hard interrupt inside an episode: no checkpoint of the half-played episode, the previous one stands."""
    InterruptMidEpisode.at, InterruptMidEpisode.steps = 150_000, 0  # deep inside an episode, between checkpoints
    wrapped = {**TAXI, "env_wrappers": [f"{__name__}:InterruptMidEpisode"]}
    cut = train_run("Taxi-v4", "q_learning", seed=4, overrides=wrapped, runs_dir=tmp_path, **FAST)
    assert cut.interrupted
    state = state_of(cut.run_dir)
    assert state["episode"] % TAXI["checkpoint_every"] == 0 and state["global_step"] < 150_000
    assert len(progress_rows(cut.run_dir)) > state["episode"]  # rows after the checkpoint: cut back on resume
    InterruptMidEpisode.at = 0  # no more interrupts
    resumed = train_run(resume=cut.run_dir, trust_plugins=True, **FAST)  # the wrapper's module is not perceptgym's
    np.testing.assert_array_equal(load_agent(resumed.run_dir / "model.npz").q, load_agent(taxi_whole / "model.npz").q)
    assert progress_rows(resumed.run_dir) == progress_rows(taxi_whole)


# ---- bandit ---------------------------------------------------------------------------------------------------
BANDIT_ARGS = ("--env", "perceptgym/DigitBandit-v0", "--agent", "linucb", "--seed", "2", *overrides(BANDIT))


@pytest.fixture(scope="module")
def bandit_whole(tmp_path_factory):
    return train_run(
        "perceptgym/DigitBandit-v0",
        "linucb",
        seed=2,
        overrides=BANDIT,
        runs_dir=tmp_path_factory.mktemp("whole"),
        **FAST,
    ).run_dir


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_bandit_interrupted_then_resumed_sees_the_same_digits_and_ends_the_same(tmp_path, bandit_whole, sig):
    runs = tmp_path / "runs"
    proc = train_program(runs, *BANDIT_ARGS)
    run_dir = wait_for_checkpoint(runs, proc, "episode", 500)  # mid-block: the env's state is in the checkpoint
    code, err = signal_and_wait(proc, sig)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    finish(train_program(runs, "--resume", str(run_dir)))
    a, b = load_agent(run_dir / "model.npz"), load_agent(bandit_whole / "model.npz")
    assert a.t == b.t == BANDIT["n_episodes"]
    assert_same_arrays(a._state(), b._state())
    assert progress_rows(run_dir) == progress_rows(bandit_whole)


# ---- SB3 ------------------------------------------------------------------------------------------------------
def sb3_weights(path: Path) -> dict:
    return {k: v.numpy() for k, v in load_agent(path).model.policy.state_dict().items()}


@pytest.mark.slow
def test_sb3_sigint_saves_the_model_of_its_last_update_exactly_and_resume_logs_each_episode_once(tmp_path):
    runs = tmp_path / "runs"
    every = {**PPO, "checkpoint_every": 500}  # checkpoints do not change what is learned
    proc = train_program(runs, "--env", "CartPole-v1", "--agent", "ppo", "--seed", "1", *overrides(every))
    run_dir = wait_for_checkpoint(runs, proc, "global_step", 1000)
    code, err = signal_and_wait(proc, signal.SIGINT)
    assert code == 130 and "interrupted: checkpoint saved" in err, err
    state = state_of(run_dir)
    assert 0 < state["global_step"] < PPO["n_timesteps"] and not state["finished"]
    updates = (state["global_step"] - 1) // ROLLOUT  # the rollout cut short by the interrupt is not trained on
    assert updates >= 1
    # an uninterrupted run of exactly that many updates has the same network, bit for bit
    same_updates = train_run(
        "CartPole-v1",
        "ppo",
        seed=1,
        overrides={**PPO, "n_timesteps": updates * ROLLOUT, "eval_episodes": 0},
        runs_dir=tmp_path / "whole",
        **FAST,
    )
    assert_same_arrays(
        sb3_weights(run_dir / "checkpoints" / state["checkpoint"]), sb3_weights(same_updates.run_dir / "model.pt")
    )
    finish(train_program(runs, "--resume", str(run_dir)))
    rows = progress_rows(run_dir)
    assert [int(r["episode"]) for r in rows] == list(range(len(rows)))
    steps = [int(r["global_step"]) for r in rows]
    assert steps == sorted(steps) and state_of(run_dir)["global_step"] >= PPO["n_timesteps"]


@pytest.mark.slow
def test_sb3_sigkill_then_resume_logs_each_episode_once(tmp_path):
    runs = tmp_path / "runs"
    proc = train_program(
        runs, "--env", "CartPole-v1", "--agent", "ppo", *overrides({**PPO, "checkpoint_every": 2000}), tensorboard=True
    )
    run_dir = wait_for_checkpoint(runs, proc, "global_step", 4000)
    time.sleep(1.0)
    assert signal_and_wait(proc, signal.SIGKILL)[0] == -signal.SIGKILL
    at_kill = state_of(run_dir)
    finish(train_program(runs, "--resume", str(run_dir), tensorboard=True))
    rows = progress_rows(run_dir)
    assert [int(r["episode"]) for r in rows] == list(range(len(rows)))
    steps = [int(r["global_step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] >= at_kill["global_step"]
    board = tensorboard_steps(run_dir)
    assert board == sorted(set(board))
    assert (run_dir / "model.pt").is_file() and (
        run_dir / "sb3" / f"progress.resumed-at-{at_kill['global_step']}.csv"
    ).is_file()


# ---- classifier -----------------------------------------------------------------------------------------------
CLASSIFIER = ("--recipe", "mlp", "--epochs", "2", "--no-progress", "--checkpoint-seconds", "0.3")


def classifier_weights(path: Path) -> dict:
    from perceptgym.supervised.classifier import load_classifier

    return {k: v.numpy() for k, v in load_classifier(path).model.state_dict().items()}


@pytest.fixture(scope="module")
def classifier_whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "model.pt"
    proc = program("perceptgym.train_classifier", *CLASSIFIER, "--out", str(out), cwd=out.parent)
    finish(proc)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_classifier_interrupted_then_rerun_ends_with_the_same_network(tmp_path, classifier_whole, sig):
    out = tmp_path / "model.pt"
    resume = tmp_path / "model.resume.pt"
    proc = program("perceptgym.train_classifier", *CLASSIFIER, "--out", str(out), cwd=tmp_path)
    deadline = time.monotonic() + 240

    def saved_at() -> int | None:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        try:
            return resume.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    while (first := saved_at()) is None:  # the first timed save: training is under way
        time.sleep(0.02)
    while sig == signal.SIGKILL and saved_at() == first:  # kill it after a later save
        time.sleep(0.02)
    code, err = signal_and_wait(proc, sig)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    assert resume.is_file() and not out.exists()
    if sig == signal.SIGINT:
        assert f"training state saved in {resume}" in err
    rerun = finish(program("perceptgym.train_classifier", *CLASSIFIER, "--out", str(out), cwd=tmp_path))
    assert f"resuming from {resume}" in rerun and not resume.exists()
    assert_same_arrays(classifier_weights(out), classifier_weights(classifier_whole))

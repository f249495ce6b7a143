"""The shipped deep agents (PPO and DQN on GridDriving's dict observation, reading from reward): each loads,
refuses other spaces, and reproduces the success its evaluation.json reports."""

from __future__ import annotations

import json
import math

import pytest

from perceptgym.agents.base import SpaceMismatchError
from perceptgym.agents.experiments.driving import evaluate_driving
from perceptgym.agents.playback import SHIPPED_AGENTS, load_run

FOLDERS = pytest.mark.parametrize("folder", list(SHIPPED_AGENTS.values()), ids=list(SHIPPED_AGENTS))


@FOLDERS
def test_shipped_agent_is_small_and_says_how_it_was_made(folder):
    report = json.loads((folder / "evaluation.json").read_text())
    assert (folder / "model.pt").stat().st_size < 1_000_000
    assert report["episodes"] >= 1000 and report["digit_source"] == "mnist-test"
    assert all(command.startswith("perceptgym ") for command in report["commands"])


@pytest.mark.slow
@FOLDERS
def test_shipped_agent_reproduces_its_reported_success(folder):
    report = json.loads((folder / "evaluation.json").read_text())
    run = load_run(folder, env_kwargs={"digit_source": "mnist-test"})
    try:
        assert run.env.unwrapped.params.progress == 0.0  # evaluated on the default rewards
        result = evaluate_driving(run.agent, run.env, 200, seed=12_345)  # other episodes than the report's
    finally:
        run.env.close()
    p = report["success_rate"]
    assert abs(result["success_rate"] - p) <= 3 * math.sqrt(p * (1 - p) / 200) + 1e-9  # within sampling error


@FOLDERS
def test_shipped_agent_refuses_other_spaces(folder):
    with pytest.raises(SpaceMismatchError):
        load_run(folder, env_kwargs={"obs_mode": "symbolic"})

"""scripts/evaluate.py and scripts/watch.py on a freshly trained run (subprocesses, headless)."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from perceptgym.agents.training import train_run
from tests.scripts.test_train_script import run


def q_learning_run(tmp_path_factory, env_id: str, **overrides):
    runs_dir = tmp_path_factory.mktemp("runs")
    return train_run(env_id, "q_learning", overrides=overrides, runs_dir=runs_dir, progress=False, tensorboard=False)


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    return q_learning_run(tmp_path_factory, "Taxi-v4", n_episodes=600, alpha=1.0, epsilon=0.2, eval_episodes=5).run_dir


def test_evaluate_prints_mean_std_success_and_writes_gif(taxi_run, tmp_path):
    gif = tmp_path / "taxi.gif"
    out = run("perceptgym.evaluate", str(taxi_run), "--episodes", "50", "--video", str(gif))
    assert "mean return" in out.stdout and "±" in out.stdout and "success rate" in out.stdout
    with Image.open(gif) as image:
        assert image.n_frames > 1


def test_evaluate_json_is_the_only_stdout(taxi_run, tmp_path):
    """``--json``: stdout is one JSON object (scripts read it), equal to the evaluation the library gives."""
    from perceptgym.agents.loop import evaluate
    from perceptgym.agents.playback import load_run

    gif = tmp_path / "taxi.gif"
    out = run("perceptgym.evaluate", str(taxi_run), "--episodes", "20", "--seed", "3", "--json", "--video", str(gif))
    result = json.loads(out.stdout)  # the whole of stdout: nothing printed before or after it
    assert out.stdout.count("\n") == 1
    loaded = load_run(taxi_run)
    expected = evaluate(loaded.agent, loaded.env, 20, seed=3)
    assert result == {
        "env_id": "Taxi-v4",
        "checkpoint": str(taxi_run / "model.npz"),
        "env_kwargs": {},
        "digit_source": None,  # Taxi shows no handwriting
        "episodes": 20,
        "seed": 3,
        "mean_return": expected.mean_return,
        "std_return": expected.std_return,
        "success_rate": expected.success_rate,
        "mean_length": expected.mean_length,
        "video": str(gif),
        "video_frames": result["video_frames"],
    }
    with Image.open(gif) as image:
        assert result["video_frames"] > image.n_frames > 1  # the held last frame is one GIF frame


@pytest.fixture(scope="module")
def perceived_run(tmp_path_factory):
    """GridDriving read by the CNN: what the agent sees depends on the handwriting."""
    overrides = {"n_episodes": 300, "eval_episodes": 0, "env_kwargs": {"obs_mode": "perceived"}}
    return q_learning_run(tmp_path_factory, "perceptgym/GridDriving-v0", **overrides).run_dir


def test_digit_source_selects_the_handwriting_and_wins_over_env_kwargs(perceived_run, capsys):
    from perceptgym.agents.experiments.driving import evaluate_run
    from perceptgym.evaluate import main

    def evaluated(*flags: str) -> dict:
        assert main([str(perceived_run), "--episodes", "30", "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    default = evaluated()
    assert default["digit_source"] == "mnist-train" and default["env_kwargs"] == {"obs_mode": "perceived"}
    test = evaluated("--digit-source", "mnist-test")
    assert test["digit_source"] == "mnist-test"
    assert test["env_kwargs"] == {"obs_mode": "perceived", "digit_source": "mnist-test"}
    both = evaluated("--env-kwargs", '{"digit_source": "mnist-train", "n_cars": 1}', "--digit-source", "mnist-test")
    assert both["digit_source"] == "mnist-test"  # --digit-source wins; the other keys of --env-kwargs stay
    assert both["env_kwargs"] == {**test["env_kwargs"], "n_cars": 1}
    for row, source in ((default, "mnist-train"), (test, "mnist-test")):  # the library's evaluation on that source
        expected = evaluate_run(perceived_run, source, 30, seed=0)
        assert (row["success_rate"], row["mean_return"]) == (expected["success_rate"], expected["mean_return"])


def test_evaluate_and_watch_help_name_every_setting(capsys):
    """Both programs share one settings dataclass; --help still explains every flag, shared or their own."""
    from perceptgym import evaluate, watch

    shared = {
        "PATH": "a run directory, or a checkpoint file",
        "--env": "play on this env instead of the run's",
        "--env-kwargs": "JSON object replacing keys of the run's env_kwargs",
        "--digit-source": "mnist-train, mnist-test, gan or gan:<checkpoint>; default: the run's own. Wins over",
        "--window-size": "WIDTH HEIGHT [px] the picture (window or video frames) fits in",
        "--end-hold": "seconds the last frame of each episode stays on screen and in a video",
        "--trust-checkpoint": "SB3 unpickles it, which runs any code the file holds",
        "--trust-plugins": "import the modules the run's config.json names",
    }
    own = {
        evaluate: {"--episodes": "greedy evaluation episodes", "--json": "one JSON object on stdout", "--video": ""},
        watch: {"--episodes": "episodes to play", "--record": "instead of opening a window", "--fps": ""},
    }
    for program in (evaluate, watch):
        assert program.main(["--help"]) == 0
        text = " ".join(capsys.readouterr().out.replace("│", " ").split())
        for flag, words in {**shared, **own[program]}.items():
            assert re.search(rf" {re.escape(flag)}[ ,]", text) and words in text, (program.__name__, flag)


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

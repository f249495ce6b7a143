"""Bad input to every program: a clear message naming the setting or file, exit code 2, no traceback, nothing on disk.

The programs run in-process through ``perceptgym.cli.main`` (the ``perceptgym`` command), in an empty working
directory whose contents are compared before and after; a few run as real subprocesses. Every error is one line,
``perceptgym <command>: error: ...``: those found after parsing, and those tyro finds while parsing (a flag's value,
or a range check of the program's settings), whose box perceptgym._cli makes one line naming the flag or setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perceptgym.agents.training import train_run
from perceptgym.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good and broken inputs, in a folder of their own (the programs run elsewhere)."""
    root = tmp_path_factory.mktemp("inputs")
    run = train_run(
        "Taxi-v4",
        "q_learning",
        overrides={"n_episodes": 20, "eval_episodes": 1},
        runs_dir=root / "runs",
        progress=False,
        tensorboard=False,
    ).run_dir
    paths = {"run": run, "file": root / "a-file.txt"}
    paths["file"].write_text("not a run directory\n")
    for name, config, state in (
        ("no_env_id", {"agent": "q_learning", "seed": 0, "hyperparams": {}}, None),
        ("config_list", [1, 2, 3], None),
        ("corrupt_state", None, "{not json"),
        ("no_state", None, "delete"),
    ):
        folder = root / name
        (folder / "checkpoints").mkdir(parents=True)
        good = json.loads((run / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(good if config is None else config))
        if state != "delete":
            text = state if state is not None else (run / "checkpoints" / "state.json").read_text()
            (folder / "checkpoints" / "state.json").write_text(text)
        paths[name] = folder
    paths["no_config"] = root / "empty"
    paths["no_config"].mkdir()
    paths["bad_yaml"] = root / "hyperparams"
    paths["bad_yaml"].mkdir()
    (paths["bad_yaml"] / "q_learning.yml").write_text("default:\n  alpha: [0.1\n")
    paths["garbage_pt"] = root / "garbage.pt"
    paths["garbage_pt"].write_bytes(b"\x00not a checkpoint")
    return paths


# (argv with {placeholders} for the files above, expected text in the one error line)
CASES = [
    # train: --set values, run settings, agents, envs, hyperparameter files, --resume
    (
        "train --env Taxi-v4 --agent q_learning --set n_episodes=[",
        "--set 'n_episodes=[': the value is not valid YAML",
    ),
    ("train --env Taxi-v4 --agent q_learning --set alpha=abc", "alpha='abc' must be a number"),
    ("train --env Taxi-v4 --agent q_learning --set alpha=2", "alpha=2 is out of range"),
    ("train --env Taxi-v4 --agent q_learning --set n_episodes=-5", "n_episodes=-5 must be an integer >= 1"),
    ("train --env Taxi-v4 --agent q_learning --set n_episodes=1.5", "n_episodes=1.5 must be an integer"),
    ("train --env Taxi-v4 --agent q_learning --set n_timesteps=-1", "n_timesteps=-1 must be an integer >= 1"),
    (
        "train --env Taxi-v4 --agent q_learning --set eval_episodes=-1",
        "eval_episodes=-1 must be an integer >= 0",
    ),
    ("train --env Taxi-v4 --agent q_learning --set obs_bins=abc", "obs_bins='abc' must be an integer"),
    ("train --env Taxi-v4 --agent q_learning --set checkpoint_every=-1", "checkpoint_every=-1 must be"),
    ("train --env Taxi-v4 --agent q_learning --set checkpoint_seconds=-3", "checkpoint_seconds=-3 must be"),
    ("train --env Taxi-v4 --agent q_learning --set max_episode_steps=-1", "max_episode_steps=-1 must be"),
    ("train --env Taxi-v4 --agent q_learning --set max_episode_steps=0", "max_episode_steps=0 must be"),
    ("train --env Taxi-v4 --agent q_learning --set env_kwargs=5", "env_kwargs=5 must be a mapping"),
    ("train --env Taxi-v4 --agent q_learning --set env_wrappers=[3]", "env_wrappers=[3] must be"),
    ("train --env Taxi-v4 --agent q_learning --set alpah=0.1", "unknown setting(s) ['alpah']"),
    ("train --env Taxi-v4 --agent q_learning --set novalue", "--set 'novalue': use key=value"),
    (  # argparse would keep the last --set only: alpha=0.5 lost without a word
        "train --env Taxi-v4 --agent q_learning --set alpha=0.5 --set n_episodes=10",
        "--set is given more than once; give it once (a flag that takes several values takes them all after one --set)",
    ),
    ("train --env Taxi-v4 --agent q_learning --seed 1 --seed=2", "--seed is given more than once"),
    ("train --env CartPole-v1 --agent ppo --set n_episodes=5", "n_episodes=5: ppo (an SB3 agent)"),
    ("train --env CartPole-v1 --agent ppo --set learning_rate=fast", "learning_rate='fast'"),
    ("train --env Taxi-v4 --agent q_learnin", "unknown agent 'q_learnin'"),
    ("train --env NoSuchEnv-v0 --agent q_learning", "cannot make env 'NoSuchEnv-v0'"),
    ("train --env no_such_module:MyEnv --agent q_learning", "cannot import module 'no_such_module'"),
    ("train --env CartPole-v1 --agent q_learning --set obs_bins=null", "set obs_bins"),
    (
        "train --env Taxi-v4 --agent q_learning --plugin no_such_plugin",
        "cannot import module 'no_such_plugin'",
    ),
    ("train --env Taxi-v4 --agent q_learning --hyperparams-dir {bad_yaml}", "q_learning.yml: not valid YAML"),
    ("train --agent q_learning", "give --env and --agent"),
    ("train --env Taxi-v4 --agent q_learning --seed -1", "seed=-1 must be >= 0"),
    ("train --resume {nowhere}", "no such run directory"),
    ("train --resume {file}", "not a directory"),
    ("train --resume {no_config}", "no config.json in it"),
    ("train --resume {no_env_id}", "no_env_id/config.json: env_id=None is missing or invalid"),
    ("train --resume {config_list}", "config_list/config.json: not a perceptgym"),
    ("train --resume {corrupt_state}", "corrupt_state/checkpoints/state.json: not a readable"),
    ("train --resume {no_state}", "no checkpoint to resume from"),
    ("train --resume {run} --set n_episodes=-1", "n_episodes=-1 must be an integer >= 1"),
    # evaluate and watch
    ("evaluate {nowhere}", "no such run directory or checkpoint"),
    ("evaluate {run} --episodes 0", "episodes=0 must be >= 1"),
    ("evaluate {run} --env-kwargs {{", "--env-kwargs '{' is not JSON"),
    ("evaluate {run} --env-kwargs [1]", "--env-kwargs must be a JSON object"),
    ("evaluate {run} --env FrozenLake-v1", "checkpoint was made for observation_space Discrete(500"),
    ("evaluate {no_env_id}", "no checkpoint"),
    ("evaluate {garbage_pt} --env Taxi-v4", "garbage.pt: not a readable perceptgym checkpoint"),
    ("evaluate {run} --episodes abc", "--episodes"),
    ("ladder --rungs nope", "rungs=['nope']: choose among"),
    ("export {nowhere} --out shipped", "no such run directory or checkpoint"),
    ("export {no_config} --out shipped", "no checkpoint"),
    ("export {run} --out {run}", "holds a run already"),
    ("export {garbage_pt} --out shipped", "no config.json beside the checkpoint"),
    ("export {run}", "--out"),
    ("watch {nowhere} --record x.gif", "no such run directory or checkpoint"),
    ("watch {run} --fps 0", "fps=0.0 must be >= 1"),
    ("watch {run} --env-kwargs nope --record x.gif", "--env-kwargs 'nope' is not JSON"),
    ("evaluate {run} --digit-source nope", "--digit-source: unknown digit source 'nope'"),
    ("evaluate {run} --digit-source gan:{nowhere}.pt --json", "--digit-source: digit source 'gan:"),
    ("evaluate {run} --digit-source mnist-test", "unexpected keyword argument 'digit_source'"),  # Taxi has none
    ("evaluate {run} --json --episodes 0", "episodes=0 must be >= 1"),
    ("evaluate {run} --json --env-kwargs {{", "--env-kwargs '{' is not JSON"),
    ("evaluate {run} --json --video x.avi", "unknown video format '.avi'"),
    ("evaluate {run} --window-size 5 5", "--window-size must be (width, height) in pixels"),
    ("evaluate {run} --end-hold -1", "end_hold=-1.0 must be >= 0"),
    ("watch {run} --digit-source nope --record x.gif", "--digit-source: unknown digit source 'nope'"),
    ("watch {run} --digit-source mnist-test --record x.gif", "unexpected keyword argument 'digit_source'"),
    ("watch {run} --end-hold -1 --record x.gif", "end_hold=-1.0 must be >= 0"),
    # play, ladder, bandit, plot, demo
    ("play --fps 0", "fps=0 must be >= 1"),
    ("play --n-cars -1", "n_cars=-1 must be >= 0"),
    ("ladder --episodes 0", "episodes=0 must be >= 1"),
    ("ladder --seeds -1", "-1 is not an integer >= 0"),
    ("bandit --rounds 0", "rounds=0 must be >= 1"),
    ("bandit --label-noise 2", "label_noise=2.0 is out of range"),
    ("bandit --agents nope --rounds 10", "unknown agents ['nope']"),
    ("bandit --agents linucb --rounds 10 --overrides {{", "overrides '{' is not JSON"),
    ("bandit --agents linucb --rounds 10 --overrides [1]", "overrides must be a JSON object"),
    ("bandit --agents linucb --rounds 10 --overrides {linucb_alpha}", "linucb: alpha='x' must be a number"),
    ("bandit --agents linucb --rounds 10 --obs-mode nope", "obs_mode must be one of"),
    ("plot {nowhere}", "no progress.csv"),
    ("plot {run} --smooth 0", "smooth=0 must be >= 1"),
    ("plot {run} --x time", "x='time': use episode or global_step"),
    ("demo --episodes 0", "episodes=0 must be >= 1"),
    ("demo --render window", "render must be 'none' or 'human'"),
    ("ladder --max-concurrent 2", "address and max_concurrent are settings of --sweep"),
    ("ladder --device gpu", "device='gpu': not a torch device"),
    # the supervised programs
    ("train-classifier --recipe nope", "unknown recipe 'nope'"),
    ("train-classifier --epochs 0", "epochs=0 must be >= 1"),
    ("train-classifier --data-dir {nowhere}", "nowhere: not a folder"),
    ("train-classifier --data-dir {no_config}", "missing train-images-idx3-ubyte"),
    ("evaluate-classifier --checkpoint {nowhere}", "no such checkpoint"),
    ("evaluate-classifier --checkpoint {garbage_pt}", "garbage.pt: not a readable"),
    ("train-gan --minutes -1", "minutes=-1.0 must be > 0"),
    ("train-gan --train.steps 0", "steps"),
    ("train-gan --data-dir {nowhere}", "nowhere: not a folder"),
    ("train-gan --score-every 5 --classifier {nowhere}", "score_every=5 needs a classifier"),
    ("evaluate-gan --gan {nowhere}", "no such checkpoint"),
    ("evaluate-gan --gan {garbage_pt}", "garbage.pt: not a readable"),
    ("evaluate-gan --per-class 1", "per_class=1 must be >= 2"),
    ("evaluate-gan --classifier {nowhere}", "no such checkpoint"),
    # benchmarks and the command itself
    ("bench grid-driving --steps 0", "steps=0 must be >= 1"),
    ("bench grid-driving --digit-source nope", "unknown digit source 'nope'"),
    ("bench grid-driving --vector-clock sun", "vector_clock must be one of"),
    ("bench digit-bandit --rounds 0", "rounds=0 must be >= 1"),
    ("bench digit-bandit --rounds 10 --obs-modes nope", "obs_mode must be one of"),
    ("bench agents --steps 0", "steps=0 must be >= 1"),
    ("bench agents --env NoSuchEnv-v0 --steps 10", "cannot make env 'NoSuchEnv-v0'"),
    ("bench classifier --recipes nope", "unknown recipe 'nope'"),
    ("bench classifier --repeats 0", "repeats=0 must be >= 1"),
    ("nope", "unknown command 'nope'"),
    ("bench nope", "unknown command 'nope'"),
    ("bench sweep --trials 0", "trials=0 must be >= 1"),
    ("bench sweep --concurrency 0 2", "concurrency=[0, 2]: give trial counts >= 1"),
]


def argv_of(template: str, files: dict[str, Path], tmp: Path) -> list[str]:
    names = {k: str(v) for k, v in files.items()} | {"nowhere": str(tmp / "nowhere"), "linucb_alpha": ""}
    argv = [a.format(**names) for a in template.split()]
    return [json.dumps({"linucb": {"alpha": "x"}}) if a == "" else a for a in argv]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("template, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_error(template, message, files, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = {name: listing(path) for name, path in files.items() if path.is_dir()}
    code = main(argv_of(template, files, tmp_path))
    out, err = capsys.readouterr()
    assert code == 2, err
    if "--json" in template:
        assert out == ""  # stdout is only ever the JSON result
    assert "Traceback" not in err
    lines = err.strip().splitlines()  # tyro's own parse errors are made one line too (perceptgym._cli)
    assert len(lines) == 1 and ": error: " in lines[0], err
    assert message in lines[0], err
    assert listing(work) == [], "files were left behind"
    assert {name: listing(path) for name, path in files.items() if path.is_dir()} == before


def test_debug_shows_the_traceback(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", str(files["file"]), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("perceptgym train: error: --resume")


def test_an_unexpected_error_is_one_line_saying_it_is_a_bug(monkeypatch, tmp_path, capsys):
    from perceptgym import plot_curves

    def broken(args):
        raise KeyError("surprise")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plot_curves, "run", broken)
    assert plot_curves.main(["x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("perceptgym plot: internal error (KeyError: 'surprise'); this is a bug") and "\n" not in err


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["perceptgym.train", "--env", "Taxi-v4", "--agent", "q_learning", "--set", "gamma=[0.9"], "not valid YAML"),
        (["perceptgym.train", "--resume", "nowhere"], "no such run directory"),
        (["perceptgym.run_bandit", "--rounds", "0"], "rounds=0 must be >= 1"),
        (["perceptgym.train_gan", "--minutes", "-1"], "minutes=-1.0 must be > 0"),
        (["perceptgym.evaluate_classifier", "--checkpoint", "nowhere.pt"], "no such checkpoint"),
    ],
)
def test_bad_input_in_a_real_process(tmp_path, args, message):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in " ".join(line.strip("│ ") for line in proc.stderr.splitlines()), proc.stderr
    assert listing(tmp_path) == []

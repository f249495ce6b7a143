"""A shared run directory cannot run code: what its config.json names is imported only when trusted, never from it.

Each case puts a real ``.py`` that writes a marker file into a run directory, names it in ``config.json`` (as a
plug-in, a ``module:Class`` env, a ``module:Id`` Gymnasium id, an env wrapper), and opens the run with
``evaluate``, ``watch`` and ``train --resume`` from inside the directory (``python -m``, which puts the working
directory first on ``sys.path``). The marker must never appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from perceptgym.agents.playback import load_run
from perceptgym.agents.training import train_run


@pytest.fixture
def shared_run(tmp_path):
    run_dir = train_run(
        "Taxi-v4",
        "q_learning",
        overrides={"n_episodes": 30, "eval_episodes": 1},
        runs_dir=tmp_path / "runs",
        progress=False,
        tensorboard=False,
    ).run_dir
    marker = tmp_path / "the-payload-ran"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    for name in ("evil_plugin", "evil_env"):
        (run_dir / f"{name}.py").write_text(payload + "import gymnasium\nclass Evil(gymnasium.Wrapper):\n    pass\n")
    return run_dir, marker


def edit_config(run_dir: Path, **changes) -> None:
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "env_wrappers":  # evaluate and watch read run_settings, a resume reads hyperparams
            config["run_settings"]["env_wrappers"] = config["hyperparams"]["env_wrappers"] = value
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def run_inside(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=run_dir, capture_output=True, text=True, timeout=300, env=env
    )


NAMED = [
    ({"plugins": ["evil_plugin"]}, "plugin module 'evil_plugin'"),
    ({"env_id": "evil_env:Evil"}, "env module 'evil_env'"),
    ({"env_id": "evil_env:Taxi-v4"}, "env module 'evil_env'"),
    ({"env_wrappers": ["evil_env:Evil"]}, "env wrapper module 'evil_env'"),
]


@pytest.mark.parametrize("changes, named", NAMED, ids=["plugin", "module:Class", "module:Id", "wrapper"])
def test_modules_named_by_a_run_are_refused_without_trust(shared_run, changes, named, capsys):
    run_dir, marker = shared_run
    edit_config(run_dir, **changes)
    with pytest.raises(ValueError, match=rf"config\.json names the {named}; importing it would run its code"):
        load_run(run_dir)
    with pytest.raises(ValueError, match=r"--trust-plugins"):
        train_run(resume=run_dir, progress=False, tensorboard=False)
    from perceptgym import evaluate, train, watch

    assert evaluate.main([str(run_dir), "--episodes", "1"]) == 2
    assert watch.main([str(run_dir), "--episodes", "1", "--record", str(run_dir.parent / "w.gif")]) == 2
    assert train.main(["--resume", str(run_dir), "--no-progress", "--no-tensorboard"]) == 2
    assert capsys.readouterr().err.count("--trust-plugins") == 3
    assert not marker.exists()


@pytest.mark.slow
def test_from_inside_the_run_dir_neither_refusal_nor_trust_imports_its_files(shared_run):
    run_dir, marker = shared_run
    edit_config(run_dir, plugins=["evil_plugin"])
    refused = run_inside(run_dir, "perceptgym.evaluate", ".", "--episodes", "1")
    assert refused.returncode == 2 and "names the plugin module 'evil_plugin'" in refused.stderr, refused.stderr
    # trusting the file imports the modules it names from where modules are installed, not from the run dir
    trusted = run_inside(run_dir, "perceptgym.evaluate", ".", "--episodes", "1", "--trust-plugins")
    assert trusted.returncode == 2 and "cannot import module 'evil_plugin'" in trusted.stderr, trusted.stderr
    resumed = run_inside(run_dir, "perceptgym.train", "--resume", ".", "--trust-plugins", "--no-progress")
    assert resumed.returncode == 2 and "cannot import module 'evil_plugin'" in resumed.stderr, resumed.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_a_library_shadowed_by_a_file_in_the_run_dir_is_not_imported(shared_run):
    """Libraries are imported lazily (Pillow when a GIF is written): a ``PIL.py`` next to config.json stays inert."""
    run_dir, marker = shared_run
    (run_dir / "PIL.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('shadow')\n")
    out = run_inside(run_dir, "perceptgym.evaluate", ".", "--episodes", "1", "--video", "episode.gif")
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    with Image.open(run_dir / "episode.gif") as gif:
        assert gif.n_frames > 1


def test_perceptgym_modules_named_by_a_run_need_no_trust(tmp_path):
    """The suite's own modules (the documented plug-in examples) load as before."""
    run_dir = train_run(
        "perceptgym.examples.my_env:CorridorEnv",
        "q_learning",
        overrides={"n_episodes": 50, "max_episode_steps": 50, "eval_episodes": 1},
        runs_dir=tmp_path,
        plugins=["perceptgym.examples.my_agent"],
        progress=False,
        tensorboard=False,
    ).run_dir
    loaded = load_run(run_dir)
    assert loaded.env_id == "perceptgym.examples.my_env:CorridorEnv"
    loaded.env.close()

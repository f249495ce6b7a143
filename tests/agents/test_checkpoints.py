"""Every file perceptgym writes survives a failed write, refuses NaN weights, and no SB3 file can run code."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from perceptgym.agents.base import CheckpointError, describe_space
from perceptgym.agents.registry import load_agent, make_agent
from perceptgym.agents.sb3 import FORMAT as SB3_FORMAT
from tests.agents.checkpoint_kinds import KINDS, same

ROOT = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of interrupted writes."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


class InterruptingFile:
    """A file that takes ``limit`` bytes, then raises KeyboardInterrupt (Ctrl-C in the middle of a write)."""

    def __init__(self, f, limit: int, log: list[int]):
        self._f, self._left, self._log = f, limit, log

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        if len(data) > self._left:
            self._f.write(data[: self._left])
            self._log.append(self._left)
            raise KeyboardInterrupt
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ctrl_c_halfway_through_a_write_keeps_the_old_file(tmp_path, monkeypatch, kind):
    made = KINDS[kind](tmp_path)
    old_bytes, old = made.path.read_bytes(), made.read()
    real_fdopen, interrupted = os.fdopen, []

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return InterruptingFile(f, len(old_bytes) // 2, interrupted) if "w" in mode else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(KeyboardInterrupt):
        made.write_again()
    monkeypatch.undo()
    assert interrupted and interrupted[0] > 0  # the write had started
    assert made.path.read_bytes() == old_bytes
    assert same(made.read(), old)
    assert leftovers(tmp_path) == []


DISK_FULL = """
import json, pathlib, resource, signal, sys
from tests.agents.checkpoint_kinds import KINDS, same
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, as on a full disk
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
results = {}
for name, make in KINDS.items():
    folder = pathlib.Path(sys.argv[1]) / name
    folder.mkdir()
    made = make(folder)
    old_bytes, old = made.path.read_bytes(), made.read()
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(old_bytes) // 2, hard))
    try:
        made.write_again()
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    results[name] = {
        "error": error,
        "same_bytes": made.path.read_bytes() == old_bytes,
        "loads_the_old_file": same(made.read(), old),
        "leftovers": sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part")),
    }
print(json.dumps(results))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_halfway_through_a_write_keeps_the_old_file(tmp_path):
    """``ulimit -f`` as the issue reproduced it: every kind of file, a real write that stops at half the size."""
    out = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results) == set(KINDS)
    for name, result in results.items():
        assert result["error"] is not None and "File too large" in result["error"], (name, result)
        assert result["error"].startswith("OSError") and "could not write it" in result["error"], (name, result)
        assert result["same_bytes"] and result["loads_the_old_file"] and result["leftovers"] == [], (name, result)


# ---- NaN / Inf weights ---------------------------------------------------------------------------------------
def _poison_npz(path: Path, key: str, value: float) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = arrays[key].astype(np.float64) if arrays[key].dtype.kind != "f" else arrays[key].copy()
    arrays[key].reshape(-1)[0] = value
    np.savez(path, **arrays)


def _poison_pt(path: Path, keys: tuple[str, ...], value: float) -> None:
    ck = torch.load(path, weights_only=True)
    tensor = ck
    for key in keys:
        tensor = tensor[key]
    tensor.view(-1)[0] = value
    torch.save(ck, path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize(
    ("kind", "poison", "name"),
    [
        ("tabular", lambda p, v: _poison_npz(p, "q", v), "'q'"),
        ("bandit", lambda p, v: _poison_npz(p, "theta", v), "'theta'"),
        ("neural_bandit", lambda p, v: _poison_npz(p, "net/head.weight", v), "'net/head.weight'"),
        ("sb3", lambda p, v: _poison_pt(p, ("params", "policy", "action_net.weight"), v), "params.policy.action_net"),
        ("classifier", lambda p, v: _poison_pt(p, ("state_dict", "head.1.weight"), v), "'state_dict.head.1.weight'"),
        ("gan", lambda p, v: _poison_pt(p, ("generator", "fc.weight"), v), "'generator.fc.weight'"),
    ],
)
def test_nan_or_inf_weights_are_refused_naming_file_and_tensor(tmp_path, kind, poison, name, value):
    made = KINDS[kind](tmp_path)
    poison(made.path, value)
    with pytest.raises(CheckpointError, match="NaN or Inf") as refused:
        made.read()
    assert str(made.path) in str(refused.value) and name in str(refused.value)


# ---- SB3: nothing we load runs code ----------------------------------------------------------------------------
class Payload:
    """Unpickling this object creates ``marker`` (a stand-in for ``os.system(...)``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (io.open, (self.marker, "w"))


CARTPOLE = gym.make("CartPole-v1")
TINY_PPO = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}


def legacy_checkpoint(path: Path, payload: Payload | None = None) -> Path:
    """What perceptgym wrote before its own format: SB3's ``model.save`` zip plus a version-1 JSON sidecar.

    With ``payload``, the zip's ``lr_schedule`` is replaced by a pickle that runs code when SB3 loads it.
    """
    agent = make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, TINY_PPO, seed=0)
    agent.model.save(path)
    sidecar = {
        "format": SB3_FORMAT,
        "version": 1,
        "agent": "ppo",
        "config": asdict(agent.config),
        "observation_space": describe_space(CARTPOLE.observation_space),
        "action_space": describe_space(CARTPOLE.action_space),
        "seed": 0,
        "num_timesteps": 0,
        "rng_state": agent.rng.bit_generator.state,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    if payload is not None:
        with zipfile.ZipFile(path) as z:
            members = {name: z.read(name) for name in z.namelist()}
        data = json.loads(members["data"])
        data["lr_schedule"][":serialized:"] = base64.b64encode(pickle.dumps(payload)).decode()
        members["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
    return path


def legacy_run_dir(folder: Path, marker: Path) -> Path:
    """A run directory as older perceptgym wrote it (config and state without a header), with a crafted zip."""
    run_dir = folder / "CartPole-v1__ppo__0__1"
    (run_dir / "checkpoints").mkdir(parents=True)
    config = {"env_id": "CartPole-v1", "agent": "ppo", "seed": 0, "kind": "sb3", "plugins": []}
    config |= {"hyperparams": {"n_timesteps": 64, **TINY_PPO}, "run_settings": {"n_timesteps": 64}}
    (run_dir / "config.json").write_text(json.dumps(config))
    legacy_checkpoint(run_dir / "model.zip", Payload(marker))
    legacy_checkpoint(run_dir / "checkpoints" / "last.zip", Payload(marker))
    state = {"checkpoint": "last.zip", "episode": 0, "global_step": 32, "finished": False}
    (run_dir / "checkpoints" / "state.json").write_text(json.dumps(state))
    return run_dir


def test_a_crafted_sb3_zip_is_refused_and_its_payload_does_not_run(tmp_path, capsys):
    from perceptgym import evaluate, train, watch

    marker = tmp_path / "payload-ran"
    run_dir = legacy_run_dir(tmp_path, marker)
    with pytest.raises(CheckpointError, match=r"can run any code.*trust_checkpoint=True \(--trust-checkpoint\)"):
        load_agent(run_dir / "model.zip", CARTPOLE.observation_space, CARTPOLE.action_space)
    assert evaluate.main([str(run_dir), "--episodes", "1"]) == 2
    assert watch.main([str(run_dir), "--episodes", "1", "--record", str(tmp_path / "w.gif")]) == 2
    assert train.main(["--resume", str(run_dir), "--no-progress", "--no-tensorboard"]) == 2
    assert capsys.readouterr().err.count("--trust-checkpoint") == 3
    assert not marker.exists()
    # the file really is dangerous: trusting it runs the payload (SB3 unpickles the zip)
    load_agent(run_dir / "model.zip", CARTPOLE.observation_space, CARTPOLE.action_space, trust_checkpoint=True)
    assert marker.exists()


def test_a_trusted_old_zip_loads_and_re_saves_in_the_safe_format(tmp_path):
    old = legacy_checkpoint(tmp_path / "old.zip")
    agent = load_agent(old, trust_checkpoint=True)
    new = agent.save(tmp_path / "new")
    assert new.suffix == ".pt"
    converted = load_agent(new)  # no trust needed now
    observations = [CARTPOLE.observation_space.sample() for _ in range(20)]
    assert [agent.act(o) for o in observations] == [converted.act(o) for o in observations]


def test_a_pickle_in_a_pt_checkpoint_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": SB3_FORMAT, "version": 2, "meta": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a readable"):
        load_agent(path)
    assert not marker.exists()


# ---- old formats and the envelope's fields ------------------------------------------------------------------
def test_version_1_bandit_checkpoints_still_load(tmp_path):
    made = KINDS["bandit"](tmp_path)
    with np.load(made.path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta = {k: v for k, v in meta.items() if k != "versions"} | {"version": 1}
    np.savez(made.path, header=np.array(json.dumps(meta)), **arrays)  # how version 1 was written
    assert same(made.read(), KINDS["bandit"](tmp_path / "again").read())


@pytest.mark.parametrize("kind", ["tabular", "bandit", "neural_bandit", "sb3_replay_buffer"])
def test_agent_checkpoints_record_format_version_and_library_versions(tmp_path, kind):
    made = KINDS[kind](tmp_path)
    if made.path.suffix == ".pt":
        meta = torch.load(made.path, weights_only=True)
        replay = next(tmp_path.glob("dqn.replay-*.npz"))
        with np.load(replay, allow_pickle=False) as data:
            assert json.loads(str(data["meta"]))["format"] == "perceptgym.sb3_replay_buffer"
        assert set(meta["versions"]) >= {"perceptgym", "python", "torch", "numpy", "gymnasium", "stable-baselines3"}
    else:
        with np.load(made.path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
        assert set(meta["versions"]) >= {"perceptgym", "python", "numpy", "gymnasium"}
    assert isinstance(meta["format"], str) and meta["version"] >= 1


def test_run_files_are_versioned_and_old_ones_still_load(tmp_path):
    made = KINDS["run_files"](tmp_path)
    run_dir = made.path.parent
    for name, fmt in (
        ("config.json", "perceptgym.run_config"),
        ("eval.json", "perceptgym.eval"),
        ("checkpoints/state.json", "perceptgym.run_state"),
    ):
        data = json.loads((run_dir / name).read_text())
        assert data["format"] == fmt and data["version"] == 1 and "perceptgym" in data["versions"]
    old = json.loads(made.path.read_text())
    for key in ("format", "version", "versions"):
        old.pop(key)
    made.path.write_text(json.dumps(old))  # as perceptgym wrote it before the envelope
    assert made.read()[0] == "FrozenLake-v1"
    future = {**old, "format": "perceptgym.run_config", "version": 2}
    made.path.write_text(json.dumps(future))
    with pytest.raises(CheckpointError, match="version 2 is newer than this perceptgym reads"):
        made.read()

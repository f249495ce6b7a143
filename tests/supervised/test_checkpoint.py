"""The checkpoint envelope itself: atomic writes, the header and its one version rule, safe and finite loads."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from perceptgym.agents.base import CheckpointError as AgentsCheckpointError
from perceptgym.supervised.checkpoint import (
    CheckpointError,
    atomic_write,
    check_header,
    load_checkpoint,
    load_json,
    load_npz,
    save_checkpoint,
    save_json,
    save_npz,
)
from perceptgym.supervised.classifier import load_classifier
from perceptgym.supervised.gan import load_generator
from perceptgym.supervised.perception import SHIPPED


def test_one_error_type_for_every_refusal():
    assert AgentsCheckpointError is CheckpointError and issubclass(CheckpointError, ValueError)


def test_atomic_write_replaces_the_file_or_leaves_it_untouched(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    assert path.read_bytes() == b"old" and stat.S_IMODE(path.stat().st_mode) == 0o644

    def fails_halfway(f):
        f.write(b"new, half")
        raise RuntimeError("disk on fire")

    with pytest.raises(OSError, match=r"f\.bin: could not write it \(RuntimeError: disk on fire\); the previous"):
        atomic_write(path, fails_halfway)

    def interrupted(f):
        f.write(b"new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_bytes() == b"old" and os.listdir(path.parent) == ["f.bin"]
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["f.bin"]


def test_every_container_records_format_version_and_library_versions(tmp_path):
    pt = save_checkpoint(tmp_path / "a.pt", "kind_a", 3, {"w": torch.ones(2)})
    ck = load_checkpoint(pt, "kind_a", 3)
    assert ck["format"] == "kind_a" and ck["version"] == 3 and torch.equal(ck["w"], torch.ones(2))
    assert set(ck["versions"]) == {"perceptgym", "python", "torch", "numpy"}
    meta, arrays = load_npz(save_npz(tmp_path / "b.npz", "kind_b", 1, {"x": 1}, {"w": np.ones(3)}), "kind_b", 1)
    assert meta["x"] == 1 and set(meta["versions"]) == {"perceptgym", "python", "numpy"}
    assert np.array_equal(arrays["w"], np.ones(3)) and set(arrays) == {"w"}
    data = load_json(save_json(tmp_path / "c.json", "kind_c", 2, {"x": [1, 2]}), "kind_c", 2)
    assert data["x"] == [1, 2] and data["versions"]["perceptgym"] == data["versions"]["perceptgym"].strip()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"format": "kind", "version": 1}, None),  # older versions load
        ({"format": "kind", "version": 2}, None),
        ({"format": "kind", "version": 3}, "version 3 is newer than this perceptgym reads \\(<= 2\\); upgrade"),
        ({"format": "other", "version": 1}, "holds a 'other' checkpoint, expected 'kind'"),
        ({"format": "kind", "version": True}, "invalid version True"),
        ({"format": "kind", "version": "2"}, "invalid version '2'"),
        ({"format": "kind", "version": 0}, "invalid version 0"),
        ({"version": 1}, "no format/version fields"),
        ([1, 2], "no format/version fields"),
    ],
)
def test_the_one_version_rule(data, match):
    if match is None:
        check_header(data, "f", "kind", 2)
    else:
        with pytest.raises(CheckpointError, match=match):
            check_header(data, "f", "kind", 2)


def test_every_container_applies_the_rule(tmp_path):
    save_checkpoint(tmp_path / "a.pt", "kind", 2, {})
    save_npz(tmp_path / "b.npz", "kind", 2, {}, {})
    save_json(tmp_path / "c.json", "kind", 2, {})
    for load, name in ((load_checkpoint, "a.pt"), (load_npz, "b.npz"), (load_json, "c.json")):
        with pytest.raises(CheckpointError, match="newer"):
            load(tmp_path / name, "kind", 1)
        with pytest.raises(CheckpointError, match="expected 'other'"):
            load(tmp_path / name, "other", 2)
        with pytest.raises(CheckpointError, match="no such checkpoint: the file does not exist"):
            load(tmp_path / ("missing" + name), "kind", 2)
        (tmp_path / name).write_bytes(b"\x00garbage")
        with pytest.raises(CheckpointError, match="not a readable"):
            load(tmp_path / name, "kind", 2)


def test_headerless_json_only_where_asked(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"env_id": "Taxi-v3"}))
    assert load_json(path, "kind", 1, headerless=True) == {"env_id": "Taxi-v3"}
    with pytest.raises(CheckpointError, match="no format/version"):
        load_json(path, "kind", 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_tensors_and_arrays_are_refused_by_name(tmp_path, bad):
    weights = torch.zeros(3)
    weights[1] = bad
    path = save_checkpoint(tmp_path / "m.pt", "kind", 1, {"state_dict": {"fc.weight": weights}, "step": 3})
    with pytest.raises(CheckpointError, match=r"m\.pt: 'state_dict\.fc\.weight' holds NaN or Inf"):
        load_checkpoint(path, "kind", 1)
    path = save_npz(tmp_path / "m.npz", "kind", 1, {}, {"z_inv": np.array([0.0, bad])})
    with pytest.raises(CheckpointError, match=r"m\.npz: 'z_inv' holds NaN or Inf"):
        load_npz(path, "kind", 1)


def test_integer_tensors_and_rng_states_are_not_checked_for_finiteness(tmp_path):
    payload = {"rng": torch.get_rng_state(), "order": torch.arange(5), "n": 3}
    assert load_checkpoint(save_checkpoint(tmp_path / "m.pt", "kind", 1, payload), "kind", 1)["order"].sum() == 10


def test_what_the_loader_would_refuse_is_refused_at_save(tmp_path):
    with pytest.raises(ValueError, match="hold Python objects"):
        save_npz(tmp_path / "m.npz", "kind", 1, {}, {"x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match=r"weights_only=True\) cannot read"):
        save_checkpoint(tmp_path / "m.pt", "kind", 1, {"n": np.int64(3)})
    assert os.listdir(tmp_path) == []


def test_a_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "mnist_classifier", "version": 1, "state_dict": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_classifier(tmp_path / "evil.pt")
    assert not marker.exists()


def test_the_shipped_checkpoints_still_load():
    """Written before the envelope (no ``versions`` field): they pass the same checks, finite weights included."""
    for name in ("cnn", "mlp"):
        assert load_classifier(SHIPPED[name]).model.cfg.arch == name
    assert load_generator(SHIPPED["gan"]).generator.cfg.z_dim > 0

"""The one perception path: LazyReader / LazySource (lazy, batched, checked, pickled by name) in every env."""

from __future__ import annotations

import doctest
import pickle
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import perceptgym.envs.digits
import perceptgym.envs.wrappers
from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from perceptgym.envs.digit_bandit.vector import DigitBanditVectorEnv
from perceptgym.envs.digits import LazyReader, LazySource, PerceptionError, check_reading
from perceptgym.envs.grid_driving import GridDrivingEnv
from perceptgym.envs.wrappers import ClassifyObservation
from tests.conftest import StubReader, StubSource


def images(*shape: int) -> np.ndarray:
    return np.zeros((*shape, 28, 28), np.uint8)


def counting(reader):
    calls = []

    def read(batch):
        calls.append(batch.shape)
        return reader(batch)

    return read, calls


def test_one_call_per_batch_for_any_leading_shape():
    read, calls = counting(StubReader())
    reading = LazyReader(read)
    batch = StubSource()(np.arange(12) % 10, np.random.default_rng(0))
    labels, conf = reading(batch.reshape(3, 4, 28, 28))
    assert calls == [(12, 28, 28)]
    assert labels.shape == conf.shape == (3, 4) and labels.dtype == np.int64 and conf.dtype == np.float32
    np.testing.assert_array_equal(labels.ravel(), np.arange(12) % 10)
    np.testing.assert_array_equal(reading.read(batch)[0], np.arange(12) % 10)  # read() is the same call
    label, _ = reading(batch[7])  # one image: 0-d results
    assert label.shape == () and label == 7
    assert reading(images(0))[0].shape == (0,) and len(calls) == 3  # nothing to read: the reader is not called


def test_results_are_fresh_arrays():
    labels_out = np.array([3, 4], np.int64)
    reading = LazyReader(lambda batch: (labels_out, np.array([0.5, 0.5], np.float32)))
    labels, _ = reading(images(2))
    labels_out[:] = 9  # a reader that reuses its buffer must not change what an env already read
    np.testing.assert_array_equal(labels, [3, 4])


BROKEN_READINGS = {
    "label 12": lambda n: (np.full(n, 12), np.ones(n)),
    "label -1": lambda n: (np.full(n, -1), np.ones(n)),
    "NaN labels": lambda n: (np.full(n, np.nan), np.ones(n)),
    "float labels": lambda n: (np.full(n, 3.0), np.ones(n)),
    "bool labels": lambda n: (np.ones(n, bool), np.ones(n)),
    "None": lambda n: None,
    "labels only": lambda n: np.zeros(n, np.int64),
    "three arrays": lambda n: (np.zeros(n, np.int64), np.ones(n), np.ones(n)),
    "too few labels": lambda n: (np.zeros(n - 1, np.int64), np.ones(n)),
    "2-D labels": lambda n: (np.zeros((n, 1), np.int64), np.ones(n)),
    "too many confidences": lambda n: (np.zeros(n, np.int64), np.ones(n + 1)),
    "NaN confidence": lambda n: (np.zeros(n, np.int64), np.full(n, np.nan)),
    "confidence 7": lambda n: (np.zeros(n, np.int64), np.full(n, 7.0)),
    "negative confidence": lambda n: (np.zeros(n, np.int64), np.full(n, -0.1)),
    "infinite confidence": lambda n: (np.zeros(n, np.int64), np.full(n, np.inf)),
    "string confidences": lambda n: (np.zeros(n, np.int64), np.array(["high"] * n)),
    "None confidences": lambda n: (np.zeros(n, np.int64), None),
}


@pytest.mark.parametrize("name", BROKEN_READINGS)
def test_check_reading_refuses_broken_readers(name):
    with pytest.raises(PerceptionError, match=r"^my reader returned .*(labels|confidence|reader returns)"):
        check_reading(BROKEN_READINGS[name](4), 4, "my reader")


def test_check_reading_accepts_what_readers_may_return():
    labels, conf = check_reading(([1, 2], [0, 1]), 2)  # lists, integer confidences
    assert labels.dtype == np.int64 and conf.dtype == np.float32
    labels, _ = check_reading((np.array([9, 0], np.uint8), np.array([0.25, 1.0])), 2)
    np.testing.assert_array_equal(labels, [9, 0])
    _, conf = check_reading((np.zeros(3, np.int64), np.array([0.0, -0.0, 1.0], np.float32)), 3)  # the bounds
    assert conf.tolist() == [0.0, 0.0, 1.0]
    just_above = np.nextafter(np.float32(1), np.float32(2))
    with pytest.raises(PerceptionError, match=r"confidence 1\.0000001 \(image 1\)"):
        check_reading((np.zeros(2, np.int64), np.array([0.5, just_above], np.float32)), 2)
    with pytest.raises(PerceptionError, match=r"label 10 \(image 2\)"):
        check_reading((np.array([0, 9, 10]), np.ones(3)), 3)


def consumers():
    """Every place that reads digits, each built around a given reader and reading once."""

    def grid(reader):
        GridDrivingEnv(obs_mode="perceived", digit_source=StubSource(), reader=reader).reset(seed=0)

    def bandit(reader):
        DigitBanditEnv(obs_mode="perceived", digit_source=StubSource(), reader=reader, block_size=8).reset(seed=0)

    def bandit_vector(reader):
        kwargs = {"obs_mode": "perceived-confidence", "digit_source": StubSource(), "reader": reader}
        DigitBanditVectorEnv(num_envs=4, **kwargs).reset(seed=0)

    def wrapper(reader):
        env = GridDrivingEnv(obs_mode="dict", digit_source=StubSource())
        ClassifyObservation(env, reader).reset(seed=0)

    return {"GridDriving": grid, "DigitBandit": bandit, "DigitBanditVector": bandit_vector, "Classify": wrapper}


@pytest.mark.parametrize("consumer", consumers())
@pytest.mark.parametrize("name", ["label 12", "NaN labels", "float labels", "None", "NaN confidence", "confidence 7"])
def test_every_consumer_refuses_a_broken_reader_naming_it(consumer, name):
    def broken_reader(batch):
        return BROKEN_READINGS[name](len(batch))

    with pytest.raises(ValueError, match=r"^reader broken_reader returned "):
        consumers()[consumer](broken_reader)


@pytest.mark.parametrize("consumer", consumers())
def test_every_consumer_reads_in_one_batch(consumer):
    read, calls = counting(StubReader())
    consumers()[consumer](read)
    assert len(calls) == 1, calls


def test_bad_specs_name_the_setting():
    with pytest.raises(PerceptionError, match="reader must be one of"):
        LazyReader(3)
    with pytest.raises(TypeError, match="reader must be one of"):  # a wrong type is a TypeError too
        LazyReader(None)
    with pytest.raises(ValueError, match="reader 'cnm' is neither one of"):
        LazyReader("cnm")
    with pytest.raises(ValueError, match=r"classifier 'x\.pt' is neither one of"):
        LazyReader("x.pt", setting="classifier")
    with pytest.raises(ValueError, match="reader <lambda>: images must be uint8 of shape"):
        LazyReader(lambda batch: None)(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="unknown digit source 'emnist'"):
        LazySource("emnist")
    with pytest.raises(ValueError, match="no GAN checkpoint file"):
        LazySource("gan:/nowhere/gan.pt")


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (lambda labels, rng: None, "returned NoneType None; expected uint8 of shape"),
        (lambda labels, rng: np.zeros((len(labels), 28, 28)), r"returned a float64 array of shape \(3, 28, 28\)"),
        (lambda labels, rng: np.zeros((2, 28, 28), np.uint8), r"returned .*; expected uint8 of shape \(3, 28, 28\)"),
    ],
)
def test_broken_sources_are_refused_naming_them(source, match):
    with pytest.raises(ValueError, match="digit source <lambda> " + match):
        LazySource(source)(np.arange(3), np.random.default_rng(0))


def test_a_checkpoint_path_is_accepted_and_loaded_lazily(tmp_path):
    path = tmp_path / "reader.pt"
    path.write_bytes(b"not loaded until read")
    reading = LazyReader(path)
    assert reading.spec == str(path) and not reading.loaded
    assert pickle.loads(pickle.dumps(reading)).spec == str(path)


def test_named_models_pickle_by_name_and_envs_construct_without_torch():
    """In a fresh process: making and pickling perceived-mode envs with the shipped defaults imports no torch."""
    code = """
import pickle, sys
import gymnasium as gym
import perceptgym.envs
from perceptgym.envs.wrappers import ClassifyObservation
envs = [
    gym.make("perceptgym/GridDriving-v0", obs_mode="perceived"),
    gym.make("perceptgym/DigitBandit-v0", obs_mode="perceived", reader="mlp"),
    gym.make_vec("perceptgym/DigitBandit-v0", 4, vectorization_mode="vector_entry_point", obs_mode="perceived"),
    ClassifyObservation(gym.make("perceptgym/DigitBandit-v0"), "cnn"),
]
clones = [pickle.loads(pickle.dumps(env)) for env in envs]
single = [e.unwrapped for e in (*envs[:2], *clones[:2])]
parts = [e._reading for e in single] + [e._source for e in single] + [envs[2]._proto._reading, envs[3].reading]
print(max(len(pickle.dumps(p)) for p in parts), "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"
    assert int(out[0]) < 1000, out  # names, not weights (the shipped CNN is 0.9 MB) nor MNIST (47 MB)


def test_a_loaded_named_reader_still_pickles_by_name():
    pytest.importorskip("torch")
    reading = LazyReader("mlp")
    labels, conf = reading(StubSource()(np.arange(10), np.random.default_rng(0)))
    assert reading.loaded and labels.shape == conf.shape == (10,)
    data = pickle.dumps(reading)
    assert len(data) < 1000
    clone = pickle.loads(data)
    assert not clone.loaded and clone.spec == "mlp"
    np.testing.assert_array_equal(clone(StubSource()(np.arange(10), np.random.default_rng(0)))[0], labels)


@pytest.mark.parametrize("module", [perceptgym.envs.digits, perceptgym.envs.wrappers])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_perceived_means_the_same_in_both_envs():
    """Same space as symbolic; with a reader that is always right, the same observations as symbolic;
    and for DigitBandit the same as reading the pixels with ClassifyObservation."""
    for make in (
        lambda mode: GridDrivingEnv(obs_mode=mode, digit_source=StubSource(), reader=StubReader(), shuffle_stops=True),
        lambda mode: DigitBanditEnv(obs_mode=mode, digit_source=StubSource(), reader=StubReader()),
    ):
        perceived, symbolic = make("perceived"), make("symbolic")
        assert perceived.observation_space == symbolic.observation_space
        rng = np.random.default_rng(0)
        for i in range(30):
            (a, _), (b, _) = perceived.reset(seed=i), symbolic.reset(seed=i)
            assert a == b
            for _ in range(10):
                action = int(rng.integers(perceived.action_space.n))
                a, _, terminated, _, _ = perceived.step(action)
                b, *_ = symbolic.step(action)
                assert a == b
                if terminated:
                    break
    bandit = DigitBanditEnv(obs_mode="perceived", digit_source=StubSource(), reader=StubReader({3: 5}))
    wrapped = ClassifyObservation(DigitBanditEnv(obs_mode="pixels", digit_source=StubSource()), StubReader({3: 5}))
    for i in range(30):
        ours, theirs = bandit.reset(seed=7 if i == 0 else None), wrapped.reset(seed=7 if i == 0 else None)
        assert data_equivalence(ours, theirs)
        bandit.step(0), wrapped.step(0)

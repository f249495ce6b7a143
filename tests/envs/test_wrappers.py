"""Observation wrappers on stub envs with a stub reader (no torch, no data)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from perceptgym.envs.wrappers import ClassifyObservation, EncodeStateObservation
from tests.conftest import StubReader, StubSource


class ImageEnv(gym.Env):
    """Shows the digits 0, 1, 2, ... as StubSource images, one per step."""

    def __init__(self, dict_obs: bool = False):
        img = spaces.Box(0, 255, (28, 28), dtype=np.uint8)
        self.dict_obs = dict_obs
        self.observation_space = spaces.Dict({"a": img, "b": img, "n": spaces.Discrete(3)}) if dict_obs else img
        self.action_space = spaces.Discrete(2)
        self.source, self.t = StubSource(), 0

    def _obs(self):
        images = self.source(np.array([self.t % 10, (self.t + 1) % 10]), self.np_random)
        if self.dict_obs:
            return {"a": images[0], "b": images[1], "n": self.t % 3}
        return images[0]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t >= 12, False, {}


def test_classify_image_observation():
    env = ClassifyObservation(ImageEnv(), StubReader())
    assert env.observation_space == spaces.Discrete(10)
    obs, info = env.reset(seed=0)
    assert obs == 0 and info["label_read"] == 0 and info["label_confidence"] == pytest.approx(0.9)
    for t in range(1, 5):
        obs, _, _, _, info = env.step(0)
        assert obs == t and env.observation_space.contains(obs)


def test_classify_reads_wrong_when_the_reader_is_wrong():
    env = ClassifyObservation(ImageEnv(), StubReader(confuse={3: 8}))
    env.reset(seed=0)
    labels = [env.step(0)[0] for _ in range(4)]
    assert labels == [1, 2, 8, 4]


def test_classify_dict_observation_in_one_batch():
    calls = []

    def reader(images):
        calls.append(len(images))
        return StubReader()(images)

    env = ClassifyObservation(ImageEnv(dict_obs=True), reader)
    assert env.observation_space["a"] == spaces.Discrete(10) and env.observation_space["n"] == spaces.Discrete(3)
    obs, info = env.reset(seed=0)
    assert (obs["a"], obs["b"], obs["n"]) == (0, 1, 0)
    assert (info["a_read"], info["b_read"]) == (0, 1)
    assert info["a_confidence"] == info["b_confidence"] == pytest.approx(0.9)
    assert "n_read" not in info
    assert calls == [2]
    only_b = ClassifyObservation(ImageEnv(dict_obs=True), StubReader(), keys=["b"])
    obs, _ = only_b.reset(seed=0)
    assert obs["a"].shape == (28, 28) and obs["b"] == 1


def test_classify_rejects_other_spaces():
    with pytest.raises(ValueError, match="28, 28"):
        ClassifyObservation(gym.make("CartPole-v1"), StubReader())
    with pytest.raises(ValueError, match="image entries"):
        ClassifyObservation(ImageEnv(dict_obs=True), StubReader(), keys=["n"])
    with pytest.raises(TypeError, match="reader must be one of"):
        ClassifyObservation(ImageEnv(), 3)
    with pytest.raises(ValueError, match="reader 'cnnn' is neither"):
        ClassifyObservation(ImageEnv(), "cnnn")


def test_classify_refuses_a_broken_reader_by_name():
    env = ClassifyObservation(ImageEnv(), lambda images: (np.full(len(images), 12), np.ones(len(images))))
    with pytest.raises(ValueError, match=r"reader <lambda> returned label 12"):
        env.reset(seed=0)


def test_classify_named_reader_is_resolved_lazily_and_pickles():
    env = ClassifyObservation(ImageEnv(), "cnn")  # nothing loaded yet
    clone = pickle.loads(pickle.dumps(env))
    assert not clone.reading.loaded and clone.reading.spec == "cnn"


def test_encode_state_observation_round_trip():
    base = ImageEnv()
    base.observation_space = spaces.MultiDiscrete([3, 4, 5], start=[0, 1, 0])
    env = EncodeStateObservation(base)
    assert env.observation_space == spaces.Discrete(60)
    seen = set()
    for a in range(3):
        for b in range(1, 5):
            for c in range(5):
                s = env.encode([a, b, c])
                np.testing.assert_array_equal(env.decode(s), [a, b, c])
                assert base.observation_space.contains(env.decode(s))
                seen.add(s)
    assert seen == set(range(60))
    with pytest.raises(ValueError, match="out of range"):
        env.encode([3, 1, 0])
    with pytest.raises(ValueError, match="integers of shape"):
        env.encode([0.5, 1, 0])
    with pytest.raises(ValueError, match="out of range"):
        env.decode(60)


def test_encode_classified_dict():
    """ClassifyObservation then EncodeStateObservation: a Dict of images becomes one Discrete state."""
    env = EncodeStateObservation(ClassifyObservation(ImageEnv(dict_obs=True), StubReader()))
    assert env.observation_space == spaces.Discrete(300)
    obs, _ = env.reset(seed=0)
    assert obs == env.encode({"a": 0, "b": 1, "n": 0}) == (0 * 10 + 1) * 3 + 0
    obs, _, _, _, _ = env.step(0)
    assert env.decode(obs) == {"a": 1, "b": 2, "n": 1}


def test_encode_rejects_other_spaces():
    with pytest.raises(ValueError, match="MultiDiscrete"):
        EncodeStateObservation(gym.make("CartPole-v1"))
    base = ImageEnv()
    base.observation_space = spaces.MultiDiscrete([3, 4])
    assert EncodeStateObservation(base, max_states=12).observation_space == spaces.Discrete(12)
    with pytest.raises(ValueError, match="gives 12 states, more than max_states=11"):
        EncodeStateObservation(base, max_states=11)

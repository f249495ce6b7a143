"""The stable-baselines3 adapter: smoke learning, checkpoints, determinism, small images and dict observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from perceptgym.agents.base import CheckpointError, SpaceMismatchError
from perceptgym.agents.registry import load_agent, make_agent
from perceptgym.agents.sb3 import DQNAgent, PPOAgent, SmallCnn
from perceptgym.supervised.perception import SHIPPED

CARTPOLE = gym.make("CartPole-v1")
TINY = {
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 32, "buffer_size": 500, "batch_size": 16, "train_freq": 4},
}


class DigitImageEnv(gym.Env):
    """Shows a 28×28 uint8 image whose bright half says which action pays (a stand-in for a digit)."""

    def __init__(self, dict_obs: bool = False):
        image = gym.spaces.Box(0, 255, (28, 28), np.uint8)
        self.observation_space = (
            gym.spaces.Dict({"image": image, "speed": gym.spaces.Discrete(3)}) if dict_obs else image
        )
        self.action_space = gym.spaces.Discrete(2)
        self._label = 0

    def _obs(self):
        image = np.zeros((28, 28), np.uint8)
        image[:, 14 * self._label : 14 * (self._label + 1)] = 255
        if isinstance(self.observation_space, gym.spaces.Dict):
            return {"image": image, "speed": int(self.np_random.integers(3))}
        return image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._label = int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(action == self._label), True, False, {}


def _params(agent):
    return {k: v.clone() for k, v in agent.model.policy.state_dict().items()}


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_tiny_learn_smoke_and_save_load_identical_actions(tmp_path, name):
    agent = make_agent(name, CARTPOLE.observation_space, CARTPOLE.action_space, TINY[name], seed=0)
    agent.learn(gym.make("CartPole-v1"), 128, seed=0)
    assert agent.num_timesteps >= 128
    path = agent.save(tmp_path / "model", replay_buffer=True)
    assert path.suffix == ".pt" and not path.with_suffix(".zip").exists()
    loaded = load_agent(path, CARTPOLE.observation_space, CARTPOLE.action_space)
    assert type(loaded) is type(agent) and loaded.config == agent.config
    assert loaded.num_timesteps == agent.num_timesteps
    observations = [CARTPOLE.observation_space.sample() for _ in range(50)]
    assert [agent.act(o, explore=False) for o in observations] == [loaded.act(o, explore=False) for o in observations]
    # the checkpoint holds everything training depends on (optimizer, counters, RNGs, DQN's replay buffer):
    # training on from it gives exactly the networks that training on without saving gives
    saved = _params(agent)
    for a in (agent, loaded):
        a.learn(gym.make("CartPole-v1"), 128, seed=1, reset_num_timesteps=False)
    trained, resumed = _params(agent), _params(loaded)
    assert all(torch.equal(trained[k], resumed[k]) for k in trained)
    assert not all(torch.equal(trained[k], saved[k]) for k in trained)


def test_same_seed_same_actions():
    def actions(seed):
        agent = make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, TINY["ppo"], seed=seed)
        agent.learn(gym.make("CartPole-v1"), 128, seed=seed)
        obs = np.linspace(-0.2, 0.2, 40, dtype=np.float32).reshape(10, 4)
        return [agent.act(o, explore=True) for o in obs] + [agent.act(o, explore=False) for o in obs]

    assert actions(1) == actions(1)


def test_dqn_explores_with_its_own_generator():
    def actions(global_seed):
        agent = make_agent("dqn", CARTPOLE.observation_space, CARTPOLE.action_space, TINY["dqn"], seed=0)
        agent.model.exploration_rate = 0.5  # SB3 sets it from its schedule while learning
        np.random.seed(global_seed)  # SB3's own DQN.predict would draw from here
        return [agent.act(np.zeros(4, np.float32), explore=True) for _ in range(50)]

    first = actions(0)
    assert first == actions(123)
    assert set(first) == {0, 1}


def test_load_refuses_other_spaces_and_bad_files(tmp_path):
    agent = make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, TINY["ppo"], seed=0)
    path = agent.save(tmp_path / "m.pt")
    with pytest.raises(SpaceMismatchError, match="action_space"):
        PPOAgent.load(path, CARTPOLE.observation_space, gym.spaces.Discrete(3))
    with pytest.raises(CheckpointError, match="holds agent 'ppo'"):
        DQNAgent.load(path)
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: not a readable"):
        PPOAgent.load(tmp_path / "corrupt.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        PPOAgent.load(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"holds a 'mnist_classifier' checkpoint, expected 'perceptgym\.sb3'"):
        PPOAgent.load(SHIPPED["cnn"])


def test_spaces_are_rebuilt_from_the_file(tmp_path):
    env = DigitImageEnv(dict_obs=True)
    agent = make_agent("a2c", env.observation_space, env.action_space, {"features_dim": 16}, seed=0)
    loaded = load_agent(agent.save(tmp_path / "m"))
    assert loaded.observation_space == env.observation_space and loaded.action_space == env.action_space
    obs, _ = env.reset(seed=0)
    assert loaded.act(obs, explore=False) == agent.act(obs, explore=False)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match=r"unknown PPOConfig setting\(s\) \['n_step'\]; valid settings"):
        make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, {"n_step": 8})
    with pytest.raises(ValueError, match="learning_rate='fast'"):
        make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, {"learning_rate": "fast"})
    with pytest.raises(ValueError, match="n_envs=8 envs: pass an env id"):
        make_agent("ppo", CARTPOLE.observation_space, CARTPOLE.action_space, {"n_envs": 8}).learn(
            gym.make("CartPole-v1"), 10
        )


def test_small_cnn_fits_28x28_where_nature_cnn_does_not():
    space = gym.spaces.Box(0, 255, (28, 28), np.uint8)
    features = SmallCnn(space, features_dim=32)(torch.full((5, 28, 28), 255.0))
    assert features.shape == (5, 32)
    assert SmallCnn(gym.spaces.Box(0, 255, (1, 7, 7), np.uint8), 16)(torch.zeros(2, 1, 7, 7)).shape == (2, 16)
    from stable_baselines3.common.torch_layers import NatureCNN

    with pytest.raises(RuntimeError):
        NatureCNN(gym.spaces.Box(0, 255, (1, 28, 28), np.uint8))(torch.zeros(1, 1, 28, 28))


@pytest.mark.parametrize("dict_obs", [False, True])
def test_image_and_dict_observations_build_and_act(dict_obs):
    env = DigitImageEnv(dict_obs)
    agent = make_agent("a2c", env.observation_space, env.action_space, {"features_dim": 16}, seed=0)
    extractor = agent.model.policy.features_extractor
    assert type(extractor).__name__ == ("SmallCombinedExtractor" if dict_obs else "SmallCnn")
    obs, _ = env.reset(seed=0)
    assert agent.act(obs, explore=False) in (0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("dict_obs", [False, True])
def test_image_and_dict_observations_learn(dict_obs):
    env = DigitImageEnv(dict_obs)
    agent = make_agent(
        "ppo",
        env.observation_space,
        env.action_space,
        {"n_steps": 64, "batch_size": 64, "n_epochs": 4, "learning_rate": 3e-3, "features_dim": 32},
        seed=0,
    )
    agent.learn(env, 1024, seed=0)
    env.reset(seed=5)
    correct = 0
    for _ in range(40):
        obs, _ = env.reset()
        correct += env.step(agent.act(obs, explore=False))[1]
    assert correct >= 36

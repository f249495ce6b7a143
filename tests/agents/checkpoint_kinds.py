"""One small example of every kind of file perceptgym writes, for the write-failure tests.

``KINDS[name](folder)`` writes a first version of the file and returns a :class:`Kind`: its path, a function that
writes the file again with other contents (the write a test makes fail halfway), and a function that loads the
file and returns what it holds in comparable form. Used in-process and by a subprocess (``python -c``), so it
imports nothing from the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class Kind:
    path: Path
    write_again: Callable[[], Any]
    read: Callable[[], Any]


def _state(agent: Any) -> list[np.ndarray]:
    import torch

    return [v.detach().numpy().copy() for v in agent.model.policy.state_dict().values() if isinstance(v, torch.Tensor)]


def tabular(folder: Path) -> Kind:
    from perceptgym.agents.tabular import QLearningAgent

    agent = QLearningAgent(gym.spaces.Discrete(500), gym.spaces.Discrete(6), {"initial_q": 1.0}, rng=0)
    path = agent.save(folder / "q.npz")
    agent.set_tables([np.random.default_rng(1).normal(size=(500, 6))])
    return Kind(path, lambda: agent.save(path), lambda: QLearningAgent.load(path).q)


def bandit(folder: Path) -> Kind:
    from perceptgym.agents.bandit import LinUCBAgent
    from perceptgym.agents.base import Transition

    space = gym.spaces.Box(0, 255, (28, 28), np.uint8)
    agent = LinUCBAgent(space, gym.spaces.Discrete(10), rng=0)
    path = agent.save(folder / "linucb.npz")
    agent.update(Transition(np.full((28, 28), 200, np.uint8), 3, 1.0, None, True, False))
    return Kind(path, lambda: agent.save(path), lambda: LinUCBAgent.load(path).model.state()["theta"])


def neural_bandit(folder: Path) -> Kind:
    from perceptgym.agents.bandit import NeuralAgent, NeuralConfig
    from perceptgym.agents.base import Transition

    space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    agent = NeuralAgent(space, gym.spaces.Discrete(3), NeuralConfig(network="mlp", hidden=8, buffer_size=64), rng=0)
    path = agent.save(folder / "neural.npz")
    for i in range(5):
        agent.update(Transition(np.full(8, 0.1 * i, np.float32), i % 3, 1.0, None, True, False))
    return Kind(path, lambda: agent.save(path), lambda: NeuralAgent.load(path).z_inv)


def sb3(folder: Path) -> Kind:
    from perceptgym.agents.sb3 import PPOAgent

    env = gym.make("CartPole-v1")
    agent = PPOAgent(env.observation_space, env.action_space, {"n_steps": 32, "batch_size": 32, "n_epochs": 1}, 0)
    path = agent.save(folder / "ppo.pt")
    agent.learn(env, 32, seed=0)
    return Kind(path, lambda: agent.save(path), lambda: _state(PPOAgent.load(path)))


def sb3_replay_buffer(folder: Path) -> Kind:
    """DQN with its replay buffer: two files, the buffer written first (so it is the write that fails)."""
    from perceptgym.agents.sb3 import DQNAgent

    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, {"buffer_size": 400, "learning_starts": 16}, 0)
    agent.learn(env, 64, seed=0)
    path = agent.save(folder / "dqn.pt", replay_buffer=True)
    agent.learn(env, 64, seed=0)

    def read() -> Any:
        loaded = DQNAgent.load(path)
        return [*_state(loaded), loaded.model.replay_buffer.observations, loaded.model.replay_buffer.pos]

    return Kind(path, lambda: agent.save(path, replay_buffer=True), read)


def classifier(folder: Path) -> Kind:
    from perceptgym.supervised.classifier import ClassifierConfig, DigitClassifier, load_classifier, save_classifier

    model = DigitClassifier(ClassifierConfig(arch="mlp", hidden=16))
    path = save_classifier(folder / "mlp.pt", model)
    next(model.parameters()).data.add_(1.0)
    return Kind(path, lambda: save_classifier(path, model), lambda: _module_arrays(load_classifier(path).model))


def gan(folder: Path) -> Kind:
    from perceptgym.supervised.gan import GanConfig, Generator, load_generator, save_generator

    generator = Generator(GanConfig(z_dim=8, embed_dim=4, g_channels=16, g_channels_14=8, d_channels=8))
    path = save_generator(folder / "generator.pt", generator)
    next(generator.parameters()).data.add_(1.0)
    return Kind(path, lambda: save_generator(path, generator), lambda: _module_arrays(load_generator(path).generator))


def run_files(folder: Path) -> Kind:
    """A run directory's config.json, rewritten first thing when a run is resumed."""
    from perceptgym.agents.playback import load_run
    from perceptgym.agents.training import train_run

    fast = {"progress": False, "tensorboard": False}
    overrides = {"n_episodes": 20, "eval_episodes": 2}
    run_dir = train_run("FrozenLake-v1", "q_learning", seed=0, overrides=overrides, runs_dir=folder, **fast).run_dir

    def read() -> Any:
        run = load_run(run_dir)
        return [run.env_id, run.agent.q, (run_dir / "config.json").read_text()]

    return Kind(run_dir / "config.json", lambda: train_run(resume=run_dir, overrides={"n_episodes": 40}, **fast), read)


def _module_arrays(module: Any) -> list[np.ndarray]:
    return [v.detach().numpy().copy() for v in module.state_dict().values()]


KINDS: dict[str, Callable[[Path], Kind]] = {
    f.__name__: f for f in (tabular, bandit, neural_bandit, sb3, sb3_replay_buffer, classifier, gan, run_files)
}


def same(a: Any, b: Any) -> bool:
    """Deep equality of what ``Kind.read`` returns (lists, arrays, scalars, strings)."""
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))

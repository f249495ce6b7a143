"""No process-wide side effects: building, training, saving and loading every agent, and every trainer, leave
torch's thread count and the global RNGs (``random``, ``np.random``, torch's default generator) as they were."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from perceptgym.agents.bandit import NeuralConfig
from perceptgym.agents.loop import train
from perceptgym.agents.registry import agent_entry, agent_names, load_agent, make_agent
from perceptgym.agents.training import train_run
from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from tests.conftest import StubSource

TINY = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 16, "buffer_size": 200, "batch_size": 8},
    "neural": NeuralConfig(network="mlp", hidden=8, buffer_size=64, refit_every=10),
}
FIELDS = ("random", "np.random", "torch's RNG", "torch's thread count")


def snapshot() -> tuple:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, keys.tobytes(), pos, has_gauss, cached)
    return random.getstate(), numpy_state, torch.get_rng_state(), torch.get_num_threads()


def changed(before: tuple) -> list[str]:
    after = snapshot()
    same = [before[0] == after[0], before[1] == after[1], torch.equal(before[2], after[2]), before[3] == after[3]]
    return [name for name, ok in zip(FIELDS, same, strict=True) if not ok]


@pytest.fixture
def caller_state():
    """A caller with its own seeds and thread count (3: neither the agents' 1 nor the trainers' 2)."""
    threads = torch.get_num_threads()
    random.seed(101)
    np.random.seed(102)
    torch.manual_seed(103)
    torch.set_num_threads(3)
    yield snapshot()
    torch.set_num_threads(threads)


def env_for(kind: str) -> gym.Env:
    if kind == "tabular":
        return gym.make("FrozenLake-v1")
    if kind == "bandit":
        return DigitBanditEnv(obs_mode="pixels", digit_source=StubSource())
    return gym.make("CartPole-v1")


@pytest.mark.parametrize("name", agent_names())
def test_agents_leave_global_state_alone(tmp_path, caller_state, name):
    """Build, a tiny learn, exploring acts, save and load (perception_prior loads the shipped CNN on first use)."""
    kind = agent_entry(name).kind
    env = env_for(kind)
    agent = make_agent(name, env.observation_space, env.action_space, TINY.get(name), seed=0)
    assert changed(caller_state) == [], "build"
    if kind == "sb3":
        agent.learn(env, 64, seed=0)
    else:
        train(env, agent, total_timesteps=40, seed=0)
    assert changed(caller_state) == [], "learn"
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        agent.act(obs, explore=True)
    assert changed(caller_state) == [], "act"
    load_agent(agent.save(tmp_path / name), env.observation_space, env.action_space)
    assert changed(caller_state) == [], "save and load"


def test_agents_seeded_alike_act_alike_whatever_the_caller_did_to_the_global_rngs():
    def run(global_seed: int) -> list[int]:
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        env = gym.make("CartPole-v1")
        agent = make_agent("ppo", env.observation_space, env.action_space, TINY["ppo"], seed=0)
        agent.learn(env, 64, seed=0)
        torch.manual_seed(global_seed + 1)
        obs = np.linspace(-0.1, 0.1, 40, dtype=np.float32).reshape(10, 4)
        return [agent.act(o, explore=True) for o in obs]

    assert run(1) == run(2)


def _digits(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 10
    return StubSource()(labels, np.random.default_rng(0)), labels.astype(np.int64)


def test_classifier_training_leaves_global_state_alone(caller_state):
    from perceptgym.supervised.classifier import ClassifierConfig, TrainConfig
    from perceptgym.supervised.classifier import train as train_classifier

    images, labels = _digits()
    train_classifier(
        ClassifierConfig(arch="mlp", hidden=16), TrainConfig(epochs=1, batch_size=32, threads=1), images, labels
    )
    assert changed(caller_state) == []


def test_gan_training_leaves_global_state_alone(caller_state):
    from perceptgym.supervised.gan import GanConfig, GanTrainConfig, train_gan

    images, labels = _digits()
    model = GanConfig(z_dim=8, embed_dim=4, g_channels=16, g_channels_14=8, d_channels=8)
    train_gan(model, GanTrainConfig(steps=2, batch_size=16, seed=3, bn_batches=2, threads=1), images, labels)
    assert changed(caller_state) == []


@pytest.mark.parametrize(
    ("env_id", "agent", "overrides"),
    [
        ("FrozenLake-v1", "q_learning", {"n_episodes": 20, "eval_episodes": 2}),
        ("CartPole-v1", "ppo", {"n_timesteps": 64, "eval_episodes": 1, **TINY["ppo"]}),
        ("CartPole-v1", "dqn", {"n_timesteps": 64, "eval_episodes": 1, **TINY["dqn"]}),
    ],
)
def test_train_run_leaves_global_state_alone(tmp_path, caller_state, env_id, agent, overrides):
    train_run(env_id, agent, seed=0, overrides=overrides, runs_dir=tmp_path, progress=False, tensorboard=True)
    assert changed(caller_state) == []


def test_perception_models_leave_global_state_alone(caller_state):
    """The readers and digit sources the envs load lazily (the shipped CNN, the shipped GAN)."""
    import perceptgym  # noqa: F401  (registers the envs)
    from perceptgym.supervised.gan import GanSource
    from perceptgym.supervised.perception import load_reader

    load_reader("cnn")(np.zeros((2, 28, 28), np.uint8))
    GanSource("gan")(np.arange(10), np.random.default_rng(0))
    env = gym.make("perceptgym/DigitBandit-v0", obs_mode="perceived", digit_source="gan")
    env.reset(seed=0)
    env.step(0)
    assert changed(caller_state) == []


PLOTS = """
import sys
import numpy as np
import matplotlib
from pathlib import Path
from perceptgym.agents.experiments import bandit_sweep, curves, demo, ladder
from perceptgym.supervised.plots import plot_confusion

out = Path(sys.argv[1])
grid = np.arange(10.0)
curves.plot_curves({"Taxi__q": (grid, np.stack([grid, grid + 1]))}, out / "curves.png", "episode")
demo.plot_learning({"symbolic": np.linspace(-1, 1, 100)}, 0.9, out / "learning.png")
stat = {"mean": 0.5, "low": 0.4, "high": 0.6}
protocol = {k: stat for k in ("normalised_score", "success_rate", "wrong_stop_rate")}
ladder.plot_ladder({"rungs": {"a": [], "b": []}, "protocol": {"a": protocol, "b": protocol}, "args": {"seeds": [0]}},
                   out / "ladder.png")
settings = bandit_sweep.BanditSweep(agents=("uniform",), rounds=20, seeds=(0, 1), moving_average=5, permute_every=10)
regret = {"uniform": np.random.default_rng(0).random((2, 20))}
bandit_sweep.plot_cumulative(out / "cumulative.png", settings, regret)
bandit_sweep.plot_per_round(out / "per_round.png", settings, regret)
plot_confusion(np.eye(10, dtype=int) * 9, out / "confusion.png")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_writing_plots_leaves_matplotlib_backend_alone(tmp_path):
    """Every plot we write draws on a Figure of its own: a caller's backend (here svg) is still theirs after."""
    import os
    import subprocess
    import sys

    from PIL import Image

    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run(
        [sys.executable, "-c", PLOTS, str(tmp_path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg", "False"]  # the backend is the caller's, and pyplot was never imported
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["confusion.png", "cumulative.png", "curves.png", "ladder.png", "learning.png", "per_round.png"]
    for name in names:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 300

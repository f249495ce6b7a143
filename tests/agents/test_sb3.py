"""The stable-baselines3 adapter: smoke learning, checkpoints, determinism, small images and dict observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from perceptgym.agents.base import CheckpointError, SpaceMismatchError
from perceptgym.agents.registry import load_agent, make_agent
from perceptgym.agents.sb3 import FORMAT, FORMAT_VERSION, DQNAgent, PPOAgent, SmallCnn
from perceptgym.supervised.checkpoint import load_checkpoint
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


# ---- the digit encoder's shortcuts: the same features, computed once per distinct image -------------------------
DIGIT = gym.spaces.Box(0, 255, (28, 28), np.uint8)
DRIVING_DICT = gym.spaces.Dict({"card": DIGIT, "sign": DIGIT, "state": gym.spaces.Discrete(50)})


def _digit_images(n: int, distinct: int, seed: int = 0) -> torch.Tensor:
    """n float images (what SB3's preprocessing hands an extractor) drawn from ``distinct`` different ones."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(distinct, 28, 28)).astype(np.float32)
    pool[0] = 0.0  # a blank sign
    return torch.as_tensor(pool[rng.integers(distinct, size=n)])


def _driving_obs(n: int, seed: int) -> dict[str, torch.Tensor]:
    """A batch of preprocessed dict observations (one-hot state, as SB3 gives it)."""
    from stable_baselines3.common.preprocessing import preprocess_obs

    rng = np.random.default_rng(seed)
    raw = {
        "card": torch.as_tensor(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)),
        "sign": torch.as_tensor(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)),
        "state": torch.as_tensor(rng.integers(0, 50, size=n)),
    }
    raw["sign"][: n // 2] = 0
    return preprocess_obs(raw, DRIVING_DICT)


def test_encode_distinct_gives_the_features_and_gradients_of_encoding_every_image():
    from perceptgym.agents.sb3 import encode_distinct

    torch.manual_seed(0)
    encoder = SmallCnn(DIGIT, features_dim=16)
    images = _digit_images(200, distinct=7)
    every, shared = encoder(images), encode_distinct(encoder, images)
    assert shared.shape == (200, 16)
    torch.testing.assert_close(shared, every)
    weights = torch.randn(200, 16)  # a loss that weighs every row differently
    grads_every = torch.autograd.grad((every * weights).sum(), list(encoder.parameters()))
    grads_shared = torch.autograd.grad((shared * weights).sum(), list(encoder.parameters()))
    for a, b in zip(grads_every, grads_shared, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    distinct = _digit_images(30, distinct=10_000)  # no repeats: the plain call
    assert torch.equal(encode_distinct(encoder, distinct), encoder(distinct))
    as_uint8 = images.to(torch.uint8)
    torch.testing.assert_close(encode_distinct(encoder, as_uint8), encoder(as_uint8))


def test_digit_encoder_memo_reuses_rows_only_while_images_and_weights_are_unchanged():
    """Collection calls (no grad, eval mode) reuse the last step's features of unchanged rows; never stale ones."""
    from perceptgym.agents.sb3 import DigitDictExtractor

    torch.manual_seed(0)
    extractor = DigitDictExtractor(DRIVING_DICT, digit_dim=16, state_dim=8, fused_dim=32).eval()
    reference = DigitDictExtractor(DRIVING_DICT, digit_dim=16, state_dim=8, fused_dim=32).eval()

    def fresh(obs):  # the same weights, no memo
        reference.load_state_dict(extractor.state_dict())
        reference._memo = type(extractor._memo)()
        return reference(obs)

    first = _driving_obs(12, seed=1)
    changed = {k: v.clone() for k, v in first.items()}
    changed["card"][3] = 255.0 - changed["card"][3]
    changed["sign"][7] = 0.0
    encoded: list[int] = []  # rows the encoder ran on, per call
    extractor.digits.register_forward_hook(lambda module, args, out: encoded.append(len(args[0])))
    with torch.no_grad():
        for obs in (first, first, changed):
            torch.testing.assert_close(extractor(obs), fresh(obs))
        assert encoded == [19, 2]  # 12 cards, 6 signs, one blank sign; then nothing; the changed card and sign
        assert torch.equal(extractor._memo.images[:12], changed["card"])
        extractor.digits.linear[0].weight.data.mul_(0.5)  # an edit no version counter sees
        torch.testing.assert_close(extractor(changed), fresh(changed))
        extractor.load_state_dict(DigitDictExtractor(DRIVING_DICT, 16, 8, 32).state_dict())
        torch.testing.assert_close(extractor(changed), fresh(changed))
    out = extractor(changed)  # with gradients: computed afresh, part of the graph
    assert out.requires_grad
    extractor.train()
    with torch.no_grad():
        extractor._memo = type(extractor._memo)()
        extractor(first)
        assert extractor._memo.images is None  # training mode is never memoised


def test_digit_encoder_keeps_its_parameters_and_reads_the_state_by_index():
    """The shortcuts add no parameter or state-dict entry (checkpoints stay loadable); the Discrete state's
    embedding row is exactly what the linear layer gives on SB3's one-hot."""
    from perceptgym.agents.sb3 import DigitDictExtractor

    torch.manual_seed(0)
    extractor = DigitDictExtractor(DRIVING_DICT, digit_dim=16, state_dim=8, fused_dim=32)
    cnn = 1 * 32 * 25 + 32 + 32 * 64 * 9 + 64 + 64 * 25 * 16 + 16
    assert sum(p.numel() for p in extractor.parameters()) == cnn + 50 * 8 + (2 * 16 + 8) * 32 + 32
    assert set(extractor.state_dict()) == {
        "digits.cnn.0.weight", "digits.cnn.0.bias", "digits.cnn.2.weight", "digits.cnn.2.bias",
        "digits.linear.0.weight", "digits.linear.0.bias", "state.weight", "fuse.0.weight", "fuse.0.bias",
    }  # fmt: skip
    obs = _driving_obs(9, seed=2)
    digits = extractor.digits(torch.cat([obs["card"], obs["sign"]]))
    by_matmul = extractor.fuse(torch.cat([digits[:9], digits[9:], extractor.state(obs["state"])], dim=1))
    torch.testing.assert_close(extractor(obs), by_matmul)


def test_an_exported_run_is_small_and_acts_as_the_run(tmp_path):
    """perceptgym export: the policy alone in float16, opened like the run directory, the same greedy actions."""
    from perceptgym.agents.loop import evaluate
    from perceptgym.agents.playback import export_run, load_run
    from perceptgym.agents.training import train_run

    overrides = {"n_timesteps": 2_000, "n_envs": 2, "n_steps": 64, "batch_size": 64, "eval_episodes": 0}
    run = train_run(
        "CartPole-v1", "ppo", seed=0, runs_dir=tmp_path, overrides=overrides, progress=False, tensorboard=False
    )
    model = export_run(run.run_dir, tmp_path / "shipped")
    assert model == tmp_path / "shipped" / "model.pt"
    assert model.stat().st_size < (run.run_dir / "model.pt").stat().st_size / 2.5  # no optimiser, half the bytes
    original, shipped = load_run(run.run_dir), load_run(tmp_path / "shipped")
    assert shipped.env_id == "CartPole-v1"
    a, b = (evaluate(r.agent, r.env, 5, seed=3) for r in (original, shipped))
    assert a.mean_return == b.mean_return and a.success_rate == b.success_rate
    for r in (original, shipped):
        r.env.close()
    with pytest.raises(CheckpointError, match="holds a run already"):
        export_run(run.run_dir, tmp_path / "shipped")


def test_a_dqn_saved_for_inference_leaves_out_its_target_network_and_loads_it_as_a_copy(tmp_path):
    """The shipped file holds the Q-network once; loaded, the target network equals it and the actions are kept."""
    env = gym.make("CartPole-v1")
    agent = make_agent("dqn", env.observation_space, env.action_space, seed=0)
    with torch.no_grad():
        for p in agent.model.policy.q_net.parameters():
            p.add_(torch.randn_like(p))  # online and target networks differ, as after training
    full, small = agent.save(tmp_path / "full"), agent.save(tmp_path / "small", inference=True)
    stored = load_checkpoint(small, FORMAT, FORMAT_VERSION)["params"]["policy"]
    assert stored and not any(k.startswith("q_net_target.") for k in stored)
    assert all(v.dtype == torch.float16 for v in stored.values())
    assert small.stat().st_size < full.stat().st_size / 2
    loaded = DQNAgent.load(small, env.observation_space, env.action_space)
    policy = loaded.model.policy
    online, target = policy.q_net.state_dict(), policy.q_net_target.state_dict()
    assert list(online) == list(target)
    for key in online:
        torch.testing.assert_close(online[key], target[key])
    for original, half in zip(agent.model.policy.q_net.parameters(), policy.q_net.parameters(), strict=True):
        torch.testing.assert_close(original, half, atol=1e-2, rtol=1e-2)
    observations = [env.observation_space.sample() for _ in range(32)]
    same = [loaded.act(o, explore=False) == agent.act(o, explore=False) for o in observations]
    assert np.mean(same) > 0.9
    env.close()

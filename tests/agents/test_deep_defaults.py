"""Deep agents out of the box on small envs: DQN's defaults, and MaskablePPO on GridDriving's action mask."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from perceptgym.agents.env_factory import make_env
from perceptgym.agents.loop import evaluate
from perceptgym.agents.registry import agent_entry, make_agent
from perceptgym.agents.sb3 import DQNConfig, MaskablePPOAgent, VecActionMasks
from perceptgym.agents.training import load_hyperparams
from perceptgym.agents.vec_env import make_sb3_vec_env

GRID = "perceptgym/GridDriving-v0"


@pytest.mark.slow(seconds=33)
def test_dqn_defaults_reach_the_optimum_on_cliff_walking():
    """SB3's Atari defaults (target every 10,000 steps, exploration over 10% of the run) never find the goal here."""
    assert load_hyperparams("dqn", "CliffWalking-v1").keys() <= {"n_timesteps", "eval_episodes"}  # no tuned entry
    env = gym.make("CliffWalking-v1", max_episode_steps=200)
    agent = make_agent("dqn", env.observation_space, env.action_space, DQNConfig(), seed=0)
    agent.learn(env, 30_000)
    result = evaluate(agent, gym.make("CliffWalking-v1", max_episode_steps=200), 3, seed=0)
    assert result.mean_return == -13.0  # the shortest safe path (Sutton & Barto, Example 6.6)


def test_maskable_ppo_is_registered_with_its_recipe():
    entry = agent_entry("maskable_ppo")
    assert entry.kind == "sb3"
    recipe = load_hyperparams("maskable_ppo", GRID)
    assert recipe["env_kwargs"] == {"obs_mode": "dict"}
    assert {k: v for k, v in recipe.items() if k != "n_timesteps"} == {
        k: v for k, v in load_hyperparams("ppo", GRID).items() if k != "n_timesteps"
    }  # beside plain PPO: the same recipe, only the mask differs


def test_vec_action_masks_follow_each_envs_current_state():
    vec = VecActionMasks(make_sb3_vec_env(GRID, 3, 0, {"env_kwargs": {"obs_mode": "dict"}}))
    try:
        vec.reset()
        rng = np.random.default_rng(0)
        single = make_env(GRID, {"obs_mode": "dict"})
        table = single.unwrapped.model.tables_list.masks  # the valid actions of each base state
        seen_invalid = False
        for _ in range(60):
            obs = vec.step(rng.integers(0, 5, size=3))[0]
            masks = np.stack(vec.env_method("action_masks"))
            expected = np.asarray([table[s] for s in obs["state"]], dtype=bool)
            np.testing.assert_array_equal(masks, expected)  # also right after an autoreset
            seen_invalid |= not masks.all()
        assert seen_invalid and vec.has_attr("action_masks")
    finally:
        vec.close()


def test_maskable_ppo_trains_on_the_native_vector_env_and_acts_within_the_mask(tmp_path):
    env = make_env(GRID, {"obs_mode": "dict"})
    config = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "n_epochs": 1}
    agent = make_agent("maskable_ppo", env.observation_space, env.action_space, config, seed=0)
    agent.learn(make_sb3_vec_env(GRID, 2, 0, {"env_kwargs": {"obs_mode": "dict"}}), 128)
    assert isinstance(agent.model.env, VecActionMasks) and agent.num_timesteps == 128
    obs, info = env.reset(seed=1)
    invalid_unmasked = 0
    for _ in range(200):
        mask = info["action_mask"].astype(bool)
        for explore in (True, False):
            assert mask[agent.act(obs, explore=explore, action_mask=mask)]
        invalid_unmasked += not mask[agent.act(obs, explore=True)]
        obs, _, terminated, truncated, info = env.step(agent.act(obs, explore=True, action_mask=mask))
        if terminated or truncated:
            obs, info = env.reset()
    assert invalid_unmasked > 0  # without the mask it is a policy over all actions: the mask is what kept it valid
    path = agent.save(tmp_path / "model")
    again = MaskablePPOAgent.load(path, env.observation_space, env.action_space)
    obs, info = env.reset(seed=2)
    assert again.act(obs, action_mask=info["action_mask"]) == agent.act(obs, action_mask=info["action_mask"])
    env.close()


class CheckActions(gym.Wrapper):
    """Counts the actions taken that the state's ``info["action_mask"]`` forbids (and all actions taken)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.taken = self.forbidden = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.mask = info["action_mask"].astype(bool)
        return obs, info

    def step(self, action):
        self.taken += 1
        self.forbidden += not self.mask[action]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.mask = info["action_mask"].astype(bool)
        return obs, reward, terminated, truncated, info


class MasksOnly(gym.Wrapper):
    """Hides ``info["action_mask"]`` and offers the mask as ``action_masks()`` (sb3-contrib's convention)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.mask = info.pop("action_mask")
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.mask = info.pop("action_mask")
        return obs, reward, terminated, truncated, info

    def action_masks(self):
        return self.mask.astype(bool)


def test_a_masked_agent_is_evaluated_within_the_mask():
    """evaluate and evaluate_driving pass the env's mask (from info or action_masks()) to an agent that uses it."""
    from perceptgym.agents.experiments.driving import evaluate_driving

    env = make_env(GRID, {"obs_mode": "dict"})
    agent = make_agent("maskable_ppo", env.observation_space, env.action_space, {}, seed=0)  # untrained
    for wrap in (lambda e: e, MasksOnly):
        checked = CheckActions(make_env(GRID, {"obs_mode": "dict"}))
        evaluate(agent, wrap(checked), 5, seed=0)
        evaluate_driving(agent, wrap(checked), 5, seed=1)
        assert checked.taken > 10 and checked.forbidden == 0
    # Asked without a mask, the same policy picks forbidden actions on these trips: the mask kept it valid.
    obs, info = env.reset(seed=0)
    forbidden = 0
    for _ in range(100):
        mask = info["action_mask"].astype(bool)
        forbidden += not mask[agent.act(obs)]
        obs, _, terminated, truncated, info = env.step(agent.act(obs, action_mask=mask))
        if terminated or truncated:
            obs, info = env.reset()
    assert forbidden > 0
    env.close()


def assert_learns_and_reloads(agent, env, obs, folder):
    """A short update, a save and a load: the reloaded agent acts as the saved one."""
    from perceptgym.agents.sb3 import PPOAgent

    agent.learn(env, 32)
    again = PPOAgent.load(agent.save(folder / "model"), env.observation_space, env.action_space)
    assert again.act(obs) == agent.act(obs)


def test_digit_encoder_reads_card_and_sign_with_one_network(tmp_path):
    import torch

    from perceptgym.agents.sb3 import DigitDictExtractor

    env = make_env(GRID, {"obs_mode": "dict"})
    config = {"n_envs": 1, "n_steps": 16, "batch_size": 16, "features_extractor": "digit_encoder", "features_dim": 32}
    agent = make_agent("ppo", env.observation_space, env.action_space, config, seed=0)
    extractor = agent.model.policy.features_extractor
    assert isinstance(extractor, DigitDictExtractor) and extractor.images == ["card", "sign"]
    # one set of convolution weights for both images: what it learns reading cards, it knows on signs
    assert sum(isinstance(m, torch.nn.Conv2d) for m in extractor.modules()) == 2
    obs, _ = env.reset(seed=0)
    assert_learns_and_reloads(agent, env, obs, tmp_path)
    with pytest.raises(ValueError, match="digit_encoder"):
        make_agent("ppo", gym.spaces.Discrete(4), gym.spaces.Discrete(2), {"features_extractor": "digit_encoder"})
    env.close()


def test_digit_slots_mix_one_state_table_per_card_reading(tmp_path):
    import torch

    from perceptgym.agents.sb3 import DigitSlotsExtractor

    env = make_env(GRID, {"obs_mode": "dict"})
    config = {"n_envs": 1, "n_steps": 16, "batch_size": 16, "features_extractor": "digit_slots", "features_dim": 8}
    agent = make_agent("ppo", env.observation_space, env.action_space, {**config, "n_slots": 4}, seed=0)
    extractor = agent.model.policy.features_extractor
    assert isinstance(extractor, DigitSlotsExtractor) and extractor.images == ["card", "sign"]
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(np.asarray(v)[None]) for k, v in obs.items()}
    batch["state"] = torch.nn.functional.one_hot(batch["state"].long(), env.observation_space["state"].n).float()
    with torch.no_grad():
        features = extractor(batch)
        reading = torch.softmax(extractor.slots(extractor.digits(batch["card"])), dim=1)
        state = extractor.state.weight[int(obs["state"])]
    assert features.shape == (1, 8 * 4 + 8 + 4 + 1)
    # the state embedding scaled by each slot's probability: a linear head on it mixes per-slot tables
    torch.testing.assert_close(features[0, :32].reshape(8, 4), state[:, None] * reading[0][None, :])
    torch.testing.assert_close(features[0, 32:40], state)  # and the state alone, for what every goal shares
    assert_learns_and_reloads(agent, env, obs, tmp_path)
    with pytest.raises(ValueError, match="digit_slots"):
        make_agent("ppo", gym.spaces.Discrete(4), gym.spaces.Discrete(2), {"features_extractor": "digit_slots"})
    with pytest.raises(ValueError, match="card"):  # a Dict without the card key
        space = gym.spaces.Dict({"state": gym.spaces.Discrete(3), "sign": env.observation_space["sign"]})
        make_agent("ppo", space, env.action_space, {"features_extractor": "digit_slots"})
    with pytest.raises(ValueError, match="pretrained_encoder"):
        make_agent("ppo", env.observation_space, env.action_space, {"pretrained_encoder": "cnn"})
    env.close()


@pytest.mark.parametrize(
    "agent_name, config",
    [
        ("ppo", {"n_envs": 1, "n_steps": 16, "batch_size": 16, "features_extractor": "digit_slots"}),
        ("dqn", {"buffer_size": 64, "batch_size": 16, "features_extractor": "digit_table"}),
    ],
)
def test_pretrained_encoder_is_the_shipped_cnns_trained_layers_frozen(agent_name, config):
    import torch

    from perceptgym.agents.sb3 import FrozenDigitFeatures
    from perceptgym.supervised.classifier import load_classifier
    from perceptgym.supervised.data import load_mnist
    from perceptgym.supervised.perception import SHIPPED

    env = make_env(GRID, {"obs_mode": "dict"})
    agent = make_agent(
        agent_name, env.observation_space, env.action_space, {**config, "pretrained_encoder": "cnn"}, seed=0
    )
    policy = agent.model.policy
    extractor = policy.q_net.features_extractor if agent_name == "dqn" else policy.features_extractor
    encoder = extractor.digits[0]
    assert isinstance(encoder, FrozenDigitFeatures) and not list(encoder.parameters())  # nothing to optimise
    test_images, test_labels = load_mnist(verbose=False).split("test")
    images = torch.from_numpy(test_images[:256])
    loaded = load_classifier(SHIPPED["cnn"])
    with torch.no_grad():  # SB3's orthogonal initialisation of the policy left the trained weights alone
        expected = loaded.model.features(loaded.preprocess(images))
        torch.testing.assert_close(encoder(images), expected, atol=1e-4, rtol=1e-4)
        logits = loaded.model.head(encoder(images))
    assert (logits.argmax(1).numpy() == test_labels[:256]).mean() > 0.98
    env.close()


@pytest.mark.slow(seconds=140)
def test_a_short_run_of_the_dqn_slot_table_recipe_learns_to_read_and_drive(tmp_path):
    """dqn.yml's GridDriving-v0 recipe (the top rung's) on the native vector env, 150k steps (its exploration
    schedule scaled with the budget, as the ladder scales it): greedy success on unseen handwriting rises from
    the untrained policy's (seeded: the same numbers every run)."""
    from perceptgym.agents.experiments.driving import evaluate_driving, train_driving
    from perceptgym.agents.playback import load_run
    from perceptgym.agents.training import split_hyperparams

    run = train_driving("dqn", {"obs_mode": "dict"}, seed=0, runs_dir=tmp_path, budget=150_000)
    trained = load_run(run.run_dir, env_kwargs={"digit_source": "mnist-test"})
    _, config = split_hyperparams("dqn", load_hyperparams("dqn", GRID))
    untrained = make_agent("dqn", trained.env.observation_space, trained.env.action_space, config, seed=0)
    before = evaluate_driving(untrained, trained.env, 200, seed=10_000)
    after = evaluate_driving(trained.agent, trained.env, 200, seed=10_000)
    trained.env.close()
    print(f"untrained {before}\ntrained {after}")
    assert after["success_rate"] >= before["success_rate"] + 0.1
    assert after["mean_return"] > before["mean_return"]


def test_digit_table_dqn_is_one_q_table_per_card_slot_updated_as_q_learning(tmp_path):
    import torch

    from perceptgym.agents.sb3 import DQNAgent
    from perceptgym.agents.slot_table import CardSlots, SlotTableQNetwork

    env = make_env(GRID, {"obs_mode": "dict"})
    config = {"features_extractor": "digit_table", "features_dim": 8, "n_slots": 4, "batch_size": 16}
    config.update(learning_starts=0, train_freq=1, table_alpha=0.25, buffer_size=1000)
    agent = make_agent("dqn", env.observation_space, env.action_space, config, seed=0)
    q_net = agent.model.policy.q_net
    assert isinstance(q_net, SlotTableQNetwork) and isinstance(q_net.features_extractor, CardSlots)
    assert q_net.table.shape == (env.observation_space["state"].n, 4 + 1, env.action_space.n)
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(np.asarray(v)[None]) for k, v in obs.items()}
    q_net.set_training_mode(False)
    with torch.no_grad():
        q_net.table.normal_()
        weights = q_net.features_extractor({"card": batch["card"]})
        q = q_net(batch)
    assert weights.shape == (1, 5) and float(weights[0, -1]) == 1.0  # the card's slot weights, then the shared table
    torch.testing.assert_close(weights[0, :4].sum(), torch.tensor(1.0))
    torch.testing.assert_close(q[0], weights[0] @ q_net.table[int(obs["state"])])

    # the tables take a plain gradient step of table_alpha * batch_size (Q-learning's update), the rest Adam
    optimizer = agent.model.policy.optimizer
    table_group = next(g for g in optimizer.param_groups if "table_step" in g)
    assert table_group["params"] == [q_net.table] and table_group["table_step"] == 0.25 * 16
    before = q_net.table.detach().clone()
    optimizer.zero_grad()
    q_net.set_training_mode(True)
    loss = q_net({k: v.repeat(16, *([1] * (v.dim() - 1))) for k, v in batch.items()})[:, 2].mean()
    loss.backward()
    grad = q_net.table.grad.clone()
    optimizer.step()
    torch.testing.assert_close(q_net.table.detach(), before - 4.0 * grad)
    assert optimizer.state[q_net.table] == {}  # no Adam moments for the tables
    for group in optimizer.param_groups:  # the step follows the learning-rate schedule (SB3 sets every lr)
        group["lr"] /= 2
    before = q_net.table.detach().clone()
    q_net.table.grad = grad.clone()
    optimizer.step()
    torch.testing.assert_close(q_net.table.detach(), before - 2.0 * grad)

    agent.learn(env, 64)
    again = DQNAgent.load(agent.save(tmp_path / "model"), env.observation_space, env.action_space)
    assert again.act(obs) == agent.act(obs)

    # double_q: the target network values the action the online network picks (SB3 takes the max of its output)
    double = make_agent("dqn", env.observation_space, env.action_space, {**config, "double_q": True}, seed=0)
    policy = double.model.policy
    assert len(list(policy.q_net_target.parameters())) == len(list(policy.q_net.parameters()))  # no shared weights
    with torch.no_grad():
        policy.q_net.table.normal_(generator=torch.Generator().manual_seed(1))
        policy.q_net_target.table.normal_(generator=torch.Generator().manual_seed(2))
        policy.set_training_mode(False)
        online, target = policy.q_net(batch), policy.q_net_target.q_values(batch)
        assert int(target.argmax()) != int(online.argmax())  # the seeds above make the two disagree
        torch.testing.assert_close(policy.q_net_target(batch), target[:, online.argmax(1)].expand_as(target))
    with pytest.raises(ValueError, match="dqn only"):
        make_agent("ppo", env.observation_space, env.action_space, {"features_extractor": "digit_table"})
    with pytest.raises(ValueError, match="card"):
        space = gym.spaces.Dict({"state": gym.spaces.Discrete(3), "sign": env.observation_space["sign"]})
        make_agent("dqn", space, env.action_space, {"features_extractor": "digit_table"})
    with pytest.raises(ValueError, match="table_alpha"):
        DQNConfig(table_alpha=0.0)
    env.close()

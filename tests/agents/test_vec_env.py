"""VectorEnvAdapter: SB3's VecEnv over Gymnasium 1.x vector envs, checked against SB3's own DummyVecEnv."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import perceptgym.envs  # noqa: F401 - registers the envs
from perceptgym.agents.registry import make_agent
from perceptgym.agents.vec_env import VectorEnvAdapter, has_sb3_vector_env, make_sb3_vec_env, unbatch_info
from tests.conftest import StubReader, StubSource

GRID = "perceptgym/GridDriving-v0"
BANDIT = "perceptgym/DigitBandit-v0"


def grid_kwargs(obs_mode: str = "symbolic", **kwargs) -> dict:
    return {"obs_mode": obs_mode, "digit_source": StubSource(), "reader": StubReader(), **kwargs}


def native(n: int, env_id: str = GRID, **kwargs) -> VectorEnvAdapter:
    return VectorEnvAdapter(gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs))


def dummy(n: int, seed: int, **kwargs) -> VecEnv:
    """What SB3 builds from an id: n Monitor-wrapped gym.make envs in a DummyVecEnv, env i seeded seed + i."""
    return make_vec_env(GRID, n_envs=n, seed=seed, env_kwargs=kwargs)


def check_vecenv_contract(vec: VecEnv, n_steps: int, seed: int) -> int:
    """SB3's VecEnv contract, step by step (the checks SB3's env_checker makes of one env, batched)."""
    n, space = vec.num_envs, vec.observation_space
    assert vec.seed(seed) == [seed + i for i in range(n)]
    obs = vec.reset()
    rng = np.random.default_rng(seed)
    ends = 0

    def rows(batch):
        return [{k: v[i] for k, v in batch.items()} if isinstance(batch, dict) else batch[i] for i in range(n)]

    assert all(space.contains(o) for o in rows(obs))
    assert len(vec.reset_infos) == n
    for _ in range(n_steps):
        vec.step_async(rng.integers(vec.action_space.n, size=n))
        obs, rewards, dones, infos = vec.step_wait()
        assert all(space.contains(o) for o in rows(obs))
        assert rewards.shape == (n,) and rewards.dtype == np.float32
        assert dones.shape == (n,) and dones.dtype == bool
        assert isinstance(infos, list) and len(infos) == n and all(isinstance(i, dict) for i in infos)
        for info, done in zip(infos, dones, strict=True):
            assert isinstance(info["TimeLimit.truncated"], bool)
            assert ("terminal_observation" in info) == done == ("episode" in info)
            if done:
                assert space.contains(info["terminal_observation"])
                assert set(info["episode"]) == {"r", "l", "t"} and info["episode"]["l"] >= 1
                ends += 1
    return ends


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        (GRID, grid_kwargs("symbolic", max_episode_steps=10)),
        (GRID, grid_kwargs("dict")),
        (GRID, grid_kwargs("pixels", map="tiny")),
        (BANDIT, {"obs_mode": "pixels", "digit_source": StubSource()}),
    ],
)
def test_adapter_keeps_sb3_s_vecenv_contract(env_id, kwargs):
    vec = native(4, env_id, **kwargs)
    assert vec.observation_space == vec.env.single_observation_space
    assert vec.action_space == vec.env.single_action_space
    assert check_vecenv_contract(vec, 40, seed=3) >= 4
    assert vec.get_attr("render_mode") == [None] * 4
    assert vec.env_is_wrapped(Monitor) == [True] * 4 and vec.env_is_wrapped(gym.Wrapper) == [False] * 4
    assert vec.env_method("reset", seed=1, indices=[0])[0][0] is not None  # one call, for the batch
    vec.close()


@pytest.mark.parametrize("obs_mode", ["symbolic", "dict"])
def test_adapter_equals_dummy_vec_env_with_the_same_seeds(obs_mode):
    """obs, rewards, dones and every info SB3 reads, step by step, against DummyVecEnv of single envs."""
    n, seed = 5, 11
    kwargs = grid_kwargs(obs_mode, map="tiny", progress=0.05)
    a = native(n, max_episode_steps=15, **kwargs)
    b = make_vec_env(GRID, n_envs=n, seed=seed, env_kwargs={**kwargs, "max_episode_steps": 15})
    a.seed(seed)
    assert data_equivalence(a.reset(), dict(b.reset()) if obs_mode == "dict" else b.reset())
    rng = np.random.default_rng(0)
    ended = 0
    for step in range(120):
        actions = rng.integers(5, size=n)
        obs_a, rew_a, done_a, infos_a = a.step(actions)
        obs_b, rew_b, done_b, infos_b = b.step(actions)
        assert data_equivalence(obs_a, dict(obs_b) if obs_mode == "dict" else obs_b), step
        assert np.array_equal(rew_a, rew_b) and rew_a.dtype == rew_b.dtype
        assert np.array_equal(done_a, done_b)
        for i, (ia, ib) in enumerate(zip(infos_a, infos_b, strict=True)):
            for key in ("reward_terms", "action_mask", "card", "event", "is_success", "TimeLimit.truncated"):
                assert (key in ia) == (key in ib) and data_equivalence(ia.get(key), ib.get(key)), (step, i, key)
            if done_b[i]:
                assert data_equivalence(ia["terminal_observation"], ib["terminal_observation"])
                assert ia["episode"]["r"] == ib["episode"]["r"] and ia["episode"]["l"] == ib["episode"]["l"]
                assert data_equivalence(a.reset_infos[i]["stop_numbers"], b.reset_infos[i]["stop_numbers"])
        ended += int(done_a.sum())
    assert ended >= 20


@pytest.mark.parametrize(("obs_mode", "extractor"), [("symbolic", "auto"), ("dict", "auto"), ("dict", "digit_encoder")])
def test_ppo_on_the_adapter_learns_as_on_dummy_vec_env(obs_mode, extractor):
    """Same seeds: the same first rollout buffer, and the same policy after the update it trains."""
    n, seed = 4, 5
    config = {"n_envs": n, "n_steps": 32, "batch_size": 64, "n_epochs": 2, "features_dim": 16}
    config["features_extractor"] = extractor
    settings = {"env_kwargs": grid_kwargs(obs_mode, map="tiny"), "max_episode_steps": 20}
    vec_native = make_sb3_vec_env(GRID, n, seed=seed, settings=settings)
    vec_dummy = dummy(n, seed, **settings["env_kwargs"], max_episode_steps=20)
    assert isinstance(vec_native, VectorEnvAdapter) and isinstance(vec_dummy, DummyVecEnv)
    agents = []
    for vec in (vec_native, vec_dummy):
        agent = make_agent("ppo", vec.observation_space, vec.action_space, config, seed=seed)
        agent.learn(vec, n * 32, seed=seed)
        agents.append(agent)
    ra, rb = (agent.model.rollout_buffer for agent in agents)
    for key in ("actions", "rewards", "returns", "episode_starts", "values", "log_probs", "advantages"):
        assert np.array_equal(getattr(ra, key), getattr(rb, key)), key
    assert data_equivalence(ra.observations, rb.observations)
    assert ra.episode_starts[1:].any()  # episodes ended (and restarted) within the rollout
    for pa, pb in zip(agents[0].model.policy.parameters(), agents[1].model.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_pixels_rung_recipe_is_the_fast_one_and_reproducible():
    """ppo.yml's GridDriving-v0 entry (the pixels rung's recipe, PIXELS_PPO of the benchmark): 64 native envs and
    the digit-slots network, trained with the progress term; the same seed gives the same rollouts and weights,
    and the caller's torch thread count comes back."""
    from perceptgym.agents.sb3 import DigitSlotsExtractor
    from perceptgym.agents.training import load_hyperparams, split_hyperparams

    run, config = split_hyperparams("ppo", load_hyperparams("ppo", GRID))
    assert config.n_envs >= 64 and config.features_extractor == "digit_slots"
    assert run.env_kwargs == {"obs_mode": "dict"} and set(run.train_env_kwargs) == {"progress"}
    config = dataclasses.replace(config, n_steps=16)  # one short rollout of the recipe, one update
    settings = {"env_kwargs": {**run.env_kwargs, **run.train_env_kwargs, "digit_source": StubSource()}}
    threads = torch.get_num_threads()
    agents = []
    for _ in range(2):
        vec = make_sb3_vec_env(GRID, config.n_envs, seed=3, settings=settings)
        assert isinstance(vec, VectorEnvAdapter)
        agent = make_agent("ppo", vec.observation_space, vec.action_space, config, seed=3)
        assert isinstance(agent.model.policy.features_extractor, DigitSlotsExtractor)
        agent.learn(vec, 2 * config.n_envs * config.n_steps, seed=3)
        agents.append(agent)
        assert torch.get_num_threads() == threads
    a, b = (agent.model for agent in agents)
    assert np.array_equal(a.rollout_buffer.actions, b.rollout_buffer.actions)
    assert np.array_equal(a.rollout_buffer.values, b.rollout_buffer.values)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(("name", "env_id", "kwargs"), [
    ("dqn", GRID, grid_kwargs("symbolic")),
    ("a2c", BANDIT, {"obs_mode": "pixels", "digit_source": StubSource()}),
    ("ppo", BANDIT, {"obs_mode": "perceived", "digit_source": StubSource(), "reader": StubReader()}),
])  # fmt: skip
def test_sb3_algorithms_train_on_native_vector_envs(name, env_id, kwargs):
    tiny = {
        "dqn": {"learning_starts": 16, "buffer_size": 200, "batch_size": 8},
        "a2c": {"n_steps": 4},
        "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1},
    }
    config = {"n_envs": 4, **tiny[name]}
    vec = make_sb3_vec_env(env_id, 4, seed=0, settings={"env_kwargs": kwargs})
    assert isinstance(vec, VectorEnvAdapter)
    agent = make_agent(name, vec.observation_space, vec.action_space, config, seed=0)
    agent.learn(vec, 96, seed=0)
    assert agent.num_timesteps >= 96
    assert agent.model.ep_info_buffer  # Monitor's episode info reached SB3's logger


def test_agent_chooses_the_native_vector_env_for_ids_that_have_one():
    space = gym.spec(GRID)
    assert space.vector_entry_point is not None
    assert has_sb3_vector_env(GRID) and has_sb3_vector_env(f"perceptgym:{GRID}") and has_sb3_vector_env(BANDIT)
    assert not has_sb3_vector_env("CartPole-v1")  # CartPoleVectorEnv resets on the next step
    assert not has_sb3_vector_env("NoSuchEnv-v0")
    env = gym.make(GRID)
    agent = make_agent("ppo", env.observation_space, env.action_space, {"n_envs": 8, "n_steps": 8}, seed=0)
    agent.learn(GRID, 64, seed=0)
    assert isinstance(agent.model.env, VectorEnvAdapter) and agent.model.env.num_envs == 8  # n_envs sub-envs
    wrapped = make_sb3_vec_env(GRID, 2, settings={"env_wrappers": ["gymnasium.wrappers:FlattenObservation"]})
    assert isinstance(wrapped, DummyVecEnv)  # a wrapper acts on one env: single envs then
    assert isinstance(make_sb3_vec_env("CartPole-v1", 2, seed=0), DummyVecEnv)


def test_sync_vector_env_same_step_and_disabled_autoreset():
    def make(mode):
        return gym.make_vec(GRID, num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
                            max_episode_steps=8, **grid_kwargs())  # fmt: skip

    same, disabled = VectorEnvAdapter(make(AutoresetMode.SAME_STEP)), VectorEnvAdapter(make(AutoresetMode.DISABLED))
    for vec in (same, disabled):
        vec.seed(0)
    assert np.array_equal(same.reset(), disabled.reset())
    rng = np.random.default_rng(1)
    for _ in range(40):
        actions = rng.integers(5, size=3)
        a, b = same.step(actions), disabled.step(actions)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        for ia, ib in zip(a[3], b[3], strict=True):  # the step's info for every env, in both modes
            for key in ("terminal_observation", "reward_terms", "action_mask", "event", "TimeLimit.truncated"):
                assert data_equivalence(ia.get(key), ib.get(key)), key
            assert "reward_terms" in ia
    assert [i["stop_numbers"] for i in same.reset_infos] == [i["stop_numbers"] for i in disabled.reset_infos]
    assert same.get_attr("render_mode") == [None] * 3
    assert same.env_is_wrapped(gym.wrappers.TimeLimit) == [True] * 3
    same.set_attr("tag", "a")
    same.set_attr("tag", "b", indices=[1])
    assert same.get_attr("tag") == ["a", "b", "a"]


def test_bad_use_raises_clear_errors():
    with pytest.raises(ValueError, match="SAME_STEP"):
        VectorEnvAdapter(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="vector_entry_point"))
    vec = native(3, **grid_kwargs())
    with pytest.raises(RuntimeError, match="step_async"):
        vec.step_wait()
    vec._seeds = [1, None, 3]
    with pytest.raises(ValueError, match="seed all envs or none"):
        vec.reset()
    vec.set_options([{"card": 0}, {}, {}])
    vec._seeds = [None] * 3
    with pytest.raises(ValueError, match="same options"):
        vec.reset()
    with pytest.raises(ValueError, match="one batched env"):
        vec.set_attr("render_mode", "rgb_array", indices=[0])


def test_unbatch_info_honours_masks_and_nesting():
    info = {
        "a": np.array([1, 2, 3]),
        "_a": np.array([True, False, True]),
        "terms": {"x": np.array([0.5, 1.5, 2.5]), "_x": np.array([True, True, False])},
        "_terms": np.array([True, True, True]),
        "mask": np.ones((3, 2), dtype=np.int8),
        "final_obs": np.array([None, 4, None], dtype=object),
    }
    rows = unbatch_info(info, [0, 1, 2])
    assert rows[0] == {"a": 1, "terms": {"x": 0.5}, "mask": rows[0]["mask"]} and type(rows[0]["a"]) is int
    assert "a" not in rows[1] and rows[2]["terms"] == {}
    assert rows[1]["mask"].tolist() == [1, 1]
    (only,) = unbatch_info(info, [2])
    assert only["a"] == 3 and only["terms"] == {} and only["mask"].tolist() == [1, 1] and "final_obs" not in only

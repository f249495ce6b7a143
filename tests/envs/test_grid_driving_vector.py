"""GridDrivingVectorEnv: the numpy-batched GridDriving behind gym.make_vec(..., "vector_entry_point")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode

import perceptgym.envs  # noqa: F401 - registers the envs
from perceptgym.envs.grid_driving import GridDrivingEnv
from perceptgym.envs.grid_driving.constants import OBS_MODES
from perceptgym.envs.grid_driving.vector import GridDrivingVectorEnv
from tests.conftest import StubReader, StubSource

ENV_ID = "perceptgym/GridDriving-v0"
# Small enough that episodes end often (and some only by the time limit), with every reward term in play.
CONFIGS = {
    "default": {},
    "shuffled": {"map": "tiny", "shuffle_stops": True, "progress": 0.05, "n_cars": 3},
}


def stubs(**kwargs) -> dict:
    return {"digit_source": StubSource(), "reader": StubReader(confuse={3: 8}), **kwargs}


def native(n: int, **kwargs) -> gym.vector.VectorEnv:
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **stubs(**kwargs))


def sync(n: int, **kwargs) -> gym.vector.VectorEnv:
    """n single envs through gym.make (TimeLimit included), reset in the same step as the native env."""
    return gym.make_vec(
        ENV_ID,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **stubs(**kwargs),
    )


def sub_obs(obs: dict, i: int) -> dict:
    """Sub-env i's dict observation as a single env returns it (Discrete entries as Python ints)."""
    return {k: v[i].item() if v.ndim == 1 else v[i] for k, v in obs.items()}


def assert_same_info(got: dict, want: dict, path: str = "info") -> None:
    """Equal keys and masks, and equal values wherever a mask says a sub-env has the key."""
    assert sorted(got) == sorted(want), path
    for key, value in want.items():
        if key.startswith("_"):
            continue
        mask = want[f"_{key}"]
        assert np.array_equal(got[f"_{key}"], mask), f"{path}['_{key}']"
        if isinstance(value, dict):
            assert_same_info(got[key], value, f"{path}[{key!r}]")
            continue
        assert got[key].dtype == value.dtype, f"{path}[{key!r}]: {got[key].dtype} vs {value.dtype}"
        for i in np.flatnonzero(mask):
            assert data_equivalence(got[key][i], value[i]), f"{path}[{key!r}][{i}]: {got[key][i]!r} vs {value[i]!r}"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_sub_envs_equal_single_envs_transition_by_transition(obs_mode, config):
    """N sub-envs against N single envs (SyncVectorEnv over gym.make) with the same seeds and actions."""
    n, kwargs = 5, {"obs_mode": obs_mode, "max_episode_steps": 12, **CONFIGS[config]}
    a, b = native(n, **kwargs), sync(n, **kwargs)
    assert isinstance(a.unwrapped, GridDrivingVectorEnv)
    obs_a, info_a = a.reset(seed=7)
    obs_b, info_b = b.reset(seed=7)
    assert data_equivalence(obs_a, obs_b)
    assert_same_info(info_a, info_b)
    rng = np.random.default_rng(0)
    ended = {"terminated": 0, "truncated": 0}
    for step in range(150):
        actions = rng.integers(5, size=n)
        out_a, out_b = a.step(actions), b.step(actions)
        assert data_equivalence(out_a[0], out_b[0]), f"obs at step {step}"
        for k in range(1, 4):  # rewards, terminated, truncated
            assert out_a[k].dtype == out_b[k].dtype and np.array_equal(out_a[k], out_b[k]), (step, k)
        assert_same_info(out_a[4], out_b[4], f"info at step {step}")
        assert a.observation_space.contains(out_a[0])
        ended["terminated"] += int(out_a[2].sum())
        ended["truncated"] += int((out_a[3] & ~out_a[2]).sum())
    assert ended["terminated"] >= 10 and ended["truncated"] >= 3, ended  # automatic resets of both kinds
    a.close()
    b.close()


@pytest.mark.parametrize("obs_mode", ["symbolic", "dict"])
def test_sub_envs_equal_single_envs_over_many_episodes(obs_mode):
    """More episodes per sub-env than the vector env queues ahead (START_BLOCK), of uneven lengths."""
    from perceptgym.envs.grid_driving.vector import START_BLOCK

    n, kwargs = 4, {"obs_mode": obs_mode, "max_episode_steps": 3}
    a, b = native(n, **kwargs), sync(n, **kwargs)
    assert data_equivalence(a.reset(seed=3)[0], b.reset(seed=3)[0])
    rng = np.random.default_rng(1)
    episodes = np.zeros(n, dtype=np.int64)
    for step in range(3 * START_BLOCK):
        actions = rng.integers(5, size=n)
        out_a, out_b = a.step(actions), b.step(actions)
        assert data_equivalence(out_a[0], out_b[0]), f"obs at step {step}"
        assert np.array_equal(out_a[1], out_b[1]) and np.array_equal(out_a[2], out_b[2]), step
        assert_same_info(out_a[4], out_b[4], f"info at step {step}")
        episodes += out_a[2] | out_a[3]
    assert episodes.min() > START_BLOCK and episodes.max() > episodes.min(), episodes
    # reset() without a seed continues every sub-env's stream where it is (here past a refill)
    assert data_equivalence(a.reset()[0], b.reset()[0])


def test_seeds_per_sub_env_and_unseeded_resets_continue_the_streams():
    n = 3
    a = native(n, obs_mode="dict")
    singles = [GridDrivingEnv(**stubs(obs_mode="dict")) for _ in range(n)]
    obs, _ = a.reset(seed=[11, 5, 11])
    for i, (env, s) in enumerate(zip(singles, [11, 5, 11], strict=True)):
        single_obs, _ = env.reset(seed=s)
        assert data_equivalence(sub_obs(obs, i), single_obs)
    for _ in range(3):  # reset() without a seed: each sub-env's next episode, as a single env's reset()
        obs, _ = a.reset()
        for i, env in enumerate(singles):
            assert data_equivalence(sub_obs(obs, i), env.reset()[0])
    assert data_equivalence(obs["card"][0], obs["card"][2])  # same seed, same stream
    with pytest.raises(ValueError, match="list of 3 ints"):
        a.reset(seed=[1, 2])


def test_spaces_masks_and_metadata():
    n = 4
    envs = native(n, obs_mode="symbolic")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.action_space == gym.spaces.MultiDiscrete([5] * n)
    single = GridDrivingEnv(**stubs())
    assert envs.single_observation_space == single.observation_space
    obs, info = envs.reset(seed=0)
    assert obs.shape == (n,) and obs.dtype == np.int64
    assert info["action_mask"].shape == (n, 5) and info["action_mask"].dtype == np.int8
    m = envs.unwrapped.model
    for _ in range(20):
        obs, rewards, terminated, truncated, info = envs.step(np.full(n, 3))
        assert rewards.dtype == np.float64 and terminated.dtype == truncated.dtype == bool
        # The mask of every sub-env's current state: FORWARD needs road ahead, STOP needs a stop.
        for i, s in enumerate(obs.tolist()):
            cell, heading, _ = m.base_parts(s // 10)
            assert info["action_mask"][i].tolist() == m.masks[cell, heading].tolist()


@pytest.mark.parametrize("kwargs", [{}, {"map": "town", "n_cars": 3, "green_steps": 0, "route_seed": 2},
                                    {"map": "procedural", "map_seed": 4, "max_period": 60, "shuffle_stops": True,
                                     "time_cost": 0.02, "progress": 0.1, "arrival": 2.0, "wrong_stop": -0.5,
                                     "collision": -2.0, "red_light": -0.1, "render_fps": 30}])  # fmt: skip
def test_every_constructor_argument_reaches_the_sub_envs(kwargs):
    envs = native(2, **kwargs)
    single = GridDrivingEnv(**stubs(**kwargs))
    assert envs.unwrapped.params == single.params
    assert envs.unwrapped.model is single.model  # one compiled model per Params
    assert envs.metadata["render_fps"] == single.metadata["render_fps"]


def test_reader_reads_each_step_s_new_episodes_in_one_call():
    calls = []

    class CountingReader(StubReader):
        def __call__(self, images):
            calls.append(len(images))
            return super().__call__(images)

    n = 64
    envs = gym.make_vec(
        ENV_ID,
        num_envs=n,
        vectorization_mode="vector_entry_point",
        obs_mode="perceived",
        digit_source=StubSource(),
        reader=CountingReader(),
    )
    envs.reset(seed=0)
    assert calls == [n * 11]  # the card and the 10 signs of every sub-env
    rng = np.random.default_rng(0)
    for _ in range(30):
        calls.clear()
        _, _, terminated, truncated, _ = envs.step(rng.integers(5, size=n))
        ended = int((terminated | truncated).sum())
        assert calls == ([ended * 11] if ended else [])


def test_render_shows_sub_env_0(seed):
    pytest.importorskip("pygame")
    envs = native(3, obs_mode="perceived", render_mode="rgb_array", render_fps=1000)
    single = gym.make(ENV_ID, **stubs(obs_mode="perceived", render_mode="rgb_array", render_fps=1000))
    ansi_v, ansi_s = native(3, render_mode="ansi"), gym.make(ENV_ID, **stubs(render_mode="ansi"))
    for e in (envs, single, ansi_v, ansi_s):
        e.reset(seed=seed)
    assert np.array_equal(envs.render(), single.render())
    rng = np.random.default_rng(seed)
    for _ in range(40):
        actions = rng.integers(5, size=3)
        _, _, terminated, truncated, _ = single.step(int(actions[0]))
        envs.step(actions)
        ansi_s.step(int(actions[0]))
        ansi_v.step(actions)
        if terminated or truncated:
            single.reset()
            ansi_s.reset()
        assert np.array_equal(envs.render(), single.render())
        assert ansi_v.render() == ansi_s.render()
    envs.close()
    assert envs.unwrapped.closed


def test_bad_input_raises_clear_errors():
    envs = native(3)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        envs.step(np.zeros(3, dtype=np.int64))
    envs.reset(seed=0)
    for bad in (np.zeros(2, dtype=np.int64), np.zeros((3, 1), dtype=np.int64), 1, [[0, 1, 2]]):
        with pytest.raises(ValueError, match=r"shape \(3,\), one action per sub-env"):
            envs.step(bad)
    for bad in (np.zeros(3), np.zeros(3, dtype=bool), ["0", "1", "2"]):
        with pytest.raises(ValueError, match="integer array"):
            envs.step(bad)
    for bad in (np.array([0, 5, 1]), np.array([0, -1, 1]), np.array([0, 1, 255], dtype=np.uint8)):
        with pytest.raises(ValueError, match=r"in 0\.\.4; sub-envs \[\d\]"):
            envs.step(bad)
    envs.step([0, 1, 2])  # a list of ints is an integer array of the right shape
    for n in (0, -1, True, 1.5, "4"):
        with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
            GridDrivingVectorEnv(num_envs=n)
    for steps in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_episode_steps"):
            GridDrivingVectorEnv(num_envs=2, max_episode_steps=steps)
    with pytest.raises(ValueError, match="obs_mode"):
        GridDrivingVectorEnv(num_envs=2, obs_mode="voxels")
    with pytest.raises(ValueError, match="unknown reset options"):
        envs.reset(options={"cards": 1})
    with pytest.raises(ValueError, match="not a road cell"):
        envs.reset(options={"start": (0, 0, 0)})


def test_reset_options_apply_to_every_sub_env():
    envs = native(4, obs_mode="symbolic")
    obs, info = envs.reset(seed=0, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    assert len(set(obs.tolist())) == 1 and info["card"].tolist() == [0] * 4
    obs, rewards, terminated, *_ = envs.step(np.full(4, 4))  # STOP on stop 0 with card 0: arrived
    assert terminated.all() and np.allclose(rewards, 0.99)


def test_final_info_mode_keeps_what_training_needs():
    n, kwargs = 6, {"obs_mode": "symbolic", "max_episode_steps": 12}
    lean = native(n, info="final", **kwargs)
    full = native(n, **kwargs)
    assert lean.reset(seed=3)[1] == {}
    full.reset(seed=3)
    rng = np.random.default_rng(0)
    seen_final = 0
    for _ in range(80):
        actions = rng.integers(5, size=n)
        a, b = lean.step(actions), full.step(actions)
        for k in range(4):
            assert np.array_equal(a[k], b[k])
        assert set(a[4]) <= {"final_obs", "_final_obs", "final_info", "_final_info"}
        if "final_info" in b[4]:
            seen_final += 1
            assert_same_info(
                {k: a[4][k] for k in ("final_obs", "_final_obs")}, {k: b[4][k] for k in ("final_obs", "_final_obs")}
            )
            keys = [k for k in b[4]["final_info"] if k.lstrip("_") in ("event", "is_success")]
            assert_same_info(a[4]["final_info"], {k: b[4]["final_info"][k] for k in keys})
    assert seen_final > 10
    with pytest.raises(ValueError, match="info must be one of"):
        GridDrivingVectorEnv(num_envs=2, info="some")


def test_mnist_source_draws_many_episodes_as_one_call_each():
    """The vector env draws all new episodes' handwriting with one draw_many call; it must change nothing."""
    from perceptgym.supervised.data import MnistData
    from perceptgym.supervised.perception import MnistSource

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 7)
    images = rng.integers(0, 256, size=(70, 28, 28), dtype=np.uint8)
    source = MnistSource("train", data=MnistData(images, labels, images[:10], labels[:10]))
    wanted = rng.integers(0, 10, size=(9, 11))
    many = source.draw_many(wanted, [np.random.default_rng(i) for i in range(9)])
    one_by_one = np.stack([source(row, np.random.default_rng(i)) for i, row in enumerate(wanted)])
    assert np.array_equal(many, one_by_one)
    assert not np.array_equal(many[0], many[1])
    with pytest.raises(ValueError, match=r"0\.\.9"):
        source.draw_many(np.array([[3, 10]]), [rng])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"map": "town", "n_cars": 3, "green_steps": 0},
        {"map": "tiny", "shuffle_stops": True, "n_cars": 3},
        {"n_cars": 0, "green_steps": 2},
        {"map": "procedural", "map_seed": 4},
    ],
)
def test_pixel_frames_drawn_incrementally_equal_full_renders(kwargs):
    """Each step redraws only what moved into one of two buffers; frames must equal a full re-render."""
    n = 6
    envs = native(n, obs_mode="pixels", max_episode_steps=9, **kwargs)
    raster = envs.unwrapped._raster
    obs, _ = envs.reset(seed=2)
    rng = np.random.default_rng(2)
    previous, resets = None, 0
    for step in range(120):
        if step == 60:  # a reset in the middle: every frame starts afresh
            obs, _ = envs.reset()
        else:
            kept = None if previous is None else previous.copy()
            obs, _, terminated, truncated, info = envs.step(rng.integers(5, size=n))
            resets += int((terminated | truncated).sum())
            # The observation of the step before stays valid through this step (SB3 stores it after stepping).
            assert kept is None or np.array_equal(previous, kept), step
            for i in np.flatnonzero(info.get("_final_obs", np.zeros(n, dtype=bool))):
                assert info["final_obs"][i].base is not obs.base  # own copies: the buffers move on
        u = envs.unwrapped
        assert np.array_equal(obs, raster.frames(raster.store_backgrounds(u._store), u._base)), f"step {step}"
        previous = obs
    assert resets >= 20, resets

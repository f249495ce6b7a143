"""Env invariants over random settings, seeds and action sequences, checked with hypothesis.

GridDriving on every named map and procedural ones, with or without traffic, lights and shuffled stops, and
random reward weights: observations stay in the space, every car stays on the road, the reward is the weighted
sum of its terms, the exact model ``P`` agrees with ``step``, an env pickled mid-episode continues identically,
and the same seed gives the same run while another seed gives another. DigitBandit likewise, plus the resume
state a training checkpoint keeps. Stub perception models keep this fast and independent of MNIST.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perceptgym.envs.digit_bandit.env import DigitBanditEnv
from perceptgym.envs.grid_driving import GridDrivingEnv
from perceptgym.envs.grid_driving.constants import OBS_MODES, REWARD_TERMS
from tests.conftest import StubReader, StubSource

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)
ACTIONS = st.lists(st.integers(0, 4), min_size=1, max_size=120)

# ---- GridDriving ----------------------------------------------------------------------------------------------
WEIGHT_RANGES = {
    "time_cost": (0.0, 0.1),
    "progress": (0.0, 0.2),
    "arrival": (0.0, 3.0),
    "wrong_stop": (-3.0, 0.0),
    "collision": (-3.0, 0.0),
    "red_light": (-1.0, 0.0),
}


def constructible(items: tuple) -> bool:
    """Some procedural maps have no room for the traffic asked for: the env refuses them, by name."""
    try:
        make_driving(items)
    except ValueError as e:
        assert "fits only" in str(e) or "no loop" in str(e), e
        return False
    return True


def driving_settings(exact_model: bool = False) -> st.SearchStrategy[tuple]:
    return _driving_settings(exact_model).filter(constructible)


@st.composite
def _driving_settings(draw, exact_model: bool = False) -> tuple:
    """Constructor settings as a hashable tuple of items (envs are cached per settings)."""
    kwargs = {
        "map": draw(st.sampled_from(["tiny", "small"] if exact_model else ["tiny", "small", "town", "procedural"])),
        "n_cars": draw(st.integers(0, 2 if exact_model else 4)),
        "green_steps": draw(st.integers(0, 4)),
        "shuffle_stops": False if exact_model else draw(st.booleans()),
        "route_seed": draw(st.integers(0, 5)),
    }
    if kwargs["map"] == "procedural":
        kwargs["map_seed"] = draw(st.integers(0, 50))
    for name, (low, high) in WEIGHT_RANGES.items():
        kwargs[name] = draw(st.floats(low, high, allow_nan=False))
    return tuple(sorted(kwargs.items()))


def make_driving(items: tuple, obs_mode: str = "symbolic") -> GridDrivingEnv:
    return GridDrivingEnv(obs_mode=obs_mode, digit_source=StubSource(), reader=StubReader(), **dict(items))


@functools.lru_cache(maxsize=8)
def exact_model(items: tuple) -> tuple[GridDrivingEnv, list]:
    env = make_driving(items)
    return env, env.P


def drive(env, seed: int, actions: list[int], reset_seed_each: bool = False) -> list:
    """Everything the env returns for ``actions`` from ``reset(seed)``, starting a new episode after each end."""
    out = [env.reset(seed=seed)]
    for a in actions:
        step = env.step(a)
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


@PROPERTY
@given(items=driving_settings(), obs_mode=st.sampled_from(OBS_MODES), seed=SEEDS, actions=ACTIONS)
def test_driving_observations_stay_in_the_observation_space(items, obs_mode, seed, actions):
    env = make_driving(items, obs_mode)
    for result in drive(env, seed, actions):
        assert env.observation_space.contains(result[0]), (obs_mode, result[0])


@PROPERTY
@given(items=driving_settings(), seed=SEEDS, actions=ACTIONS)
def test_every_car_stays_on_the_road(items, seed, actions):
    env = make_driving(items)
    road, cells = env.params.gmap.road, env.model.cells
    env.reset(seed=seed)
    for a in actions:
        scene = env.snapshot()
        row, col, _ = scene["ego"]
        assert road[row, col]
        assert all(road[cells[c][0], cells[c][1]] for c in scene["cars"])
        if env.step(a)[2]:
            env.reset()


@PROPERTY
@given(items=driving_settings(), seed=SEEDS, actions=ACTIONS)
def test_the_reward_is_the_weighted_sum_of_its_terms(items, seed, actions):
    weights = dict(items)
    env = make_driving(items)
    env.reset(seed=seed)
    for a in actions:
        _, reward, terminated, _, info = env.step(a)
        terms = info["reward_terms"]
        assert tuple(terms) == REWARD_TERMS
        assert sum(terms.values()) == reward
        assert terms["time"] == -weights["time_cost"]
        for name in ("arrival", "wrong_stop", "collision", "red_light"):  # an event, weighted by its weight
            assert terms[name] in (0.0, weights[name])
        event = info.get("event")
        if weights["arrival"] > 0:
            assert (terms["arrival"] != 0) == (event == "arrived")
        if weights["wrong_stop"] < 0:
            assert (terms["wrong_stop"] != 0) == (event == "wrong_stop")
        if weights["progress"] > 0:  # cells gained towards the card's stop: one move changes it by at most 1
            assert round(terms["progress"] / weights["progress"], 9) in (-1.0, 0.0, 1.0)
        else:
            assert terms["progress"] == 0.0
        if terminated:
            env.reset()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=driving_settings(exact_model=True), seed=SEEDS, actions=ACTIONS)
def test_the_exact_model_agrees_with_step(items, seed, actions):
    env, P = exact_model(items)
    obs, _ = env.reset(seed=seed)
    for a in actions:
        obs2, reward, terminated, truncated, _ = env.step(a)
        outcomes = [(s2, r, term) for p, s2, r, term in P[obs][a] if p > 0]
        assert any(s2 == obs2 and np.isclose(r, reward) and term == terminated for s2, r, term in outcomes)
        assert not truncated
        obs = env.reset()[0] if terminated else obs2


@PROPERTY
@given(
    items=driving_settings(),
    obs_mode=st.sampled_from(OBS_MODES),
    seed=SEEDS,
    prefix=ACTIONS,
    suffix=ACTIONS,
)
def test_an_env_pickled_mid_episode_continues_identically(items, obs_mode, seed, prefix, suffix):
    env = make_driving(items, obs_mode)
    drive(env, seed, prefix)
    clone = pickle.loads(pickle.dumps(env))
    for a in suffix:
        step = env.step(a)
        assert data_equivalence(step, clone.step(a))
        if step[2]:
            assert data_equivalence(env.reset(), clone.reset())


@PROPERTY
@given(items=driving_settings(), seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True), actions=ACTIONS)
def test_the_same_seed_gives_the_same_run_and_another_seed_another(items, seeds, actions):
    a, b = seeds
    run = drive(make_driving(items), a, actions)
    assert data_equivalence(run, drive(make_driving(items), a, actions))
    # twenty trips from each seed: the start states (position, heading, phase, card) cannot all agree by chance
    starts = [[make_driving(items).reset(seed=s)[0]] for s in (a, b)]
    for env_seed, trips in zip((a, b), starts, strict=True):
        env = make_driving(items)
        env.reset(seed=env_seed)
        trips += [env.reset()[0] for _ in range(19)]
    assert starts[0] != starts[1]


# ---- DigitBandit ----------------------------------------------------------------------------------------------
BANDIT_MODES = ("pixels", "symbolic", "perceived", "perceived-confidence")


@st.composite
def bandit_settings(draw) -> dict:
    return {
        "obs_mode": draw(st.sampled_from(BANDIT_MODES)),
        "reward_scheme": draw(st.sampled_from(["binary", "plus_minus"])),
        "label_noise": draw(st.sampled_from([0.0, 0.2])),
        "reward_noise": draw(st.sampled_from([0.0, 0.1])),
        "permute_every": draw(st.sampled_from([0, 3, 7])),
        "block_size": draw(st.integers(1, 16)),
    }


def make_bandit(kwargs: dict) -> DigitBanditEnv:
    return DigitBanditEnv(digit_source=StubSource(), reader=StubReader(), **kwargs)


def play(env: DigitBanditEnv, actions: list[int], seed: int | None) -> list:
    out = []
    for i, a in enumerate(actions):
        out.append(env.reset(seed=seed if i == 0 else None))
        out.append(env.step(a))
    return out


ARMS = st.lists(st.integers(0, 9), min_size=1, max_size=60)


@PROPERTY
@given(kwargs=bandit_settings(), seed=SEEDS, actions=ARMS)
def test_bandit_rounds_stay_in_the_space_and_reward_the_optimal_arm(kwargs, seed, actions):
    env = make_bandit(kwargs)
    low, high = (0.0, 1.0) if kwargs["reward_scheme"] == "binary" else (-1.0, 1.0)
    for i, a in enumerate(actions):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        assert env.observation_space.contains(obs)
        obs2, reward, terminated, truncated, info = env.step(a)
        assert env.observation_space.contains(obs2) and terminated and not truncated
        assert reward in (low, high)
        assert info["regret"] == (0.0 if a == info["optimal_action"] else env._gap)
        if kwargs["label_noise"] == 0 and kwargs["reward_noise"] == 0:
            assert (reward == high) == (a == info["optimal_action"])


@PROPERTY
@given(kwargs=bandit_settings(), seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True), actions=ARMS)
def test_bandit_same_seed_same_stream_another_seed_another(kwargs, seeds, actions):
    a, b = seeds
    assert data_equivalence(play(make_bandit(kwargs), actions, a), play(make_bandit(kwargs), actions, a))
    labels = [[info["label"] for _, _, _, _, info in play(make_bandit(kwargs), [0] * 40, s)[1::2]] for s in (a, b)]
    assert labels[0] != labels[1]  # 40 uniform digits agree by chance with probability 1e-40


@PROPERTY
@given(kwargs=bandit_settings(), seed=SEEDS, prefix=ARMS, suffix=ARMS)
def test_bandit_pickled_or_restored_from_its_resume_state_continues_identically(kwargs, seed, prefix, suffix):
    env = make_bandit(kwargs)
    play(env, prefix, seed)
    clone = pickle.loads(pickle.dumps(env))
    # what a training checkpoint keeps: the RNG state and get_resume_state(), into a freshly made env
    restored = make_bandit(kwargs)
    restored.reset(seed=seed + 1)  # some other state first, which the restore must replace
    restored.np_random.bit_generator.state = env.np_random.bit_generator.state
    restored.set_resume_state(*env.get_resume_state())
    expected = play(env, suffix, None)
    assert data_equivalence(expected, play(clone, suffix, None))
    assert data_equivalence(expected, play(restored, suffix, None))

"""GridDriving: model structure, dynamics, rewards, observation modes, determinism, API conformance."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import perceptgym.envs
from perceptgym.envs.grid_driving import Action, DrivingState, GridDrivingEnv, get_map, optimal_return, value_iteration
from perceptgym.envs.grid_driving.constants import DIR_VECTORS, NO_SIGN, OBS_MODES, REWARD_TERMS
from perceptgym.envs.grid_driving.core import make_trip
from perceptgym.envs.grid_driving.maps import parse_map, procedural_map
from tests.conftest import StubReader, StubSource

ENV_ID = "perceptgym/GridDriving-v0"


def make(**kwargs) -> GridDrivingEnv:
    kwargs.setdefault("digit_source", StubSource())
    kwargs.setdefault("reader", StubReader())
    return GridDrivingEnv(**kwargs)


def rollout(env: gym.Env, seed: int, n: int = 60) -> list:
    out = [env.reset(seed=seed)]
    rng = np.random.default_rng(seed)
    for _ in range(n):
        step = env.step(int(rng.integers(5)))
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


def start_options(env: GridDrivingEnv, base: int, card: int) -> dict:
    cell, heading, phase = env.model.base_parts(base)
    return {"start": (*env.model.cells[cell], heading), "phase": phase, "card": card}


# ---- encoding and the exact model ---------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
def test_encode_decode_round_trip_over_all_states(shuffle):
    env = make(map="tiny", shuffle_stops=shuffle)
    n = env.observation_space.n
    assert n == env.model.n_base * 10 * (11 if shuffle else 1)
    for s in range(n):
        state = env.decode(s)
        assert env.model.params.gmap.road[state.row, state.col]
        assert env.encode(state) == s
    with pytest.raises(ValueError, match="out of range"):
        env.decode(n)
    with pytest.raises(ValueError, match="not a road cell"):
        env.encode(DrivingState(0, 0, 0, 0, 0, NO_SIGN))


def test_transition_probabilities_sum_to_one_and_states_in_range():
    env = make()
    P = env.P
    assert len(P) == env.observation_space.n
    for s in range(0, len(P), 7):
        for a in Action:
            outcomes = P[s][a]
            assert sum(p for p, *_ in outcomes) == pytest.approx(1.0)
            assert all(0 <= s2 < len(P) for _, s2, _, _ in outcomes)
    assert env.tabular_model().initial.sum() == pytest.approx(1.0)


def test_model_agrees_with_step(seed):
    env = make()
    rng = np.random.default_rng(seed)
    P = env.P
    numbers = env.params.gmap.stop_numbers
    for _ in range(1500):
        base = int(rng.choice(env.model.start_bases))
        card = int(rng.choice(numbers))
        obs, _ = env.reset(options=start_options(env, base, card))
        assert obs == env.model.index(base, card, 0)
        a = int(rng.integers(5))
        obs2, reward, terminated, truncated, _info = env.step(a)
        ((_p, s2, r, term),) = P[obs][a]
        assert (obs2, reward, terminated, truncated) == (s2, pytest.approx(r), term, False)


def test_no_exact_model_with_shuffled_stops():
    env = make(shuffle_stops=True)
    assert not hasattr(env, "P")
    with pytest.raises(ValueError, match="shuffle_stops"):
        env.tabular_model()


def test_value_iteration_return_is_achieved_by_its_greedy_policy(seed):
    """Dynamics are deterministic given the start, so following argmax Q from s0 must return exactly V[s0]."""
    env = make()
    v, q = env.value_iteration()
    tm = env.tabular_model()
    assert optimal_return(tm) == pytest.approx(float(tm.initial @ v))
    rng = np.random.default_rng(seed)
    for _ in range(40):
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        start, total = obs, 0.0
        for _ in range(500):
            obs, reward, terminated, _, _ = env.step(int(q[obs].argmax()))
            total += reward
            if terminated:
                break
        assert total == pytest.approx(v[start])
    # The optimum reaches most trips: it beats always-wait by far and stays below a perfect instant arrival.
    assert 0.5 < env.optimal_return() < env.params.arrival


def test_finite_horizon_value_iteration_is_monotone_in_the_horizon():
    tm = make(map="tiny").tabular_model()
    returns = [optimal_return(tm, horizon=h) for h in (1, 5, 20, 200)]
    assert returns == sorted(returns)
    assert returns[-1] == pytest.approx(optimal_return(tm), abs=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        value_iteration(tm, gamma=0.0)


# ---- dynamics -----------------------------------------------------------------------------------------
def test_roads_block_and_cars_never_leave_the_road(seed):
    env = make(map="town", n_cars=4)
    road = env.params.gmap.road
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    blocked = 0
    for _ in range(3000):
        before = env.decode(obs)
        a = int(rng.integers(5))
        forward_ok = info["action_mask"][Action.FORWARD]
        obs, _, terminated, _, info = env.step(a)
        after = env.decode(obs)
        assert road[after.row, after.col]
        dr, dc = DIR_VECTORS[before.heading]
        assert forward_ok == road[before.row + dr, before.col + dc]
        if a == Action.FORWARD and not forward_ok:
            assert (after.row, after.col) == (before.row, before.col)  # a building ahead: the car stays
            blocked += 1
        if terminated:
            obs, info = env.reset()
    assert blocked > 0


def test_action_mask_matches_the_map():
    env = make()
    _, info = env.reset(options={"start": (1, 2, 1), "phase": 0, "card": 0})  # on stop 0, facing east
    assert info["action_mask"].dtype == np.int8
    assert list(info["action_mask"]) == [1, 1, 1, 1, 1]
    _obs, info = env.reset(options={"start": (1, 1, 0), "phase": 0, "card": 0})  # corner, facing north
    assert list(info["action_mask"]) == [0, 1, 1, 1, 0]


def test_collision_terminates():
    env = make()
    m = env.model
    base, action = map(int, np.argwhere(m.collides[m.start_bases])[0])
    base = int(m.start_bases[base])
    env.reset(options=start_options(env, base, env.params.gmap.stop_numbers[0]))
    _, _reward, terminated, _, info = env.step(action)
    assert terminated and info["event"] == "collision" and not info["is_success"]
    assert info["reward_terms"]["collision"] == env.params.collision
    # Other cars drive on: the ego's cell is one a car occupies (or swapped with) this step.
    cell = m.next_cell[base, action]
    phase = (m.base_parts(base)[2] + 1) % m.period
    moved_into_or_swapped = {*m.car_cells[phase], *m.car_cells[phase - 1]}
    assert cell in moved_into_or_swapped


def test_stops_end_the_trip_right_or_wrong():
    env = make()
    _, info = env.reset(options={"start": (1, 2, 1), "phase": 0, "card": 0})
    _, reward, terminated, _, info = env.step(Action.STOP)
    assert terminated and info["is_success"] and info["reward_terms"]["arrival"] == env.params.arrival
    env.reset(options={"start": (1, 2, 1), "phase": 0, "card": 5})
    _, reward, terminated, _, info = env.step(Action.STOP)
    assert terminated and info["event"] == "wrong_stop" and reward == pytest.approx(-1.01)
    # STOP away from a stop only waits.
    obs, _ = env.reset(options={"start": (1, 1, 1), "phase": 0, "card": 5})
    obs2, _, terminated, _, info = env.step(Action.STOP)
    assert not terminated and env.decode(obs2)[:3] == env.decode(obs)[:3]


def test_red_light_is_penalised():
    env = make()
    m = env.model
    reds = np.argwhere(m.runs_red[m.start_bases] & ~m.collides[m.start_bases])
    base = int(m.start_bases[reds[0][0]])
    env.reset(options=start_options(env, base, 0))
    _, _, _, _, info = env.step(int(reds[0][1]))
    assert info["reward_terms"]["red_light"] == env.params.red_light


def test_reward_terms_add_up_to_the_reward(seed):
    env = make(progress=0.05)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    seen = set()
    for _ in range(3000):
        _, reward, terminated, _, info = env.step(int(rng.integers(5)))
        terms = info["reward_terms"]
        assert tuple(terms) == REWARD_TERMS
        assert sum(terms.values()) == pytest.approx(reward)
        seen |= {k for k, v in terms.items() if v}
        if terminated:
            env.reset()
    assert {"time", "progress", "collision"} <= seen


def test_perception_errors_cost_reward():
    """A reader that reads 0 as 1 sends a policy that trusts it to stop 1: a wrong stop."""
    env = make(obs_mode="perceived", reader=StubReader(confuse={0: 1}))
    obs, info = env.reset(options={"start": (1, 2, 1), "phase": 0, "card": 0})
    assert info["card"] == 0 and info["card_read"] == 1 and 0 <= info["card_confidence"] <= 1
    assert env.decode(obs).card == 1
    truth = make(obs_mode="symbolic")
    truth_obs, _ = truth.reset(options={"start": (1, 2, 1), "phase": 0, "card": 0})
    assert env.decode(obs)[:4] == truth.decode(truth_obs)[:4]


def test_shuffled_stops_put_the_sign_under_the_car_in_the_state(seed):
    env = make(obs_mode="perceived", shuffle_stops=True)
    numbers = set()
    for i in range(5):
        obs, info = env.reset(seed=seed + i, options={"start": (1, 2, 1), "phase": 0})
        state = env.decode(obs)
        numbers.add(state.sign)
        assert state.sign == info["sign"] == info["sign_read"]
        assert info["sign_confidence"] == info["card_confidence"] == pytest.approx(0.9)  # the stub's confidence
    assert len(numbers) > 1
    _, info = env.reset(seed=seed, options={"start": (1, 1, 1), "phase": 0})  # no stop here: nothing to read
    assert info["sign"] == info["sign_read"] == NO_SIGN and info["sign_confidence"] == 1.0


# ---- observation modes --------------------------------------------------------------------------------
def test_pixels_show_the_digits_and_the_car(seed):
    env = make(obs_mode="pixels")
    obs, _ = env.reset(seed=seed)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.uint8
    first, second = env.params.gmap.stop_numbers[:2]
    with_first, _ = env.reset(seed=seed, options={"card": first})
    with_second, _ = env.reset(seed=seed, options={"card": second})
    h = env.params.gmap.shape[0] * 14
    assert not np.array_equal(with_first[h:], with_second[h:])  # the card strip shows the card


def test_dict_mode(seed):
    env = make(obs_mode="dict")
    obs, _ = env.reset(seed=seed, options={"start": (1, 2, 1), "phase": 0})
    assert env.observation_space.contains(obs)
    assert obs["sign"].any() and obs["card"].any()
    obs, _info = env.reset(seed=seed, options={"start": (1, 1, 1), "phase": 0})
    assert not obs["sign"].any()  # no stop here


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("render_mode", [None, "rgb_array", "ansi"])
def test_check_env(obs_mode, render_mode):
    """Through gym.make, so the checker also builds the env in every other render mode from its spec."""
    pytest.importorskip("pygame")
    kwargs = {"digit_source": StubSource(), "reader": StubReader(), "render_fps": 1000}
    env = gym.make(ENV_ID, obs_mode=obs_mode, render_mode=render_mode, **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_same_seed_same_episode(obs_mode, seed):
    a = rollout(make(obs_mode=obs_mode), seed)
    b = rollout(make(obs_mode=obs_mode), seed)
    assert data_equivalence(a, b)
    c = rollout(make(obs_mode=obs_mode), seed + 1)
    assert not data_equivalence(a, c)


def test_same_seed_same_images(seed):
    env1, env2 = make(render_mode="rgb_array"), make(render_mode="rgb_array")
    env1.reset(seed=seed)
    env2.reset(seed=seed)
    assert np.array_equal(env1.render(), env2.render())
    assert np.array_equal(env1.snapshot()["images"], env2.snapshot()["images"])


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_pickle_round_trip(obs_mode, seed):
    env = make(obs_mode=obs_mode, render_mode="rgb_array")
    env.reset(seed=seed)
    env.render()
    for a in (0, 1, 0, 3):
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    for a in (0, 2, 0, 0, 4, 1, 4, 0, 2, 0, 0):
        step = env.step(a)
        assert data_equivalence(step, clone.step(a))
        if step[2]:  # and the next episode (drawn by the pickled RNG) is the same too
            assert data_equivalence(env.reset(), clone.reset())
    assert np.array_equal(env.render(), clone.render())


def test_invalid_actions_options_and_arguments():
    env = make()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    for bad in (5, -1, 1.5, "up", np.array([1])):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)
    env.step(np.int64(2))
    env.step(np.array(3))
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"cards": 3})
    with pytest.raises(ValueError, match="not a stop number"):
        env.reset(options={"card": 11})
    with pytest.raises(ValueError, match="not a road cell"):
        env.reset(options={"start": (0, 0, 0)})
    with pytest.raises(ValueError, match="heading"):
        env.reset(options={"start": (1, 1, 7)})
    with pytest.raises(ValueError, match="phase"):
        env.reset(options={"phase": 999})
    bad_reader = make(obs_mode="perceived", reader=lambda images: (np.full(len(images), 12), np.ones(len(images))))
    with pytest.raises(ValueError, match=r"reader <lambda> returned label 12 \(image 0\); labels must be integers"):
        bad_reader.reset(seed=0)
    no_reading = make(obs_mode="perceived", reader=lambda images: None)
    with pytest.raises(ValueError, match="reader <lambda> returned NoneType None; a reader returns"):
        no_reading.reset(seed=0)
    bad_source = make(obs_mode="pixels", digit_source=lambda labels, rng: np.zeros((len(labels), 28, 28)))
    with pytest.raises(ValueError, match="expected uint8"):
        bad_source.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_mode": "rgb"}, "obs_mode"),
        ({"render_mode": "window"}, "render_mode"),
        ({"map": "huge"}, "unknown map"),
        ({"map": 42}, "map must be one of .* or a list of map rows .*got 42"),
        ({"map": [1, 2, 3]}, "map must be one of"),
        ({"digit_source": "emnist"}, "digit source"),
        ({"digit_source": 7}, "digit_source must be one of"),
        ({"reader": "cnnn"}, "reader 'cnnn' is neither one of"),
        ({"reader": None}, "reader must be one of"),
        ({"n_cars": -1}, "n_cars"),
        ({"n_cars": True}, "n_cars must be an integer >= 0, got True"),
        ({"n_cars": 1.0}, "n_cars must be an integer >= 0, got 1.0"),
        ({"n_cars": 40}, "fits only"),
        ({"green_steps": False}, "green_steps must be an integer"),
        ({"max_period": "60"}, "max_period must be an integer >= 1"),
        ({"map_seed": -1}, "map_seed must be an integer >= 0, got -1"),
        ({"map_seed": 1.5}, "map_seed must be an integer"),
        ({"route_seed": "3"}, "route_seed must be an integer"),
        ({"shuffle_stops": "no"}, "shuffle_stops must be True or False, got 'no'"),
        ({"shuffle_stops": 1}, "shuffle_stops must be True or False, got 1"),
        ({"render_fps": True}, "render_fps must be an integer >= 1"),
        ({"time_cost": -0.1}, "time_cost"),
        ({"collision": 1.0}, "collision"),
        ({"arrival": float("nan")}, "arrival"),
        ({"arrival": True}, "arrival must be a finite number >= 0, got True"),
        ({"progress": "0.1"}, "progress must be a finite number"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_numpy_numbers_are_fine_arguments():
    env = make(n_cars=np.int64(1), arrival=np.float32(2.0), shuffle_stops=np.bool_(True), map_seed=np.int32(0))
    assert env.params.n_cars == 1 and env.params.arrival == 2.0 and env.params.shuffle_stops is True


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"reset\(seed=...\) must be None or an integer >= 0, got -1"),
        ({"seed": 2.0}, r"reset\(seed=...\) .*got 2\.0"),
        ({"seed": False}, r"reset\(seed=...\) .*got False"),
        ({"options": [("card", 3)]}, r"reset\(options=...\) must be None or a dict, got list"),
        ({"options": "card"}, r"reset\(options=...\) must be None or a dict, got str"),
        ({"options": {"card": 3.0}}, r"options\['card'\]=3\.0 is not a stop number"),
        ({"options": {"card": True}}, r"options\['card'\]=True is not a stop number"),
        ({"options": {"start": (1, True, 1)}}, r"options\['start'\] must be \(row, col, heading 0-3\)"),
        ({"options": {"phase": 0.0}}, r"options\['phase'\] must be an integer"),
    ],
)
def test_bad_seeds_and_options_are_refused_by_name(kwargs, match):
    env = make()
    with pytest.raises(ValueError, match=match):
        env.reset(**kwargs)
    assert data_equivalence(env.reset(seed=np.int64(5)), make().reset(seed=5))  # numpy integers are fine seeds


def test_no_step_after_termination_until_reset():
    """Stopping on the goal ends the trip; stepping on would pay the arrival again and again."""
    env = make(obs_mode="symbolic")
    env.reset(seed=0, options={"start": (1, 2, 1), "phase": 0, "card": 0})
    _, reward, terminated, _, info = env.step(Action.STOP)
    assert terminated and info["event"] == "arrived" and reward > 0
    for action in (Action.STOP, Action.WAIT):
        with pytest.raises(gym.error.ResetNeeded, match="terminated; call reset"):
            env.step(action)
    with pytest.raises(RuntimeError):  # what the programs report as one line
        env.step(Action.STOP)
    env.reset()
    assert not env.step(Action.WAIT)[2]


# ---- maps ---------------------------------------------------------------------------------------------
def test_maps():
    for name in ("tiny", "small", "town"):
        gmap = get_map(name)
        assert gmap.stops and gmap.intersections
    assert procedural_map(3).rows == procedural_map(3).rows
    assert procedural_map(3).rows != procedural_map(4).rows
    env = gym.make(ENV_ID, map="procedural", map_seed=7, digit_source=StubSource(), render_fps=1000)
    assert env.unwrapped.params.gmap.name == "procedural-7"
    check_env(env.unwrapped)
    with pytest.raises(ValueError, match="border"):
        parse_map(["....", "#1.#", "####"])
    with pytest.raises(ValueError, match="unknown characters"):
        parse_map(["####", "#1x#", "####"])
    with pytest.raises(ValueError, match="distinct"):
        parse_map(["#####", "#1.1#", "#####"])
    with pytest.raises(ValueError, match="connected"):
        parse_map(["#####", "#1#.#", "#####"])


def test_custom_map_rows():
    env = make(map=["#####", "#.1.#", "#.#.#", "#2..#", "#####"], n_cars=1)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


# ---- registration -------------------------------------------------------------------------------------
def test_registration_and_time_limit():
    perceptgym.envs.register_envs()  # a second call is a no-op
    spec = gym.spec(ENV_ID)
    assert spec.max_episode_steps == 200
    json.loads(spec.to_json())  # registered kwargs are JSON-friendly
    env = gym.make(ENV_ID, max_episode_steps=7)
    m = env.unwrapped.model
    card = m.params.gmap.stop_numbers[0]
    trip = make_trip(card, m.params.gmap.stop_numbers)

    def waits_safely(base: int) -> bool:
        for _ in range(7):
            base, _, terminated, _ = m.transition(base, Action.WAIT, trip)
            if terminated:
                return False
        return True

    safe = next(int(b) for b in m.start_bases if waits_safely(int(b)))  # no car drives into it for 7 steps
    env.reset(seed=0, options=start_options(env.unwrapped, safe, card))
    for i in range(7):
        _, _, terminated, truncated, _ = env.step(Action.WAIT)
        assert not terminated and truncated == (i == 6)


def test_make_in_a_fresh_subprocess():
    code = (
        "import gymnasium as gym, sys; env = gym.make('perceptgym:perceptgym/GridDriving-v0'); env.reset(seed=0); "
        "env.step(0); print(type(env.unwrapped).__name__, 'torch' in sys.modules, 'pygame' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["GridDrivingEnv", "False", "False"]


@pytest.mark.slow
def test_async_vector_env():
    venv = gym.make_vec(f"perceptgym:{ENV_ID}", num_envs=2, vectorization_mode="async")
    obs, info = venv.reset(seed=0)
    assert obs.shape == (2,)
    for _ in range(5):
        obs, _reward, _terminated, _truncated, info = venv.step(np.array([0, 3]))
    assert info["action_mask"].shape == (2, 5)
    venv.close()


@pytest.mark.slow
def test_sb3_subproc_vec_env():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # SB3 starts workers with forkserver: the "perceptgym:" prefix makes each worker import (and register) perceptgym.
    venv = make_vec_env(f"perceptgym:{ENV_ID}", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    obs = venv.reset()
    assert obs.shape == (2,)
    obs, _rewards, _dones, infos = venv.step(np.array([0, 1]))
    assert len(infos) == 2 and "reward_terms" in infos[0]
    venv.close()


@pytest.mark.slow
def test_real_mnist_and_cnn_reader():
    """The shipped defaults end to end: MNIST test digits, read by the shipped CNN."""
    env = GridDrivingEnv(obs_mode="perceived", digit_source="mnist-test", reader="cnn", render_mode="rgb_array")
    check_env(env)
    right = 0
    for i in range(50):
        _, info = env.reset(seed=i)
        right += info["card_read"] == info["card"]
    assert right >= 45  # the CNN reads > 99% of MNIST test digits
    assert env.render().shape == (720, 1140, 3)  # the default window_size (1280, 720) on the small map

"""DigitBandit: rewards, regret, seeding, permutations, options, spaces, pickling, rendering (stub digits)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from perceptgym.envs.digit_bandit import ENV_ID, register_digit_bandit
from perceptgym.envs.digit_bandit.core import Action, Params
from perceptgym.envs.digit_bandit.env import DigitBanditEnv

MODES = ("pixels", "perceived", "perceived-confidence", "symbolic")


@pytest.fixture
def make(stub_source, stub_reader):
    def _make(**kwargs) -> DigitBanditEnv:
        kwargs.setdefault("digit_source", stub_source)
        kwargs.setdefault("reader", stub_reader)
        return DigitBanditEnv(**kwargs)

    return _make


def play(env: DigitBanditEnv, choose, n: int, seed: int = 0):
    """Plays n rounds; choose(info_of_last_round_or_None, env) -> action. Returns rewards and infos."""
    rewards, infos = [], []
    for i in range(n):
        env.reset(seed=seed if i == 0 else None)
        _, reward, terminated, truncated, info = env.step(choose(env))
        assert terminated and not truncated
        rewards.append(reward)
        infos.append(info)
    return np.array(rewards), infos


def optimal(env: DigitBanditEnv) -> int:
    snap = env.snapshot()
    return snap["optimal_action"]


@pytest.mark.parametrize("mode", MODES)
def test_check_env_every_mode(make, mode):
    check_env(make(obs_mode=mode), skip_render_check=True)


def test_registered_and_made(stub_source, stub_reader):
    register_digit_bandit()
    register_digit_bandit()  # idempotent
    env = gym.make(ENV_ID, obs_mode="perceived", digit_source=stub_source, reader=stub_reader)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert gym.spec(ENV_ID).entry_point == "perceptgym.envs.digit_bandit.env:DigitBanditEnv"


@pytest.mark.parametrize(("scheme", "right", "wrong"), [("binary", 1.0, 0.0), ("plus_minus", 1.0, -1.0)])
def test_right_label_gives_configured_reward(make, scheme, right, wrong):
    env = make(obs_mode="symbolic", reward_scheme=scheme)
    rewards, infos = play(env, optimal, 50)
    assert np.all(rewards == right)
    assert all(info["regret"] == 0.0 and info["expected_reward"] == right for info in infos)
    rewards, infos = play(env, lambda e: (optimal(e) + 1 + e.np_random.integers(9)) % 10, 50)
    assert np.all(rewards == wrong)
    assert all(info["regret"] == right - wrong and info["expected_reward"] == wrong for info in infos)


def test_symbolic_obs_is_the_true_label_and_info_agrees(make):
    env = make(obs_mode="symbolic")
    for i in range(30):
        obs, _ = env.reset(seed=3 if i == 0 else None)
        _, _, _, _, info = env.step(Action.SEVEN)
        assert obs == info["label"] == info["optimal_action"]


def test_perceived_obs_is_what_the_reader_reads(make):
    from tests.conftest import StubReader

    env = make(obs_mode="perceived", reader=StubReader(confuse={4: 9}))
    assert env.observation_space == make(obs_mode="symbolic").observation_space == gym.spaces.Discrete(10)
    confused = 0
    for i in range(40):
        obs, reset_info = env.reset(seed=0 if i == 0 else None)
        _, _, _, _, info = env.step(0)
        expected = 9 if info["label"] == 4 else info["label"]
        confused += info["label"] == 4
        assert obs == expected == reset_info["label_read"] == info["label_read"]
        assert reset_info["label_confidence"] == info["label_confidence"] == pytest.approx(0.9)
    assert confused > 0


def test_perceived_confidence_obs_has_the_label_and_the_confidence(make):
    from tests.conftest import StubReader

    env = make(obs_mode="perceived-confidence", reader=StubReader(confuse={4: 9}))
    for i in range(40):
        obs, _ = env.reset(seed=0 if i == 0 else None)
        _, _, _, _, info = env.step(0)
        expected = 9 if info["label"] == 4 else info["label"]
        assert obs["label"] == expected == info["label_read"] and obs["confidence"].shape == (1,)
        assert obs["confidence"][0] == pytest.approx(0.9)


def test_perceived_label_is_the_former_name_of_perceived(make):
    env = make(obs_mode="perceived-label")
    assert env.obs_mode == "perceived" and env.observation_space == gym.spaces.Discrete(10)
    same = make(obs_mode="perceived")
    assert gym.utils.env_checker.data_equivalence(env.reset(seed=4), same.reset(seed=4))


def test_regret_with_noise_is_the_expected_reward_gap(make):
    """With label and reward noise the regret is the gap of *expected* rewards, as measured."""
    env = make(obs_mode="symbolic", label_noise=0.3, reward_noise=0.1)
    p_right = 0.7 + 0.03
    exp_right = p_right * 0.9 + (1 - p_right) * 0.1
    exp_wrong = 0.03 * 0.9 + 0.97 * 0.1
    assert env.params.expected_rewards() == pytest.approx((exp_right, exp_wrong))
    rewards, infos = play(env, optimal, 20_000)
    assert rewards.mean() == pytest.approx(exp_right, abs=0.01)
    assert all(info["regret"] == 0.0 for info in infos)
    rewards, infos = play(env, lambda e: (optimal(e) + 1) % 10, 20_000)
    assert rewards.mean() == pytest.approx(exp_wrong, abs=0.01)
    assert infos[0]["regret"] == pytest.approx(exp_right - exp_wrong)


def test_same_seed_same_digits_other_seed_others(make):
    def digits(seed: int) -> np.ndarray:
        env = make(obs_mode="pixels", block_size=16)
        frames = []
        for i in range(40):  # crosses block boundaries
            obs, _ = env.reset(seed=seed if i == 0 else None)
            frames.append(obs)
            env.step(0)
        return np.stack(frames)

    assert np.array_equal(digits(7), digits(7))
    assert not np.array_equal(digits(7), digits(8))
    env = make(obs_mode="pixels")
    first, _ = env.reset(seed=7)
    env.step(0)
    again, _ = env.reset(seed=7)  # a seeded reset restarts the stream
    assert np.array_equal(first, again)


def test_permutation_changes_every_k_rounds_across_resets(make):
    env = make(obs_mode="symbolic", permute_every=5)
    perms = []
    for i in range(16):
        obs, info = env.reset(seed=0 if i == 0 else None)
        assert info["round"] == i
        _, _, _, _, step_info = env.step(0)
        perms.append(env.permutation)
        assert step_info["optimal_action"] == env.permutation[obs]
    assert np.array_equal(perms[0], np.arange(10))  # the task starts unpermuted
    for i in range(1, 16):
        changed = not np.array_equal(perms[i], perms[i - 1])
        assert changed == (i % 5 == 0), i
    env.reset(seed=0)
    assert np.array_equal(env.permutation, np.arange(10))


@pytest.mark.parametrize("bad", [-1, 10, 2.5, "3", None, np.array([1, 2])])
def test_bad_action_raises(make, bad):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an int label in 0\.\.9"):
        env.step(bad)


def test_step_before_reset_raises(make):
    env = make()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(gym.error.ResetNeeded, match="single round"):
        env.step(0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"reset\(seed=...\) must be None or an integer >= 0, got -1"),
        ({"seed": 1.5}, r"seed=.*got 1\.5"),
        ({"seed": True}, r"seed=.*got True"),
        ({"seed": "3"}, r"seed=.*got '3'"),
        ({"options": ["card"]}, r"reset\(options=...\) must be None or a dict, got list"),
        ({"options": {"card": 3}}, r"unknown reset options \['card'\]: this env takes no options"),
    ],
)
def test_bad_seeds_and_options_are_refused_by_name(make, kwargs, match):
    env = make()
    with pytest.raises(ValueError, match=match):
        env.reset(**kwargs)
    obs, _ = env.reset(seed=np.int64(3))  # numpy integers are fine seeds
    assert gym.utils.env_checker.data_equivalence(obs, make().reset(seed=3)[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs_mode": "rgb"}, "obs_mode must be one of"),
        ({"reward_scheme": "gaussian"}, "reward_scheme must be one of"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"label_noise": -0.1}, "label_noise"),
        ({"label_noise": "0.1"}, "label_noise must be a finite number, got '0.1'"),
        ({"reward_noise": True}, "reward_noise must be a finite number, got True"),
        ({"reward_noise": 0.5}, "reward_noise"),
        ({"permute_every": -3}, "permute_every"),
        ({"permute_every": 2.5}, "permute_every"),
        ({"block_size": 0}, "block_size"),
        ({"digit_source": "mnist-validation"}, "unknown digit source"),
        ({"digit_source": "gan:/no/such/gan.pt"}, "no GAN checkpoint file"),
        ({"reader": "cnnn"}, "reader 'cnnn' is neither one of"),
        ({"reader": 3}, "reader must be one of"),
        ({"render_mode": "ansi"}, "render_mode"),
    ],
)
def test_bad_options_raise(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_bad_source_output_raises(make):
    env = make(digit_source=lambda labels, rng: np.zeros((len(labels), 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        env.reset(seed=0)


def test_params_are_frozen():
    with pytest.raises(AttributeError):
        Params().label_noise = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("mode", MODES)
def test_pickle_round_trip_continues_the_same_stream(make, mode):
    env = make(obs_mode=mode, render_mode="rgb_array")
    env.reset(seed=2)
    env.step(1)
    env.render()  # a live renderer must not stop pickling
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        a, b = env.reset(), clone.reset()
        assert gym.utils.env_checker.data_equivalence(a, b)
        assert gym.utils.env_checker.data_equivalence(env.step(3), clone.step(3))


def test_render_rgb_array_and_human(make):
    pytest.importorskip("pygame")
    env = make(obs_mode="perceived", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    env.step(2)
    after = env.render()
    assert before.dtype == np.uint8 and before.ndim == 3 and before.shape[2] == 3
    assert not np.array_equal(before, after)  # the answer and the regret appear
    env.close()
    human = make(render_mode="human")
    human.reset(seed=0)
    human.step(0)
    assert human.render() is None
    human.close()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["mnist-train", "mnist-test"])
def test_real_mnist_source(source):
    """The shipped sources: check_env, seeding, and every shown image is a real digit of the shown label."""
    pytest.importorskip("perceptgym.supervised.perception")
    from perceptgym.supervised.data import load_mnist

    env = DigitBanditEnv(digit_source=source, block_size=64)
    check_env(env, skip_render_check=True)
    mnist = load_mnist()
    images = mnist.train_images if source == "mnist-train" else mnist.test_images
    labels = mnist.train_labels if source == "mnist-train" else mnist.test_labels
    index = {img.tobytes(): int(y) for img, y in zip(images, labels, strict=True)}
    first = []
    for i in range(100):
        obs, _ = env.reset(seed=5 if i == 0 else None)
        _, _, _, _, info = env.step(0)
        assert index[obs.tobytes()] == info["label"]
        first.append(obs)
    obs, _ = env.reset(seed=5)
    assert np.array_equal(obs, first[0])

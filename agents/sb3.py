"""stable-baselines3 (DQN, PPO, A2C) behind the perceptgym agent interface.

* Built from spaces and a config like every agent: the SB3 model is created at once on a placeholder vector
  env with those spaces, so ``act``/``save`` work before ``learn``; ``learn(env)`` swaps the real env in.
* SB3's ``NatureCNN`` (8/4, 4/2, 3/1 convolutions) shrinks a 28×28 digit to nothing, so image observations
  (2-D ``(H, W)`` or 3-D uint8 boxes) get :class:`SmallCnn`; ``Dict`` observations use ``MultiInputPolicy``
  with :class:`SmallCombinedExtractor` (SmallCnn per image key, flatten for the rest).
* One torch thread by default: on a small shared machine PyTorch's default (one thread per core) loses far
  more to contention than it gains for these tiny networks (see ``scripts/benchmark_agents.py``).
* Checkpoint: SB3's own ``.zip`` (it records the SB3 version) plus a ``.json`` sidecar with our format,
  version, agent name, config and space descriptions, checked on load.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

from perceptgym.agents.base import CheckpointError, check_spaces, checkpoint_file, describe_space
from perceptgym.agents.config import check_choice, check_positive_int, check_range, config_from_dict
from perceptgym.agents.loop import Episode, EpisodeCallback, is_success
from perceptgym.agents.vec_env import make_sb3_vec_env

FORMAT = "perceptgym.sb3"
FORMAT_VERSION = 1
FEATURE_EXTRACTORS = ("auto", "small_cnn", "default")


# ---- feature extractors ------------------------------------------------------------------------------------
def is_image_like(space: gym.Space) -> bool:
    """2-D boxes with both sides >= 4 (a grayscale digit) and SB3 image spaces (3-D uint8 in [0, 255])."""
    if not isinstance(space, gym.spaces.Box):
        return False
    return (len(space.shape) == 2 and min(space.shape) >= 4) or is_image_space(space)


class SmallCnn(BaseFeaturesExtractor):
    """Two conv layers (32, 64 channels), strided while the map is >= 12 wide, then a linear layer.

    On 28×28: 5×5 stride 2 → 32×12×12, 3×3 stride 2 → 64×5×5 (the shipped MNIST CNN's layout). Strided
    convolutions instead of conv + max-pool cut the CPU cost ~5× (measured: a PPO update on 2×28×28 digit
    observations went from 155 ms to ~30 ms per minibatch of 256, single thread).

    Takes ``(H, W)`` (one channel; uint8 is scaled to [0, 1] here because SB3 normalises only 3-D image
    spaces) or channel-first ``(C, H, W)``, which SB3 has
    already scaled.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        shape = observation_space.shape
        self._add_channel = len(shape) == 2
        self._scale = 1.0 / 255.0 if self._add_channel and observation_space.dtype == np.uint8 else 1.0
        channels, height, width = (1, *shape) if self._add_channel else shape
        layers: list[nn.Module] = []
        size = min(height, width)
        for kernel, out in ((5, 32), (3, 64)):
            if size >= 12:
                layers += [nn.Conv2d(channels, out, kernel_size=kernel, stride=2), nn.ReLU()]
                size = (size - kernel) // 2 + 1
            else:
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU()]
            channels = out
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, *((1, *shape) if self._add_channel else shape))).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations.float()
        if self._add_channel:
            x = x.unsqueeze(1) * self._scale
        return self.linear(self.cnn(x))


class SmallCombinedExtractor(BaseFeaturesExtractor):
    """For ``Dict`` observations: :class:`SmallCnn` on image-like keys, flatten (Discrete: one-hot) else."""

    def __init__(self, observation_space: gym.spaces.Dict, cnn_output_dim: int = 128):
        super().__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, subspace in observation_space.spaces.items():
            if is_image_like(subspace):
                extractors[key] = SmallCnn(subspace, cnn_output_dim)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += get_flattened_obs_dim(subspace)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([ext(observations[key]) for key, ext in self.extractors.items()], dim=1)


# ---- configs -----------------------------------------------------------------------------------------------
def rate(value: float | str, name: str) -> float | Callable[[float], float]:
    """A constant, or RL Zoo's ``"lin_<v>"`` (linear from v to 0 over training), as SB3 expects."""
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"{name}={value!r}: use a number or 'lin_<start>' (linear decay to 0)")
        try:
            start = float(value[4:])
        except ValueError as e:
            raise ValueError(f"{name}={value!r}: 'lin_' must be followed by a number") from e
        return lambda progress_remaining: progress_remaining * start
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive number or 'lin_<start>'")
    return float(value)


@dataclass(frozen=True)
class SB3Config:
    """Settings every SB3 agent has; algorithm settings are in the subclasses (SB3's names and meanings)."""

    n_envs: int = 1
    """parallel envs the model trains on (fixed per model: SB3 sizes its rollout buffer with it)"""
    learning_rate: float | str = 3e-4
    """a number or 'lin_<start>' (linear decay to 0)"""
    gamma: float = 0.99
    net_arch: list[int] | None = None
    """hidden layer sizes of the policy/value MLP (None: SB3's default)"""
    features_extractor: str = "auto"
    """auto (SmallCnn for images, else SB3's default) | small_cnn | default (SB3's: NatureCNN for images)"""
    features_dim: int = 128
    """output size of SmallCnn"""
    torch_threads: int = 1
    """torch.set_num_threads; 1 is fastest for small nets on a shared 2-core machine"""
    device: str = "cpu"
    verbose: int = 0

    def __post_init__(self) -> None:
        check_positive_int("n_envs", self.n_envs)
        rate(self.learning_rate, "learning_rate")
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_choice("features_extractor", self.features_extractor, FEATURE_EXTRACTORS)
        check_positive_int("features_dim", self.features_dim)
        check_positive_int("torch_threads", self.torch_threads)
        if self.net_arch is not None and not all(isinstance(n, int) and n > 0 for n in self.net_arch):
            raise ValueError(f"net_arch={self.net_arch!r} must be a list of positive layer sizes")

    def algo_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 algorithm (the subclass's own fields)."""
        common = {f for f in SB3Config.__dataclass_fields__ if f not in ("learning_rate", "gamma")}
        kwargs = {k: v for k, v in asdict(self).items() if k not in common}
        kwargs["learning_rate"] = rate(self.learning_rate, "learning_rate")
        if "clip_range" in kwargs:
            kwargs["clip_range"] = rate(self.clip_range, "clip_range")
        return kwargs


@dataclass(frozen=True)
class ActorCriticConfig(SB3Config):
    """What PPO and A2C share: on-policy rollouts with GAE and an entropy bonus."""

    n_steps: int = 2048
    """env steps per env per rollout"""
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("n_steps", self.n_steps)
        check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_range("ent_coef", self.ent_coef, 0.0, 1.0)
        check_range("vf_coef", self.vf_coef, 0.0, 10.0)
        check_range("max_grad_norm", self.max_grad_norm, 0.0, 1e6, low_open=True)


@dataclass(frozen=True)
class PPOConfig(ActorCriticConfig):
    """PPO (SB3 defaults)."""

    batch_size: int = 64
    n_epochs: int = 10
    clip_range: float | str = 0.2
    """a number or 'lin_<start>'"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("n_epochs", self.n_epochs)
        rate(self.clip_range, "clip_range")


@dataclass(frozen=True)
class A2CConfig(ActorCriticConfig):
    """A2C (SB3 defaults)."""

    learning_rate: float | str = 7e-4
    n_steps: int = 5
    gae_lambda: float = 1.0
    normalize_advantage: bool = False


@dataclass(frozen=True)
class DQNConfig(SB3Config):
    """DQN (SB3 defaults except a 100k replay buffer)."""

    learning_rate: float | str = 1e-4
    buffer_size: int = 100_000
    learning_starts: int = 100
    batch_size: int = 32
    tau: float = 1.0
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("buffer_size", "batch_size", "train_freq", "target_update_interval"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("learning_starts", self.learning_starts, allow_zero=True)
        if self.gradient_steps != -1:
            check_positive_int("gradient_steps", self.gradient_steps)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        check_range("max_grad_norm", self.max_grad_norm, 0.0, 1e6, low_open=True)


# ---- callback ----------------------------------------------------------------------------------------------
class EpisodeCallback_(BaseCallback):
    """Reports each finished episode (from SB3's ``Monitor`` info) to a perceptgym episode callback.

    SB3 gives per-step infos only through ``self.locals`` inside ``_on_step``; the ``episode`` entry that
    ``Monitor`` adds at the end of an episode is the one thing read from it. An exception raised by the
    callback (``KeyboardInterrupt`` in tests) propagates out of ``model.learn``, and the caller saves.
    """

    def __init__(self, on_episode: EpisodeCallback, start_episode: int = 0):
        super().__init__()
        self.on_episode = on_episode
        self.episode = start_episode

    def _on_step(self) -> bool:
        dones = self.locals.get("dones", ())
        for info, done in zip(self.locals.get("infos", ()), dones, strict=False):
            if done and "episode" in info:
                ep = info["episode"]
                terminated = not info.get("TimeLimit.truncated", False)
                self.episode += 1  # first, so an exception from the callback leaves a consistent count
                self.on_episode(
                    Episode(
                        self.episode - 1,
                        int(self.num_timesteps),
                        float(ep["r"]),
                        int(ep["l"]),
                        terminated,
                        is_success(info, 0.0, False),
                    )
                )
        return True


# ---- the adapter -------------------------------------------------------------------------------------------
class _SpacesEnv(gym.Env):
    """An env that only has spaces: lets SB3 build a model before the real env is given."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


class SB3Agent:
    """An SB3 algorithm as a perceptgym :class:`perceptgym.agents.base.Learner`; use the subclasses (PPO, A2C, DQN)."""

    name: ClassVar[str] = "sb3"
    algo_class: ClassVar[type[BaseAlgorithm]]
    config_class: ClassVar[type[SB3Config]] = SB3Config

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SB3Config | dict | None = None,
        seed: int | None = None,
    ):
        self.observation_space, self.action_space = observation_space, action_space
        self.config = config_from_dict(self.config_class, config)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        torch.set_num_threads(self.config.torch_threads)
        placeholder = DummyVecEnv([lambda: _SpacesEnv(observation_space, action_space)] * self.config.n_envs)
        policy, policy_kwargs = self._policy()
        self.model = self.algo_class(
            policy,
            placeholder,
            seed=seed,
            device=self.config.device,
            verbose=self.config.verbose,
            policy_kwargs=policy_kwargs,
            **self.config.algo_kwargs(),
        )

    def _policy(self) -> tuple[str, dict[str, Any]]:
        space, cfg = self.observation_space, self.config
        kwargs: dict[str, Any] = {}
        if cfg.net_arch is not None:
            kwargs["net_arch"] = list(cfg.net_arch)
        small = cfg.features_extractor == "small_cnn" or cfg.features_extractor == "auto"
        if isinstance(space, gym.spaces.Dict):
            if small and any(is_image_like(s) for s in space.spaces.values()):
                kwargs.update(
                    features_extractor_class=SmallCombinedExtractor,
                    features_extractor_kwargs={"cnn_output_dim": cfg.features_dim},
                )
            return "MultiInputPolicy", kwargs
        if small and is_image_like(space):
            kwargs.update(
                features_extractor_class=SmallCnn, features_extractor_kwargs={"features_dim": cfg.features_dim}
            )
            return "CnnPolicy", kwargs
        if cfg.features_extractor == "small_cnn":
            raise ValueError(f"features_extractor='small_cnn' needs an image observation space, got {space}")
        return ("CnnPolicy" if is_image_space(space) else "MlpPolicy"), kwargs

    # ---- acting ------------------------------------------------------------------------------------------
    def act(self, obs: Any, *, explore: bool = False) -> Any:
        """The policy's action; ``explore`` samples it (DQN: ε-greedy with the agent's own Generator)."""
        if explore and isinstance(self.model, DQN):
            if self.rng.random() < self.model.exploration_rate:
                return self._to_env_action(self.rng.integers(self.action_space.n) + self.action_space.start)
            explore = False
        action, _ = self.model.predict(obs, deterministic=not explore)
        return self._to_env_action(action)

    def _to_env_action(self, action: Any) -> Any:
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(np.asarray(action).item())
        return np.asarray(action)

    # ---- learning ----------------------------------------------------------------------------------------
    def make_vec_env(self, env: gym.Env | VecEnv | Callable[[], gym.Env] | str, seed: int | None = None) -> VecEnv:
        """The VecEnv SB3 trains on: a VecEnv as is, a factory or id ×``n_envs``, or one env (n_envs=1).

        An id with a native vector env (``gym.make_vec(..., "vector_entry_point")``) trains on it through
        :class:`perceptgym.agents.vec_env.VectorEnvAdapter`: ``n_envs`` sub-envs, no Python env each.
        """
        n_envs = self.config.n_envs
        if isinstance(env, str):
            return make_sb3_vec_env(env, n_envs, seed)
        if isinstance(env, VecEnv):
            vec = env
        elif isinstance(env, gym.Env):
            if n_envs != 1:
                raise ValueError(
                    f"{self.name} trains on n_envs={n_envs} envs: pass an env id, a factory or a VecEnv, not one env"
                )
            vec = DummyVecEnv([lambda: Monitor(env)])
        else:
            vec = make_vec_env(env, n_envs=n_envs, seed=seed)
        if seed is not None:
            vec.seed(seed)
        return vec

    def learn(
        self,
        env: Any,
        total_timesteps: int,
        *,
        seed: int | None = None,
        callback: Any = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SB3Agent:
        """Trains on ``env`` (see :meth:`make_vec_env`) for ``total_timesteps`` more env steps.

        ``callback`` is an SB3 callback or a perceptgym episode callback (``callback(Episode)``).
        """
        torch.set_num_threads(self.config.torch_threads)
        if env is not self.model.env:  # a new env starts with a reset; the same one continues its episodes
            self.model.set_env(self.make_vec_env(env, seed if seed is not None else self.seed), force_reset=True)
        if callback is not None and not isinstance(callback, BaseCallback):
            callback = EpisodeCallback_(callback)
        self.model.learn(
            total_timesteps, callback=callback, reset_num_timesteps=reset_num_timesteps, progress_bar=progress_bar
        )
        return self

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save(self, path: str | Path, *, replay_buffer: bool = False) -> Path:
        """Writes ``path`` (.zip, SB3's format) and a .json sidecar (ours); DQN may add its replay buffer."""
        path = checkpoint_file(path, ".zip")
        self.model.save(path)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "agent": self.name,
            "config": asdict(self.config),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "seed": self.seed,
            "num_timesteps": self.num_timesteps,
            "rng_state": self.rng.bit_generator.state,
        }
        if replay_buffer and hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            self.model.save_replay_buffer(path.with_suffix(".replay.pkl"))
            meta["replay_buffer"] = path.with_suffix(".replay.pkl").name
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(
        cls, path: str | Path, observation_space: gym.Space | None = None, action_space: gym.Space | None = None
    ) -> SB3Agent:
        """Reads a checkpoint written by :meth:`save`; refuses other spaces, formats and newer versions."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(".zip")
        sidecar = path.with_suffix(".json")
        if not path.is_file() or not sidecar.is_file():
            raise CheckpointError(f"{path}: an SB3 checkpoint needs both {path.name} and {sidecar.name}")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{sidecar}: unreadable checkpoint sidecar: {e}") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else meta
            raise CheckpointError(f"{sidecar}: format {got!r}, expected {FORMAT!r}")
        if not isinstance(meta.get("version"), int) or meta["version"] > FORMAT_VERSION:
            raise CheckpointError(
                f"{sidecar}: format version {meta.get('version')!r} is newer than this "
                f"perceptgym reads ({FORMAT_VERSION}); upgrade perceptgym"
            )
        agent_cls = SB3_AGENTS.get(meta.get("agent"))
        if agent_cls is None or (cls is not SB3Agent and agent_cls is not cls):
            raise CheckpointError(
                f"{sidecar}: checkpoint holds agent {meta.get('agent')!r}, expected "
                f"{cls.name if cls is not SB3Agent else sorted(SB3_AGENTS)}"
            )
        check_spaces(meta, observation_space, action_space, path)
        agent = agent_cls.__new__(agent_cls)
        agent.config = config_from_dict(agent_cls.config_class, meta["config"])
        torch.set_num_threads(agent.config.torch_threads)
        try:
            agent.model = agent_cls.algo_class.load(path, device=agent.config.device)
        except Exception as e:
            raise CheckpointError(f"{path}: SB3 could not load this model: {e!r}") from e
        agent.observation_space = observation_space or agent.model.observation_space
        agent.action_space = action_space or agent.model.action_space
        agent.seed = meta.get("seed")
        agent.rng = np.random.default_rng()
        agent.rng.bit_generator.state = meta["rng_state"]
        if meta.get("replay_buffer"):
            agent.model.load_replay_buffer(path.with_name(meta["replay_buffer"]))
        return agent


class PPOAgent(SB3Agent):
    name = "ppo"
    algo_class = PPO
    config_class = PPOConfig


class A2CAgent(SB3Agent):
    name = "a2c"
    algo_class = A2C
    config_class = A2CConfig


class DQNAgent(SB3Agent):
    name = "dqn"
    algo_class = DQN
    config_class = DQNConfig


SB3_AGENTS: dict[str, type[SB3Agent]] = {c.name: c for c in (PPOAgent, A2CAgent, DQNAgent)}

"""stable-baselines3 (DQN, PPO, A2C) and sb3-contrib (MaskablePPO) behind the perceptgym agent interface.

* Built from spaces and a config like every agent: the SB3 model is created at once on a placeholder vector
  env with those spaces, so ``act``/``save`` work before ``learn``; ``learn(env)`` swaps the real env in.
* SB3's ``NatureCNN`` (8/4, 4/2, 3/1 convolutions) shrinks a 28×28 digit to nothing, so image observations
  (2-D ``(H, W)`` or 3-D uint8 boxes) get :class:`SmallCnn`; ``Dict`` observations use ``MultiInputPolicy``
  with :class:`SmallCombinedExtractor` (SmallCnn per image key, flatten for the rest), or with
  ``features_extractor: digit_encoder`` :class:`DigitDictExtractor` (one SmallCnn for all image keys). Both read
  each distinct image of a batch once (GridDriving's card repeats for a whole episode).
* One torch thread by default: on a small shared machine PyTorch's default (one thread per core) loses far
  more to contention than it gains for these tiny networks (see ``scripts/benchmark_agents.py``). The agent
  sets it around its own work and restores the caller's.
* SB3 draws from the global RNGs (torch's for sampled actions, ``np.random`` for DQN and the buffers): the agent
  keeps its own copy of them (:class:`perceptgym.supervised.global_state.PrivateGlobalRngs`), swapped in while SB3
  runs, so it is reproducible from its seed and never changes the caller's RNGs.
* Checkpoint: one ``.pt`` in the checkpoint envelope, read with ``torch.load(weights_only=True)``: the state dicts
  SB3 names (policy, optimizer), a JSON config from which the model is rebuilt (algorithm, config, policy and its
  kwargs, spaces) and the counters and RNG states that make resuming exact. DQN's replay buffer, when asked for,
  goes to a ``<name>.replay-<token>.npz`` beside it (only the filled part, ``allow_pickle=False``).
  SB3's own ``.zip`` (version 1 of our format, with a ``.json`` sidecar) cloudpickles parts of the model, so
  loading one can run code from the file: it loads only with ``trust_checkpoint=True``.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.save_util import recursive_getattr, recursive_setattr
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from torch import nn

from perceptgym.agents.base import (
    CheckpointError,
    SpaceMismatchError,
    check_spaces,
    checkpoint_file,
    describe_space,
    space_from_json,
    space_to_json,
)
from perceptgym.agents.config import check_choice, check_positive_int, check_range, config_from_dict
from perceptgym.agents.loop import Episode, EpisodeCallback, is_success
from perceptgym.agents.slot_table import CardSlots, SlotTableDQNPolicy, TableAdam
from perceptgym.agents.vec_env import make_sb3_vec_env
from perceptgym.supervised.checkpoint import check_header, load_checkpoint, load_npz, save_checkpoint, save_npz
from perceptgym.supervised.classifier import InferenceNet, folded_features, load_classifier
from perceptgym.supervised.global_state import GlobalRngStates, PrivateGlobalRngs, kept_global_state, torch_threads

FORMAT = "perceptgym.sb3"
FORMAT_VERSION = 2
"""2: our own ``.pt`` (state dicts + JSON config); 1: SB3's pickled ``.zip`` plus a ``.json`` sidecar (trusted only)"""
REPLAY_FORMAT = "perceptgym.sb3_replay_buffer"
REPLAY_VERSION = 1
LIBRARIES = ("torch", "numpy", "gymnasium", "stable-baselines3")
RUNTIME_ATTRIBUTES = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_n_calls",
    "exploration_rate",
    "_current_progress_remaining",
)
"""SB3 counters saved with the model, so that a resumed run updates its target network and schedules on time"""
REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
UNTRUSTED_ZIP = (
    "is a stable-baselines3 .zip checkpoint. Loading one unpickles Python objects stored in it (SB3 saves parts "
    "of the model with cloudpickle), so a file from someone else can run any code on this machine. Load it only "
    "if you made it yourself: pass trust_checkpoint=True (--trust-checkpoint), then save the agent again to "
    "convert it to perceptgym's safe .pt format"
)
FEATURE_EXTRACTORS = ("auto", "small_cnn", "digit_encoder", "digit_slots", "digit_table", "default")


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


def encode_distinct(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``encoder(images)``, with the encoder run once per distinct image of the batch (the same result).

    GridDriving's ``dict`` observations repeat: the trip card is the same image for a whole episode and the sign
    is blank away from the stops. In a PPO minibatch of 1,024 dict observations (2,048 digit images) about 420
    were distinct (measured, random policy, 64 envs), so the CNN, most of PPO's time, does a fifth of the work.
    Images are grouped by a random projection and the grouping is checked exactly (a collision, never seen,
    falls back to encoding every image); gradients flow to every copy through the indexing.
    """
    n = images.shape[0]
    if n < 2:
        return encoder(images)
    flat = images.reshape(n, -1)
    if not flat.dtype.is_floating_point:
        flat = flat.float()
    # a fixed probe from its own generator (torch's global RNG is untouched); integer pixel values projected on
    # it are distinct for distinct images unless by a coincidence, which the check below catches
    probe = torch.rand(flat.shape[1], generator=torch.Generator().manual_seed(0), dtype=flat.dtype) + 0.5
    _, inverse = torch.unique(flat @ probe.to(flat.device), return_inverse=True)
    distinct = int(inverse.max()) + 1
    if distinct == n:
        return encoder(images)
    # the first row of each group, found deterministically (scatter with repeated indices keeps any one)
    rows = torch.arange(n, device=images.device)
    first = torch.full((distinct,), n, dtype=rows.dtype, device=images.device).scatter_reduce_(
        0, inverse, rows, reduce="amin"
    )
    if not torch.equal(flat[first][inverse], flat):
        return encoder(images)
    return encoder(images[first])[inverse]


class RowMemo:
    """Reuses an encoder's features of the previous batch for rows whose image has not changed.

    SB3 collects a rollout by calling the policy on one observation per env at every step, without gradients
    and with the weights fixed; a GridDriving env's card stays the same for its whole episode and its sign
    mostly stays blank, so most rows repeat the previous step's row. Only no-grad, eval-mode calls are
    memoised, and only while the encoder's weights equal (exactly) the ones the memo was made with: an
    optimiser step, ``load_state_dict`` or an in-place edit of ``.data`` all start a new memo.
    """

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.images: torch.Tensor | None = None
        self.features: torch.Tensor | None = None

    def encode(self, encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or encoder.training:
            return encode_distinct(encoder, images)
        weights = [p.detach() for p in encoder.parameters()]
        last = self.images
        same_weights = len(weights) == len(self.weights) and all(
            a.shape == b.shape and a.device == b.device and torch.equal(a, b)
            for a, b in zip(weights, self.weights, strict=True)
        )
        if not same_weights:  # copies: an optimiser step changes the parameters in place
            self.weights = [w.clone() for w in weights]
        layout = None if last is None else (last.shape, last.dtype, last.device)
        if not same_weights or layout != (images.shape, images.dtype, images.device):
            features = encode_distinct(encoder, images)
        else:
            changed = torch.nonzero((images != last).reshape(len(images), -1).any(1)).squeeze(1)
            features = self.features.clone()
            if len(changed):
                features[changed] = encode_distinct(encoder, images[changed])
        self.images, self.features = images.clone(), features
        return features


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
        return torch.cat(
            [
                encode_distinct(ext, observations[key]) if isinstance(ext, SmallCnn) else ext(observations[key])
                for key, ext in self.extractors.items()
            ],
            dim=1,
        )


class DigitDictExtractor(BaseFeaturesExtractor):
    """For GridDriving's ``dict`` observation: one digit encoder shared by every image key, and a state embedding.

    The card and the sign are the same kind of thing (a handwritten digit), so one :class:`SmallCnn` reads both:
    it learns digits from twice the images, and a card and a sign that show the same number get the same
    features, which is what deciding "is this my stop?" needs. The ``Discrete`` state arrives one-hot (SB3's
    preprocessing), so a bias-free linear layer on it is an embedding table (looked up by index, not multiplied).
    The parts are fused by one linear layer. PPO and A2C initialise all of it orthogonally (SB3's ``ortho_init``).

    It computes what it would compute image by image, faster: each distinct image of a batch is read once
    (:func:`encode_distinct`), and while SB3 collects a rollout only the rows whose image changed since the
    last step are read (:class:`RowMemo`). With both, PPO's pixels-rung recipe (64 envs) trains several times
    faster on one thread (docs/results.md).
    """

    def __init__(
        self, observation_space: gym.spaces.Dict, digit_dim: int = 64, state_dim: int = 64, fused_dim: int = 256
    ):
        images = [k for k, s in observation_space.spaces.items() if is_image_like(s)]
        others = [k for k in observation_space.spaces if k not in images]
        if not images or len({observation_space[k].shape for k in images}) != 1:
            raise ValueError(
                f"features_extractor='digit_encoder' needs image keys of one shape, got {observation_space}"
            )
        super().__init__(observation_space, features_dim=fused_dim)
        self.images, self.others = images, others
        self.digits = SmallCnn(observation_space[images[0]], digit_dim)
        n_other = sum(get_flattened_obs_dim(observation_space[k]) for k in others)
        self.state = nn.Linear(n_other, state_dim, bias=False) if others else None
        # one Discrete key (GridDriving's state) arrives one-hot: its index picks the layer's column, the same
        # result as the matmul over all n columns
        self._state_is_index = len(others) == 1 and isinstance(observation_space[others[0]], gym.spaces.Discrete)
        width = digit_dim * len(images) + (state_dim if others else 0)
        self.fuse = nn.Sequential(nn.Linear(width, fused_dim), nn.ReLU())
        self._memo = RowMemo()

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        # one pass over all image keys: one call of the CNN, and a sign that shows the card's image is read once
        digits = self._memo.encode(self.digits, torch.cat([observations[k] for k in self.images]))
        parts = list(digits.split(observations[self.images[0]].shape[0]))
        if self._state_is_index:
            index = observations[self.others[0]].flatten(1).argmax(1)
            parts.append(nn.functional.embedding(index, self.state.weight.t()))
        elif self.state is not None:
            parts.append(self.state(torch.cat([observations[k].flatten(1).float() for k in self.others], dim=1)))
        return self.fuse(torch.cat(parts, dim=1))


class DigitSlotsExtractor(BaseFeaturesExtractor):
    """For GridDriving's ``dict`` observation: the card picks one of ``n_slots`` learned state tables.

    The task's structure is "which of ten goals, then drive there", so the optimal policy is a different
    function of the state for every card digit. :class:`DigitDictExtractor` adds card and state features and
    leaves the network to discover that product; here it is built in. The digit encoder (one network for card
    and sign, as there) ends in a softmax over ``n_slots`` slots, the agent's own reading of the card, learned
    from reward alone (no labels: which slot a digit goes to is whatever pays); the state is an embedding
    (``state_dim``) and the features are the outer product of the two, so a linear policy head on them is one
    state-to-logits table per slot, mixed by the reading; the state embedding itself is a feature too, for what
    does not depend on the goal (the traffic: without it each slot learnt not to crash on its own, and
    collisions were most of the failures). The sign is read into the same slots and compared
    with the card (their slot distributions' dot product: "is this my stop?", which a map whose stop numbers
    change per episode needs), and the sign's slots are features too.

    With the progress reward term, PPO on it learns to read and drive where :class:`DigitDictExtractor` stays at
    the nearest-stop policy (docs/results.md). ``encoder`` replaces the digit network, e.g. the shipped CNN's
    trained layers for the pretrained-encoder row (:func:`pretrained_digit_encoder`); it maps ``(n, 28, 28)``
    uint8 images to ``(n, encoder_dim)`` features.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        n_slots: int = 16,
        state_dim: int = 64,
        digit_dim: int = 64,
        context_key: str = "card",
        encoder: str | None = None,
    ):
        images = [k for k, s in observation_space.spaces.items() if is_image_like(s)]
        others = [k for k in observation_space.spaces if k not in images]
        if (
            context_key not in images
            or len({observation_space[k].shape for k in images}) != 1
            or len(others) != 1
            or not isinstance(observation_space[others[0]], gym.spaces.Discrete)
        ):
            raise ValueError(
                f"features_extractor='digit_slots' needs a Dict of image keys of one shape, {context_key!r} among "
                f"them, and one Discrete state key (GridDriving's 'dict' observation), got {observation_space}"
            )
        check_positive_int("n_slots", n_slots)
        check_positive_int("state_dim", state_dim)
        others_images = [k for k in images if k != context_key]
        super().__init__(observation_space, features_dim=state_dim * (n_slots + 1) + len(others_images) * (n_slots + 1))
        self.images = [context_key, *others_images]
        self.state_key = others[0]
        self.digits, digit_dim = digit_network(observation_space[context_key], digit_dim, encoder)
        self.slots = nn.Linear(digit_dim, n_slots)
        self.state = nn.Embedding(observation_space[self.state_key].n, state_dim)
        nn.init.normal_(self.state.weight)  # unit entries: SB3's orthogonal init passes over embeddings
        self._memo = RowMemo()

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        n = observations[self.images[0]].shape[0]
        digits = self._memo.encode(self.digits, torch.cat([observations[k] for k in self.images]))
        slots = torch.softmax(self.slots(digits), dim=1).split(n)
        card = slots[0]
        state = self.state(observations[self.state_key].flatten(1).argmax(1))
        parts = [(state.unsqueeze(2) * card.unsqueeze(1)).flatten(1), state]
        for other in slots[1:]:
            parts += [other, (other * card).sum(1, keepdim=True)]
        return torch.cat(parts, dim=1)


class FrozenDigitFeatures(nn.Module):
    """A trained classifier's layers up to its penultimate features, fixed: uint8 ``(n, 28, 28)`` in.

    The weights are :class:`perceptgym.supervised.classifier.InferenceNet`'s (preprocessing and BatchNorm
    folded in), kept as buffers: no optimiser sees them and SB3's orthogonal initialisation, which resets every
    ``nn.Linear``/``nn.Conv2d`` of a policy, passes over them; they are saved with the policy's state dict.
    """

    def __init__(self, net: InferenceNet):
        super().__init__()
        self.arch = net.arch
        self.n_layers = len(net.hidden)
        for i, (w, b) in enumerate(net.hidden):
            self.register_buffer(f"w{i}", w.clone())
            self.register_buffer(f"b{i}", b.clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        weights = [(getattr(self, f"w{i}"), getattr(self, f"b{i}")) for i in range(self.n_layers)]
        return folded_features(self.arch, images.float(), weights)


def digit_network(space: gym.spaces.Box, digit_dim: int, encoder: str | None) -> tuple[nn.Module, int]:
    """The digit reader of the slot extractors and its output width: a :class:`SmallCnn` learned from reward, or
    with ``encoder`` (:func:`pretrained_digit_encoder`'s names) a trained classifier's layers, frozen."""
    if encoder is None:
        return SmallCnn(space, digit_dim), digit_dim
    # a trained classifier's features are large (ReLU units of a net trained to 99%): standardised, so the slot
    # probabilities start soft instead of saturated at whatever the random initial slot layer picks
    encoder_net, width = pretrained_digit_encoder(encoder)
    return nn.Sequential(encoder_net, nn.LayerNorm(width, elementwise_affine=False)), width


def pretrained_digit_encoder(name: str) -> tuple[nn.Module, int]:
    """A classifier's trained layers, frozen, as a digit encoder (:class:`FrozenDigitFeatures`) and its width.

    ``name``: ``"cnn"`` or ``"mlp"`` (the shipped classifiers) or the path of a classifier checkpoint.
    """
    from perceptgym.supervised.perception import SHIPPED

    loaded = load_classifier(SHIPPED[name] if name in ("cnn", "mlp") else Path(name))
    return FrozenDigitFeatures(InferenceNet(loaded.model, loaded.preprocess)), loaded.model.cfg.hidden


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
    """auto (SmallCnn for images, else SB3's default) | small_cnn | digit_encoder (Dict: one SmallCnn shared by the
    image keys, fused with a state embedding) | digit_slots (GridDriving's dict: the card read into slots, each
    slot its own state table) | default (SB3's: NatureCNN for images)"""
    features_dim: int = 128
    """output size of SmallCnn (digit_slots: also the state embedding's)"""
    n_slots: int = 16
    """digit_slots: the slots a card is read into (one state table each)"""
    pretrained_encoder: str | None = None
    """digit_slots, digit_table: read the digits with a trained classifier's layers, frozen: cnn | mlp | a
    classifier checkpoint path (None: a SmallCnn learned from reward)"""
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
        check_positive_int("n_slots", self.n_slots)
        if self.pretrained_encoder is not None and self.features_extractor not in ("digit_slots", "digit_table"):
            raise ValueError(
                f"pretrained_encoder={self.pretrained_encoder!r} needs features_extractor='digit_slots' or "
                "'digit_table', "
                f"got {self.features_extractor!r}"
            )
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
    """DQN with defaults for small envs (SB3's are tuned for Atari's 10M-step runs).

    SB3 updates the target network every 10,000 steps and explores over 10% of the run: on CliffWalking or an
    8-state chain its greedy policy never reaches the goal in 50k steps. A 10× larger learning rate, a target
    update every 500 steps and exploration over 30% of the run reach the optimum there (CliffWalking -13 in
    30k steps, FrozenLake, an 8-state chain in 5k; see tests/agents/test_deep_defaults.py).
    """

    learning_rate: float | str = 1e-3
    buffer_size: int = 50_000
    learning_starts: int = 1_000
    batch_size: int = 64
    tau: float = 1.0
    train_freq: int = 4
    gradient_steps: int = 1
    target_update_interval: int = 500
    exploration_fraction: float = 0.3
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    table_alpha: float = 0.1
    """digit_table: the tables' Q-learning step (each entry moves by this times each TD error that uses it)"""
    shared_table: bool = True
    """digit_table: a Q-table shared by all cards besides the per-slot ones"""
    double_q: bool = False
    """digit_table: double Q-learning's target (the online network chooses, the target network values)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("table_alpha", self.table_alpha, 0.0, 10.0, low_open=True)
        for name in ("buffer_size", "batch_size", "train_freq", "target_update_interval"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("learning_starts", self.learning_starts, allow_zero=True)
        if self.gradient_steps != -1:
            check_positive_int("gradient_steps", self.gradient_steps)
        check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            check_range(name, getattr(self, name), 0.0, 1.0)
        check_range("max_grad_norm", self.max_grad_norm, 0.0, 1e6, low_open=True)

    def algo_kwargs(self) -> dict[str, Any]:
        kwargs = super().algo_kwargs()
        for name in ("table_alpha", "shared_table", "double_q"):  # the digit_table policy's, not DQN's
            del kwargs[name]
        return kwargs


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


class VecActionMasks(VecEnvWrapper):
    """``action_masks()`` for sb3-contrib's MaskablePPO, from the envs' ``info["action_mask"]``.

    GridDriving (single or native vector env) reports the valid actions of the state it is in with every
    observation; this keeps the mask that goes with each env's current observation (after an autoreset: the
    reset's), so ``env_method("action_masks")`` gives one row per env. An env that reports no mask allows every
    action.
    """

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self._masks = np.ones((self.num_envs, self.action_space.n), dtype=bool)

    def _update(self, indices: Any, infos: Sequence[dict[str, Any]]) -> None:
        for i, info in zip(indices, infos, strict=True):
            mask = info.get("action_mask")
            self._masks[i] = True if mask is None else np.asarray(mask, dtype=bool)

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._update(range(self.num_envs), self.venv.reset_infos)
        return obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._update(range(self.num_envs), infos)
        ended = np.flatnonzero(dones).tolist()
        self._update(ended, [self.venv.reset_infos[i] for i in ended])  # the next episode's first state
        return obs, rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        return self._masks.copy()

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or self.venv.has_attr(attr_name)

    def env_method(self, method_name: str, *method_args, indices: Any = None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks":
            return [self._masks[i].copy() for i in self._get_indices(indices)]
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)


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
        # SB3 seeds and draws from the global RNGs: it does so in the agent's own copy of them
        self._global_rngs = PrivateGlobalRngs.seeded(seed)
        # copies: SB3 seeds and samples the model's spaces, which must not be the caller's objects
        spaces = copy.deepcopy((observation_space, action_space))
        placeholder = DummyVecEnv([lambda: _SpacesEnv(*spaces)] * self.config.n_envs)
        policy, policy_kwargs = self._policy()
        with self._global_rngs.active(self.config.torch_threads):
            self.model = self.algo_class(
                policy,
                placeholder,
                seed=seed,
                device=self.config.device,
                verbose=self.config.verbose,
                policy_kwargs=policy_kwargs,
                **self.config.algo_kwargs(),
            )

    def _policy(self) -> tuple[str | type, dict[str, Any]]:
        space, cfg = self.observation_space, self.config
        kwargs: dict[str, Any] = {}
        if cfg.net_arch is not None:
            kwargs["net_arch"] = list(cfg.net_arch)
        small = cfg.features_extractor == "small_cnn" or cfg.features_extractor == "auto"
        if cfg.features_extractor.startswith("digit_") and not isinstance(space, gym.spaces.Dict):
            raise ValueError(
                f"features_extractor={cfg.features_extractor!r} needs a Dict observation space, got {space}"
            )
        if cfg.features_extractor == "digit_encoder":
            kwargs.update(
                features_extractor_class=DigitDictExtractor,
                features_extractor_kwargs={"digit_dim": cfg.features_dim, "state_dim": cfg.features_dim},
            )
            return "MultiInputPolicy", kwargs
        if cfg.features_extractor == "digit_slots":
            kwargs.update(
                features_extractor_class=DigitSlotsExtractor,
                features_extractor_kwargs={
                    "n_slots": cfg.n_slots,
                    "state_dim": cfg.features_dim,
                    "digit_dim": cfg.features_dim,
                    "encoder": cfg.pretrained_encoder,
                },
            )
            return "MultiInputPolicy", kwargs
        if cfg.features_extractor == "digit_table":
            if not isinstance(cfg, DQNConfig):
                raise ValueError("features_extractor='digit_table' is a Q-table head: it is for dqn only")
            kwargs.pop("net_arch", None)
            extractor = {"n_slots": cfg.n_slots, "digit_dim": cfg.features_dim, "shared_table": cfg.shared_table}
            if cfg.pretrained_encoder is not None:  # only then: checkpoints compare these kwargs exactly
                extractor["encoder"] = cfg.pretrained_encoder
            kwargs.update(
                features_extractor_class=CardSlots,
                features_extractor_kwargs=extractor,
                optimizer_class=TableAdam,
                optimizer_kwargs={"table_step": cfg.table_alpha * cfg.batch_size},
                double_q=cfg.double_q,
            )
            return SlotTableDQNPolicy, kwargs
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
        if explore:  # sampling draws from torch's global RNG: the agent's own
            with self._global_rngs.torch_active(self.config.torch_threads):
                action, _ = self.model.predict(obs, deterministic=False)
        else:
            with torch_threads(self.config.torch_threads):
                action, _ = self.model.predict(obs, deterministic=True)
        return self._to_env_action(action)

    def _wrap_vec_env(self, vec: VecEnv) -> VecEnv:
        """The VecEnv as this algorithm needs it (MaskablePPO: with ``action_masks()``)."""
        return vec

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
            return self._wrap_vec_env(make_sb3_vec_env(env, n_envs, seed))
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
        return self._wrap_vec_env(vec)

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
        if callback is not None and not isinstance(callback, BaseCallback):
            callback = EpisodeCallback_(callback)
        with self._global_rngs.active(self.config.torch_threads):
            if env is not self.model.env:  # a new env starts with a reset; the same one continues its episodes
                self.model.set_env(self.make_vec_env(env, seed if seed is not None else self.seed), force_reset=True)
            self.model.learn(
                total_timesteps, callback=callback, reset_num_timesteps=reset_num_timesteps, progress_bar=progress_bar
            )
        return self

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def _policy_description(self) -> dict[str, Any]:
        """The policy class and kwargs as JSON (classes by name): saved, and compared on load with what is rebuilt."""
        policy, kwargs = self._policy()
        if not isinstance(policy, str):
            policy = policy.__name__
        return {"policy": policy, "policy_kwargs": json.loads(json.dumps(kwargs, default=lambda v: v.__name__))}

    def save(self, path: str | Path, *, replay_buffer: bool = False, inference: bool = False) -> Path:
        """Writes ``path`` (``.pt`` appended if missing); DQN's replay buffer too when ``replay_buffer``.

        ``inference``: the policy alone, its floating-point weights in float16 (a quarter of a training
        checkpoint, which also holds the optimiser's two moments): for shipping a trained agent. It loads as
        float32 and acts as saved up to float16 rounding; training it further starts a fresh optimiser.
        """
        path = checkpoint_file(path, ".pt")
        model = self.model
        names, variables = model._get_torch_save_params()
        if inference:
            names = [name for name in names if name == "policy"]
        meta = {
            "agent": self.name,
            "algorithm": self.algo_class.__name__,
            "config": asdict(self.config),
            **self._policy_description(),
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "space_specs": {
                "observation_space": space_to_json(self.observation_space),
                "action_space": space_to_json(self.action_space),
            },
            "seed": self.seed,
            "rng_state": self.rng.bit_generator.state,
            "runtime": {k: getattr(model, k) for k in RUNTIME_ATTRIBUTES if hasattr(model, k)},
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "replay_buffer": None,
            "inference": inference,
        }
        buffer = getattr(model, "replay_buffer", None)
        if replay_buffer and buffer is not None and not inference:
            # a new name each time: the checkpoint written last always names a complete buffer file
            replay_path = path.with_name(f"{path.stem}.replay-{secrets.token_hex(4)}.npz")
            _save_replay_buffer(buffer, replay_path)
            meta["replay_buffer"] = replay_path.name
        payload = {
            "meta": json.dumps(meta),
            "params": {name: self._saved_weights(recursive_getattr(model, name), name, inference) for name in names},
            "torch_variables": {name: recursive_getattr(model, name) for name in variables},
            "global_rngs": self._global_rngs.states.to_payload(),
        }
        save_checkpoint(path, FORMAT, FORMAT_VERSION, payload, libraries=LIBRARIES)
        for old in path.parent.glob(f"{path.stem}.replay-*.npz"):  # buffers of earlier saves
            if old.name != meta["replay_buffer"]:
                old.unlink(missing_ok=True)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        *,
        trust_checkpoint: bool = False,
    ) -> SB3Agent:
        """Reads a checkpoint written by :meth:`save`; refuses other spaces, formats and newer versions.

        An SB3 ``.zip`` (what perceptgym wrote before version 2) loads only with ``trust_checkpoint=True``: SB3
        unpickles it, which can run code from the file.
        """
        path = Path(path)
        if path.suffix == ".zip":
            if not trust_checkpoint:
                raise CheckpointError(f"{path} {UNTRUSTED_ZIP}")
            return cls._load_trusted_zip(path, observation_space, action_space)
        if path.suffix != ".pt":
            path = path.with_name(path.name + ".pt")
        ck = load_checkpoint(path, FORMAT, FORMAT_VERSION)
        try:
            meta = json.loads(ck["meta"])
            agent_cls = cls._checkpoint_class(meta.get("agent"), path)
            check_spaces(meta, observation_space, action_space, path)
            obs_space = observation_space or space_from_json(meta["space_specs"]["observation_space"])
            act_space = action_space or space_from_json(meta["space_specs"]["action_space"])
            config = config_from_dict(agent_cls.config_class, meta["config"])
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: inconsistent SB3 checkpoint ({type(e).__name__}: {e})") from e
        except ValueError as e:
            if isinstance(e, (CheckpointError, SpaceMismatchError)):
                raise
            raise CheckpointError(f"{path}: inconsistent SB3 checkpoint ({e})") from e
        agent = agent_cls(obs_space, act_space, config, seed=meta.get("seed"))
        if agent._policy_description() != {k: meta.get(k) for k in ("policy", "policy_kwargs")}:
            raise CheckpointError(
                f"{path}: saved with policy {meta.get('policy')} {meta.get('policy_kwargs')}, but this perceptgym "
                f"builds {agent._policy_description()} from its config"
            )
        model = agent.model
        try:
            for name, state in ck["params"].items():
                if meta.get("inference") and name == "policy":
                    state = agent._with_targets(state)
                recursive_getattr(model, name).load_state_dict(state)
            for name, tensor in ck["torch_variables"].items():
                recursive_setattr(model, name, tensor)
            for key, value in meta["runtime"].items():
                if key in RUNTIME_ATTRIBUTES:
                    setattr(model, key, value)
            model.action_space.np_random.bit_generator.state = meta["action_space_rng"]
            agent.rng.bit_generator.state = meta["rng_state"]
            agent._global_rngs = PrivateGlobalRngs(GlobalRngStates.from_payload(ck["global_rngs"]))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{path}: inconsistent SB3 checkpoint ({type(e).__name__}: {e})") from e
        if meta.get("replay_buffer"):
            _load_replay_buffer(model.replay_buffer, path.with_name(meta["replay_buffer"]))
        return agent

    target_networks: ClassVar[dict[str, str]] = {}
    """the policy's target networks, each by the network it copies (``"q_net_target."`` -> ``"q_net."``): an
    inference checkpoint leaves them out, and loading one makes each a copy of its network again"""

    def _saved_weights(self, module: torch.nn.Module, name: str, inference: bool) -> dict[str, Any]:
        state = module.state_dict()
        if inference and name == "policy":
            state = {k: v for k, v in state.items() if not k.startswith(tuple(self.target_networks))}
        return _weights(state, inference)

    def _with_targets(self, state: dict[str, Any]) -> dict[str, Any]:
        """An inference checkpoint's policy weights with the target networks filled in from their networks."""
        out = dict(state)
        for target, source in self.target_networks.items():
            if not any(k.startswith(target) for k in state):
                out.update({target + k[len(source) :]: v for k, v in state.items() if k.startswith(source)})
        return out

    @classmethod
    def _checkpoint_class(cls, name: Any, path: Path) -> type[SB3Agent]:
        agent_cls = SB3_AGENTS.get(name)
        if agent_cls is None or (cls is not SB3Agent and agent_cls is not cls):
            expected = cls.name if cls is not SB3Agent else sorted(SB3_AGENTS)
            raise CheckpointError(f"{path}: checkpoint holds agent {name!r}, expected {expected}")
        return agent_cls

    @classmethod
    def _load_trusted_zip(
        cls, path: Path, observation_space: gym.Space | None, action_space: gym.Space | None
    ) -> SB3Agent:
        """perceptgym's version-1 format: SB3's own ``.zip`` and a ``.json`` sidecar (SB3 unpickles the zip)."""
        sidecar = path.with_suffix(".json")
        if not path.is_file() or not sidecar.is_file():
            raise CheckpointError(f"{path}: an SB3 .zip checkpoint needs both {path.name} and {sidecar.name}")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{sidecar}: unreadable checkpoint sidecar: {e}") from e
        check_header(meta, sidecar, FORMAT, 1)
        agent_cls = cls._checkpoint_class(meta.get("agent"), sidecar)
        check_spaces(meta, observation_space, action_space, path)
        agent = agent_cls.__new__(agent_cls)
        agent.config = config_from_dict(agent_cls.config_class, meta["config"])
        agent.seed = meta.get("seed")
        agent._global_rngs = PrivateGlobalRngs.seeded(agent.seed)
        with kept_global_state(agent.config.torch_threads):
            try:
                agent.model = agent_cls.algo_class.load(path, device=agent.config.device)
            except Exception as e:
                raise CheckpointError(f"{path}: SB3 could not load this model: {e!r}") from e
            if meta.get("replay_buffer"):
                agent.model.load_replay_buffer(path.with_name(meta["replay_buffer"]))
        agent.observation_space = observation_space or agent.model.observation_space
        agent.action_space = action_space or agent.model.action_space
        agent.rng = np.random.default_rng()
        agent.rng.bit_generator.state = meta["rng_state"]
        return agent


def _weights(state: dict[str, Any], half: bool) -> dict[str, Any]:
    """A state dict, its floating-point tensors in float16 when ``half`` (load_state_dict casts them back)."""
    if not half:
        return state
    halves: dict[tuple[int, torch.Size], torch.Tensor] = {}  # SB3 lists a shared extractor under three names:
    out = {}  # one half copy each, so that the file stores it once, as it does the float32 original
    for k, v in state.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            key = (v.data_ptr(), v.shape)
            if key not in halves:
                halves[key] = v.half()
            v = halves[key]
        out[k] = v
    return out


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON config of an SB3 checkpoint (``.pt``; a ``.zip``'s sidecar), read without building the model."""
    path = Path(path)
    if path.suffix == ".zip":
        sidecar = path.with_suffix(".json")
        try:
            return json.loads(sidecar.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot read its sidecar {sidecar.name}: {e}") from e
    ck = load_checkpoint(path, FORMAT, FORMAT_VERSION)
    try:
        return json.loads(ck["meta"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: inconsistent SB3 checkpoint ({type(e).__name__}: {e})") from e


# ---- replay buffers ----------------------------------------------------------------------------------------
def _replay_arrays(buffer: Any) -> dict[str, np.ndarray]:
    """The filled part of a ``ReplayBuffer``/``DictReplayBuffer``'s arrays, keyed ``name`` or ``name/key``."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {}
    for name in REPLAY_ARRAYS:
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays |= {f"{name}/{key}": v[:n] for key, v in value.items()}
        elif isinstance(value, np.ndarray):  # next_observations is None with optimize_memory_usage
            arrays[name] = value[:n]
    return arrays


def _save_replay_buffer(buffer: Any, path: Path) -> Path:
    meta = {
        "class": type(buffer).__name__,
        "buffer_size": int(buffer.buffer_size),
        "n_envs": int(buffer.n_envs),
        "pos": int(buffer.pos),
        "full": bool(buffer.full),
    }
    return save_npz(path, REPLAY_FORMAT, REPLAY_VERSION, meta, _replay_arrays(buffer))


def _load_replay_buffer(buffer: Any, path: Path) -> None:
    meta, arrays = load_npz(path, REPLAY_FORMAT, REPLAY_VERSION)
    try:
        saved = (meta["class"], meta["buffer_size"], meta["n_envs"], bool(meta["full"]), int(meta["pos"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: inconsistent replay buffer ({type(e).__name__}: {e})") from e
    if saved[:3] != (type(buffer).__name__, buffer.buffer_size, buffer.n_envs):
        raise CheckpointError(
            f"{path}: a {saved[0]} of {saved[1]} x {saved[2]} envs; the model has a {type(buffer).__name__} of "
            f"{buffer.buffer_size} x {buffer.n_envs}"
        )
    buffer.full, buffer.pos = saved[3], saved[4]
    targets = _replay_arrays(buffer)  # views of the model's arrays, sized as the saved ones should be
    if set(targets) != set(arrays):
        raise CheckpointError(f"{path}: replay buffer holds {sorted(arrays)}, the model needs {sorted(targets)}")
    for key, target in targets.items():
        if arrays[key].shape != target.shape or arrays[key].dtype != target.dtype:
            raise CheckpointError(
                f"{path}: replay buffer {key!r} is {arrays[key].dtype}{arrays[key].shape}, "
                f"expected {target.dtype}{target.shape}"
            )
        target[...] = arrays[key]


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
    target_networks: ClassVar[dict[str, str]] = {"q_net_target.": "q_net."}


class MaskablePPOAgent(SB3Agent):
    """sb3-contrib's MaskablePPO: PPO whose policy samples only the actions the env marks valid.

    It trains on the envs' ``info["action_mask"]`` (GridDriving's: no FORWARD into a building, no STOP away from a
    stop) through :class:`VecActionMasks`. ``act`` applies the mask it is given (``action_mask=``), which the
    evaluation, recording and watching loops pass from the env; without one it acts unmasked, as a policy over all
    actions.
    """

    name = "maskable_ppo"
    algo_class = MaskablePPO
    config_class = PPOConfig
    uses_action_masks = True  # the loops pass the env's mask (perceptgym.agents.loop.choose_action)

    def _wrap_vec_env(self, vec: VecEnv) -> VecEnv:
        return vec if vec.has_attr("action_masks") else VecActionMasks(vec)

    def act(self, obs: Any, *, explore: bool = False, action_mask: Any = None) -> Any:
        mask = None if action_mask is None else np.asarray(action_mask, dtype=bool)
        if explore:
            with self._global_rngs.torch_active(self.config.torch_threads):
                action, _ = self.model.predict(obs, deterministic=False, action_masks=mask)
        else:
            with torch_threads(self.config.torch_threads):
                action, _ = self.model.predict(obs, deterministic=True, action_masks=mask)
        return self._to_env_action(action)


SB3_AGENTS: dict[str, type[SB3Agent]] = {c.name: c for c in (PPOAgent, A2CAgent, DQNAgent, MaskablePPOAgent)}

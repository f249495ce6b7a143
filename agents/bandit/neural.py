"""A neural bandit: a small network trained online, exploring with its last layer's uncertainty.

This is Neural Thompson sampling / NeuralUCB (Zhang et al. 2021; Zhou et al. 2020) with the gradient
features restricted to the last layer, where they are simply the penultimate activations ``phi(x)``: the
score of arm ``a`` is ``f_a(x) + nu * sqrt(phi^T Z_a^-1 phi) * z`` with ``z ~ N(0, 1)`` (TS) or ``z = 1``
(UCB), ``Z_a = lam I + sum over rounds where a was pulled of phi phi^T``. ``Z_a^-1`` is updated with
Sherman–Morrison each round and, because ``phi`` drifts as the network learns, refitted from the replay
buffer with the current network every ``refit_every`` rounds (as NeuralLinear does, Riquelme et al. 2018).
The network regresses the observed reward of the pulled arm (squared error on that output only) on
minibatches drawn from a replay buffer of all past rounds.

On 28x28 images the network is a small CNN; on other Box observations an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from perceptgym.agents.bandit.base import BanditAgent, restore_arrays
from perceptgym.agents.bandit.features import scale_box
from perceptgym.agents.base import Transition
from perceptgym.supervised.global_state import torch_threads

NETWORKS = ("auto", "cnn", "mlp")
EXPLORATIONS = ("ts", "ucb")


@dataclass(frozen=True)
class NeuralConfig:
    """Attributes:
    network: "cnn" (2-D image observations), "mlp", or "auto" (CNN for images of at least 12x12, else MLP).
    hidden: width of the last hidden layer (the features the uncertainty is measured in).
    exploration: "ts" (Thompson sampling) or "ucb".
    nu: exploration scale.
    lam: prior precision of the last-layer uncertainty, ``Z_a = lam I + ...``.
    lr: Adam learning rate.
    batch_size: minibatch size of each gradient step.
    grad_steps: gradient steps after every ``train_every`` rounds.
    train_every: rounds between training phases [rounds].
    buffer_size: replay buffer capacity [rounds] (oldest dropped first).
    refit_every: rebuild ``Z_a^-1`` from the buffer with current features every this many rounds; 0 = never.
    torch_threads: torch intra-op threads while the agent computes (1 is fastest for this tiny network on a
        shared CPU); the caller's setting is restored after each call.
    """

    network: str = "auto"
    hidden: int = 64
    exploration: str = "ts"
    nu: float = 0.3
    lam: float = 1.0
    lr: float = 1e-3
    batch_size: int = 32
    grad_steps: int = 1
    train_every: int = 1
    buffer_size: int = 20_000
    refit_every: int = 500
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.exploration not in EXPLORATIONS:
            raise ValueError(f"exploration must be one of {EXPLORATIONS}, got {self.exploration!r}")
        for name in ("hidden", "batch_size", "grad_steps", "train_every", "buffer_size", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.lam <= 0 or self.lr <= 0 or self.nu < 0 or self.refit_every < 0:
            raise ValueError(f"need lam > 0, lr > 0, nu >= 0, refit_every >= 0; got {self}")


class RewardNet(nn.Module):
    """Predicts every arm's reward; ``features`` gives the last hidden layer ``phi(x)``."""

    def __init__(self, in_shape: tuple[int, ...], n_arms: int, hidden: int, cnn: bool) -> None:
        super().__init__()
        if cnn:
            h, w = in_shape[:2]
            conv_out = 32 * ((h - 4) // 2 - 4) // 2 * (((w - 4) // 2 - 4) // 2)
            self.body = nn.Sequential(
                nn.Unflatten(1, (1, h, w)),
                nn.Conv2d(1, 16, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(conv_out, hidden),
                nn.ReLU(),
            )
        else:
            d = int(np.prod(in_shape))
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_arms)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.body(x)
        return self.head(phi), phi


class NeuralAgent(BanditAgent):
    """Neural TS / NeuralUCB with last-layer uncertainty, for Box observations (see the module docstring)."""

    name = "neural"
    config_cls = NeuralConfig
    libraries = ("torch",)

    def _setup(self) -> None:
        observation_space = self.observation_space
        if not isinstance(observation_space, spaces.Box):
            raise TypeError(f"NeuralAgent needs a Box observation space, got {observation_space}")
        cfg = self.config
        shape = observation_space.shape
        image = len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)
        cnn = cfg.network == "cnn" or (cfg.network == "auto" and image and min(shape[:2]) >= 12)
        if cnn and not image:
            raise ValueError(f"network='cnn' needs a 2-D image observation (H, W) or (H, W, 1), got shape {shape}")
        scale = scale_box(observation_space)
        self._offset = None if scale is None else scale[0].astype(np.float32).reshape(-1)
        self._scale = None if scale is None else scale[1].astype(np.float32).reshape(-1)
        self._dim = int(np.prod(shape))
        with torch.random.fork_rng(devices=[]):  # initial weights from the agent's rng, torch's global state kept
            torch.manual_seed(int(self.rng.integers(2**62)))
            self.net = RewardNet(shape, self.n_actions, cfg.hidden, cnn)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.z_inv = np.repeat(np.eye(cfg.hidden)[None] / cfg.lam, self.n_actions, axis=0)
        self.buf_x = np.zeros((cfg.buffer_size, self._dim), dtype=np.float32)
        self.buf_a = np.zeros(cfg.buffer_size, dtype=np.int64)
        self.buf_r = np.zeros(cfg.buffer_size, dtype=np.float32)
        self._phi_cache: tuple[np.ndarray, np.ndarray] | None = None  # (input, phi) of the last act()

    # ------------------------------------------------------------------ model
    def _input(self, obs: Any) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        if self._offset is not None:
            x = (x - self._offset) / self._scale
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch_threads(self.config.torch_threads), torch.no_grad():
            out, phi = self.net(torch.from_numpy(x.reshape(-1, self._dim)))
        return out.numpy().astype(np.float64), phi.numpy().astype(np.float64)

    def _scores(self, obs: Any, explore: bool) -> np.ndarray:
        x = self._input(obs)
        out, phi = self._forward(x)
        mean, phi = out[0], phi[0]
        self._phi_cache = (x, phi)
        if not explore:
            return mean
        width = self.config.nu * np.sqrt(np.maximum(np.einsum("j,kjl,l->k", phi, self.z_inv, phi), 0.0))
        if self.config.exploration == "ts":
            return mean + width * self.rng.standard_normal(self.n_actions)
        return mean + width + 1e-9 * self.rng.random(self.n_actions)

    # ------------------------------------------------------------------ learning
    def update(self, t: Transition) -> None:
        cfg = self.config
        arm = self._arm(t.action)
        x = self._input(t.obs)
        slot = self.t % cfg.buffer_size
        self.buf_x[slot], self.buf_a[slot], self.buf_r[slot] = x, arm, t.reward
        self.t += 1
        # phi of this context as it was when the arm was chosen (saves a forward pass), else recomputed.
        cache, self._phi_cache = self._phi_cache, None
        phi = cache[1] if cache is not None and np.array_equal(cache[0], x) else self._forward(x)[1][0]
        u = self.z_inv[arm] @ phi
        self.z_inv[arm] -= np.outer(u, u) / (1.0 + phi @ u)
        if self.t % cfg.train_every == 0:
            for _ in range(cfg.grad_steps):
                self._train_step()
        if cfg.refit_every and self.t % cfg.refit_every == 0:
            self.refit()

    def _train_step(self) -> None:
        with torch_threads(self.config.torch_threads):
            self._gradient_step()

    def _gradient_step(self) -> None:
        n = min(self.t, self.config.buffer_size)
        idx = self.rng.integers(0, n, size=min(self.config.batch_size, n))
        x = torch.from_numpy(self.buf_x[idx])
        a = torch.from_numpy(self.buf_a[idx])
        r = torch.from_numpy(self.buf_r[idx])
        out, _ = self.net(x)
        loss = ((out.gather(1, a[:, None])[:, 0] - r) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def refit(self) -> None:
        """Rebuilds every ``Z_a^-1`` from the buffer with the current network's features."""
        n = min(self.t, self.config.buffer_size)
        phis = np.concatenate([self._forward(self.buf_x[i : min(i + 1024, n)])[1] for i in range(0, n, 1024)])
        eye = np.eye(self.config.hidden) * self.config.lam
        for arm in range(self.n_actions):
            p = phis[self.buf_a[:n] == arm]
            self.z_inv[arm] = np.linalg.inv(eye + p.T @ p)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, np.ndarray]:
        state = {f"net/{k}": v.numpy() for k, v in self.net.state_dict().items()}
        for i, s in self.optimizer.state_dict()["state"].items():
            state |= {f"opt/{i}/{k}": v.numpy() for k, v in s.items()}
        n = min(self.t, self.config.buffer_size)  # only the filled part: a fresh agent's buffer is 63 MB of zeros
        return state | {"z_inv": self.z_inv, "buf_x": self.buf_x[:n], "buf_a": self.buf_a[:n], "buf_r": self.buf_r[:n]}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net/")})
        opt = self.optimizer.state_dict()
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in arrays.items():
            if k.startswith("opt/"):
                _, i, name = k.split("/")
                opt_state.setdefault(int(i), {})[name] = torch.from_numpy(v)
        opt["state"] = opt_state
        self.optimizer.load_state_dict(opt)
        restore_arrays(self, arrays, ("z_inv",))
        n = min(self.t, self.config.buffer_size)
        for key in ("buf_x", "buf_a", "buf_r"):
            buffer, saved = getattr(self, key), arrays.get(key)
            # n rows, or the whole buffer as checkpoints written before 2 kept it
            if saved is None or saved.shape[1:] != buffer.shape[1:] or len(saved) not in (n, len(buffer)):
                found = None if saved is None else saved.shape
                raise ValueError(
                    f"checkpoint array {key!r}: expected {n} filled rows of {buffer.shape[1:]}, found {found}"
                )
            buffer[: len(saved)] = saved

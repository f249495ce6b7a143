"""Feature maps: observations of any supported space -> float64 vectors for the linear bandit agents."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def scale_box(space: spaces.Box) -> tuple[np.ndarray, np.ndarray] | None:
    """(offset, scale) that map a Box with finite bounds onto [0, 1]; None if a bound is infinite."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None
    return low, np.where(high > low, high - low, 1.0)


class FeatureMap:
    """Turns one observation into a feature vector.

    - ``Box``: scaled to [0, 1] (if its bounds are finite) and flattened; a 2-D (or HxWx1) image is first
      average-pooled by ``pool`` (28x28 MNIST with ``pool=2`` gives 196 features);
    - ``Discrete``: one-hot (so a linear agent on it is a tabular agent);
    - ``Dict``/``Tuple``/``MultiDiscrete``: Gymnasium's ``flatten`` (one-hot for the discrete parts).

    Then, optionally, ``random_features`` random ReLU features ``max(0, W x + c)`` (a cheap non-linear
    lift, Rahimi & Recht 2008) drawn from ``rng``; then L2 normalisation (``normalize``), and a constant 1
    appended (``bias``).
    """

    def __init__(
        self,
        space: gym.Space,
        *,
        pool: int = 1,
        random_features: int = 0,
        normalize: bool = True,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        if pool < 1 or random_features < 0:
            raise ValueError(
                f"pool must be >= 1 and random_features >= 0, got pool={pool}, random_features={random_features}"
            )
        self.space, self.normalize, self.bias = space, normalize, bias
        self._pool = 1
        self._scale = None
        if isinstance(space, spaces.Box):
            self._scale = scale_box(space)
            image = len(space.shape) == 2 or (len(space.shape) == 3 and space.shape[2] == 1)
            if pool > 1 and image and space.shape[0] % pool == 0 and space.shape[1] % pool == 0:
                self._pool = pool
            raw_dim = int(np.prod(space.shape)) // (self._pool * self._pool)
        elif isinstance(space, spaces.Discrete):
            raw_dim = int(space.n)
        else:
            try:
                raw_dim = int(spaces.flatdim(space))
            except (NotImplementedError, ValueError) as e:
                raise TypeError(f"no feature map for observation space {space}") from e
        self.raw_dim = raw_dim
        self.projection: np.ndarray | None = None
        self.offset: np.ndarray | None = None
        if random_features:
            rng = rng if rng is not None else np.random.default_rng()
            # Weights scaled so that W x has unit variance for inputs in [0, 1] of norm ~ sqrt(raw_dim) / 3.
            self.projection = rng.normal(0.0, 3.0 / np.sqrt(raw_dim), size=(random_features, raw_dim))
            self.offset = rng.uniform(-1.0, 1.0, size=random_features)
        self.dim = (random_features or raw_dim) + int(bias)

    def __call__(self, obs) -> np.ndarray:
        space = self.space
        if isinstance(space, spaces.Discrete):
            x = np.zeros(self.raw_dim)
            x[int(obs) - int(space.start)] = 1.0
        elif isinstance(space, spaces.Box):
            x = np.asarray(obs, dtype=np.float64)
            if self._scale is not None:
                x = (x.reshape(space.shape) - self._scale[0]) / self._scale[1]
            if self._pool > 1:
                p = self._pool
                h, w = space.shape[0] // p, space.shape[1] // p
                x = x.reshape(h, p, w, p).mean(axis=(1, 3))
            x = x.reshape(-1)
        else:
            x = np.asarray(spaces.flatten(space, obs), dtype=np.float64)
        if self.projection is not None:
            x = np.maximum(self.projection @ x + self.offset, 0.0)
        if self.normalize:
            n = np.linalg.norm(x)
            if n > 0:
                x = x / n
        if self.bias:
            x = np.append(x, 1.0)
        return x

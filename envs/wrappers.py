"""Observation wrappers that turn perceptgym (or any) observations into what tabular agents take.

- :class:`ClassifyObservation` replaces 28x28 digit images by the labels a reader reads from them, with the
  reader's confidence in ``info``. The reader is a plain callable (``perceptgym.envs.digits.Reader``) or a shipped
  reader's name, resolved lazily, so this module never imports torch.
- :class:`EncodeStateObservation` maps a ``MultiDiscrete`` / ``Tuple`` / ``Dict`` of ``Discrete`` observation
  to one ``Discrete(n)`` by mixed-radix encoding (as Taxi encodes its state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.envs.digits import IMAGE_SHAPE, NUM_DIGITS, Reader, resolve_reader


def _is_digit_image_space(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and space.shape == IMAGE_SHAPE and space.dtype == np.uint8


class ClassifyObservation(gym.Wrapper):
    """Reads the digit images of an observation with a reader; the agent sees labels in ``Discrete(10)``.

    Works on an env whose observation is one 28x28 uint8 image (it becomes a label), or a ``Dict`` with
    28x28 uint8 image entries (each named in ``keys``, by default all of them, becomes a label; other
    entries pass through). All images of one observation go to the reader in one batch. ``info`` gains
    ``"read_label"`` and ``"read_confidence"``: scalars for an image observation, dicts by key otherwise.

    Example:
        >>> import numpy as np
        >>> from perceptgym.envs.grid_driving import GridDrivingEnv
        >>> blank = lambda labels, rng: np.zeros((len(labels), 28, 28), np.uint8)
        >>> sevens = lambda images: (np.full(len(images), 7), np.full(len(images), 0.5, np.float32))
        >>> env = GridDrivingEnv(obs_mode="dict", digit_source=blank)
        >>> env = ClassifyObservation(env, sevens, keys=["card"])
        >>> env.observation_space["card"]
        Discrete(10)
        >>> obs, info = env.reset(seed=0)
        >>> int(obs["card"]), info["read_confidence"]
        (7, {'card': 0.5})
    """

    def __init__(self, env: gym.Env, reader: str | Reader, keys: Sequence[str] | None = None):
        super().__init__(env)
        if not (callable(reader) or isinstance(reader, str)):
            raise TypeError(f"reader must be a Reader callable or a shipped reader's name, got {reader!r}")
        self._reader_spec, self._reader = reader, None
        space = env.observation_space
        if isinstance(space, spaces.Dict):
            images = [k for k, s in space.spaces.items() if _is_digit_image_space(s)]
            self.keys = tuple(images if keys is None else keys)
            bad = [k for k in self.keys if k not in images]
            if bad or not self.keys:
                raise ValueError(
                    f"keys {list(keys or [])} must name 28x28 uint8 image entries of the Dict; "
                    f"its image entries are {images}"
                )
            self.observation_space = spaces.Dict(
                {k: spaces.Discrete(NUM_DIGITS) if k in self.keys else s for k, s in space.spaces.items()}
            )
        elif _is_digit_image_space(space):
            if keys is not None:
                raise ValueError(f"keys={keys!r} needs a Dict observation space, the env has {space}")
            self.keys = None
            self.observation_space = spaces.Discrete(NUM_DIGITS)
        else:
            raise ValueError(
                f"ClassifyObservation needs a Box(0, 255, {IMAGE_SHAPE}, uint8) image or a Dict of them, got {space}"
            )

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = resolve_reader(self._reader_spec)
        return self._reader

    def _read(self, obs: Any, info: dict[str, Any]) -> Any:
        if self.keys is None:
            labels, conf = self.reader(np.asarray(obs)[None])
            info["read_label"], info["read_confidence"] = int(labels[0]), float(conf[0])
            return np.int64(labels[0])
        labels, conf = self.reader(np.stack([obs[k] for k in self.keys]))
        info["read_label"] = {k: int(v) for k, v in zip(self.keys, labels, strict=True)}
        info["read_confidence"] = {k: float(v) for k, v in zip(self.keys, conf, strict=True)}
        out = dict(obs)
        for k, v in zip(self.keys, labels, strict=True):
            out[k] = np.int64(v)
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        return self._read(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        return self._read(obs, info), reward, terminated, truncated, info

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if isinstance(self._reader_spec, str):
            state["_reader"] = None  # a named reader is reloaded on demand
        return state


class EncodeStateObservation(gym.ObservationWrapper):
    """Encodes a ``MultiDiscrete`` / ``Tuple`` / ``Dict`` of ``Discrete`` observation as one ``Discrete(n)``.

    Mixed radix, first component most significant: ``(a, b)`` with sizes ``(na, nb)`` becomes ``a * nb + b``
    (``Discrete`` starts are subtracted first). ``Dict`` components go in the space's key order.

    Example:
        >>> from gymnasium.spaces import MultiDiscrete
        >>> from gymnasium.envs.classic_control import CartPoleEnv  # any env; we only use its space below
        >>> env = CartPoleEnv()
        >>> env.observation_space = MultiDiscrete([3, 4])
        >>> wrapped = EncodeStateObservation(env)
        >>> wrapped.observation_space, wrapped.encode([2, 1]), wrapped.decode(9)
        (Discrete(12), 9, (2, 1))
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self._keys, self._sizes, self._starts = (
                None,
                [int(n) for n in space.nvec],
                [int(s) for s in space.start],
            )
        else:
            is_dict = isinstance(space, spaces.Dict)
            subs = list(space.spaces.values()) if is_dict else list(getattr(space, "spaces", ()))
            if not (
                isinstance(space, spaces.Tuple | spaces.Dict)
                and subs
                and all(isinstance(s, spaces.Discrete) for s in subs)
            ):
                raise ValueError(
                    f"EncodeStateObservation needs 1-D MultiDiscrete or Tuple/Dict of Discrete, got {space}"
                )
            self._keys = tuple(space.spaces) if is_dict else None
            self._sizes, self._starts = [int(s.n) for s in subs], [int(s.start) for s in subs]
        self.observation_space = spaces.Discrete(int(np.prod(self._sizes, dtype=np.int64)))

    def encode(self, parts: Sequence[int] | dict[str, int]) -> int:
        """Index of an observation (a sequence, or a dict for Dict spaces)."""
        values = [parts[k] for k in self._keys] if self._keys is not None else list(parts)
        index = 0
        for v, n, s in zip(values, self._sizes, self._starts, strict=True):
            if not s <= int(v) < s + n:
                raise ValueError(f"component {v} out of range {s}..{s + n - 1}")
            index = index * n + int(v) - s
        return index

    def decode(self, index: int) -> tuple[int, ...]:
        """The components of an index (in the space's order)."""
        if not 0 <= index < self.observation_space.n:
            raise ValueError(f"index {index} out of range 0..{self.observation_space.n - 1}")
        parts = []
        for n, s in zip(reversed(self._sizes), reversed(self._starts), strict=True):
            index, v = divmod(int(index), n)
            parts.append(v + s)
        return tuple(reversed(parts))

    def observation(self, observation: Any) -> int:
        return self.encode(observation)

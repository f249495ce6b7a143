"""Observation wrappers that turn perceptgym (or any) observations into what tabular agents take.

- :class:`ClassifyObservation` replaces 28x28 digit images by the labels a reader reads from them, with the
  reader's confidence in ``info``. The reader is a plain callable (``perceptgym.envs.digits.Reader``) or a
  shipped reader's name, resolved lazily (:class:`perceptgym.envs.digits.LazyReader`), so this module never
  imports torch.
- :class:`EncodeStateObservation` maps a ``MultiDiscrete`` / ``Tuple`` / ``Dict`` of ``Discrete`` observation
  to one ``Discrete(n)`` by mixed-radix encoding (as Taxi encodes its state), with :class:`MixedRadix`, the
  one encoder of the project (``perceptgym.agents.spaces.EncodeDiscreteObservation`` is this wrapper too).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.envs.checks import is_int
from perceptgym.envs.digits import IMAGE_SHAPE, NUM_DIGITS, LazyReader, Reader


def _is_digit_image_space(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and space.shape == IMAGE_SHAPE and space.dtype == np.uint8


class ClassifyObservation(gym.Wrapper):
    """Reads the digit images of an observation with a reader; the agent sees labels in ``Discrete(10)``.

    Works on an env whose observation is one 28x28 uint8 image (it becomes a label), or a ``Dict`` with
    28x28 uint8 image entries (each named in ``keys``, by default all of them, becomes a label; other
    entries pass through). All images of one observation go to the reader in one batch, and what it
    returns is checked (labels in 0..9, confidences in [0, 1]). ``info`` gains ``"<key>_read"`` and
    ``"<key>_confidence"`` for each key read, or ``"label_read"`` and ``"label_confidence"`` for an image
    observation: the same keys as the envs' own ``perceived`` modes.

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
        >>> int(obs["card"]), info["card_read"], info["card_confidence"]
        (7, 7, 0.5)
    """

    def __init__(self, env: gym.Env, reader: str | Reader, keys: Sequence[str] | None = None):
        super().__init__(env)
        self.reading = LazyReader(reader)
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
        """The underlying reader (a named one is loaded now)."""
        return self.reading.reader

    def _read(self, obs: Any, info: dict[str, Any]) -> Any:
        if self.keys is None:
            label, conf = self.reading(obs)  # one image: 0-d arrays
            info["label_read"], info["label_confidence"] = int(label), float(conf)
            return np.int64(label)
        labels, conf = self.reading(np.stack([obs[k] for k in self.keys]))
        out = dict(obs)
        for k, label, c in zip(self.keys, labels.tolist(), conf.tolist(), strict=True):
            out[k] = np.int64(label)
            info[f"{k}_read"], info[f"{k}_confidence"] = label, c
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        return self._read(obs, info), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        return self._read(obs, info), reward, terminated, truncated, info


class MixedRadix:
    """The mixed-radix code of a ``MultiDiscrete``, ``Tuple``-of-``Discrete`` or ``Dict``-of-``Discrete`` space.

    Every element of the space gets one index in ``0..n-1``; the first component is the most significant
    digit (as in Taxi's ``encode``): ``(a, b)`` with sizes ``(na, nb)`` is ``a * nb + b``, after subtracting
    each component's ``start``. ``MultiDiscrete`` components go in C order, ``Dict`` ones in the space's key
    order. ``decode`` is the exact inverse and returns an element of the space, typed as the space's own
    ``sample`` types it (an array of the space's shape, or a tuple or dict of ``np.int64``).

    Example:
        >>> from gymnasium.spaces import Dict, Discrete, MultiDiscrete
        >>> code = MixedRadix(MultiDiscrete([3, 4]))
        >>> code.n, code.encode([2, 1]), code.decode(9)
        (12, 9, array([2, 1]))
        >>> code = MixedRadix(Dict({"card": Discrete(10), "cell": Discrete(5, start=1)}))
        >>> code.encode({"card": 7, "cell": 2}), code.decode(36) == {"card": 7, "cell": 2}
        (36, True)
    """

    def __init__(self, space: spaces.Space):
        self.space = space
        self._keys: tuple[str, ...] | None = None
        self._shape: tuple[int, ...] | None = None
        if isinstance(space, spaces.MultiDiscrete):
            self._shape, self._dtype = tuple(space.nvec.shape), space.dtype
            sizes, starts = space.nvec.ravel().tolist(), space.start.ravel().tolist()
        else:
            subs = list(space.spaces.values()) if isinstance(space, spaces.Dict) else list(getattr(space, "spaces", ()))
            if not (
                isinstance(space, spaces.Tuple | spaces.Dict)
                and subs
                and all(isinstance(s, spaces.Discrete) for s in subs)
            ):
                raise ValueError(
                    f"a mixed-radix code needs a MultiDiscrete, or a Tuple or Dict of Discrete spaces, got {space}"
                )
            if isinstance(space, spaces.Dict):
                self._keys = tuple(space.spaces)
            sizes, starts = [int(s.n) for s in subs], [int(s.start) for s in subs]
        self.sizes, self.starts = tuple(int(n) for n in sizes), tuple(int(s) for s in starts)
        self._pairs = tuple(zip(self.sizes, self.starts, strict=True))
        self.n = math.prod(self.sizes)
        if self.n > np.iinfo(np.int64).max:
            raise ValueError(f"{space} has {self.n} elements, too many to number with one int64 Discrete")

    def __len__(self) -> int:
        return len(self.sizes)

    def _components(self, parts: Any) -> list[int]:
        if self._shape is not None:
            arr = np.asarray(parts)
            if arr.shape != self._shape or arr.dtype.kind not in "iu":
                raise ValueError(f"expected integers of shape {self._shape} for {self.space}, got {parts!r}")
            return arr.ravel().tolist()
        if self._keys is not None:
            if not isinstance(parts, Mapping) or set(parts) != set(self._keys):
                raise ValueError(f"expected a dict with keys {list(self._keys)} for {self.space}, got {parts!r}")
            parts = [parts[k] for k in self._keys]
        elif not isinstance(parts, Sequence | np.ndarray) or len(parts) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} components for {self.space}, got {parts!r}")
        try:
            return [operator.index(v) for v in parts]
        except TypeError:
            raise ValueError(f"components must be integers, got {parts!r}") from None

    def encode(self, parts: Any) -> int:
        """The index of an element (a sequence or array, or a dict for a Dict space)."""
        index = 0
        for i, (v, (n, s)) in enumerate(zip(self._components(parts), self._pairs, strict=True)):
            d = v - s
            if not 0 <= d < n:
                raise ValueError(f"component {i} = {v} out of range {s}..{s + n - 1}")
            index = index * n + d
        return index

    def decode(self, index: int) -> Any:
        """The element with this index (inverse of :meth:`encode`)."""
        if not is_int(index) or not 0 <= index < self.n:
            raise ValueError(f"index {index!r} out of range 0..{self.n - 1}")
        index, digits = int(index), []
        for n, s in reversed(self._pairs):
            index, d = divmod(index, n)
            digits.append(d + s)
        digits.reverse()
        if self._shape is not None:
            return np.array(digits, dtype=self._dtype).reshape(self._shape)
        values = [np.int64(v) for v in digits]  # what Discrete.sample gives
        if self._keys is not None:
            return dict(zip(self._keys, values, strict=True))
        return tuple(values)


class EncodeStateObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Encodes a ``MultiDiscrete`` / ``Tuple`` / ``Dict`` of ``Discrete`` observation as one ``Discrete(n)``.

    The code is :class:`MixedRadix` (first component most significant). ``max_states`` refuses spaces with
    more elements than a table can hold.

    Example:
        >>> from gymnasium.spaces import MultiDiscrete
        >>> from gymnasium.envs.classic_control import CartPoleEnv  # any env; we only use its space below
        >>> env = CartPoleEnv()
        >>> env.observation_space = MultiDiscrete([3, 4])
        >>> wrapped = EncodeStateObservation(env)
        >>> wrapped.observation_space, wrapped.encode([2, 1]), wrapped.decode(9)
        (Discrete(12), 9, array([2, 1]))
    """

    def __init__(self, env: gym.Env, *, max_states: int | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, max_states=max_states)
        gym.ObservationWrapper.__init__(self, env)
        self.code = MixedRadix(env.observation_space)
        if max_states is not None and self.code.n > max_states:
            raise ValueError(
                f"encoding {env.observation_space} gives {self.code.n} states, more than max_states={max_states}"
            )
        self.observation_space = spaces.Discrete(self.code.n)

    def encode(self, parts: Any) -> int:
        """Index of an observation (a sequence or array, or a dict for Dict spaces)."""
        return self.code.encode(parts)

    def decode(self, index: int) -> Any:
        """The observation of an index (an element of the wrapped env's observation space)."""
        return self.code.decode(index)

    def observation(self, observation: Any) -> int:
        return self.code.encode(observation)

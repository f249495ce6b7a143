"""Process-wide state kept as the caller left it: torch's thread count and the global RNGs.

perceptgym's constructors and training functions never leave ``torch.get_num_threads()``, Python's ``random``,
numpy's global ``np.random`` or torch's default generator changed. They set what they need inside
:func:`kept_global_state` (or :func:`torch_threads` for the thread count alone), which restores it all.

Some libraries draw from the global RNGs themselves (SB3 samples actions from torch's, DQN explores and
replay buffers sample with ``np.random``). An agent built on one keeps a :class:`PrivateGlobalRngs`: its own
copy of the global states, swapped in around each call into the library and saved back afterwards, so the agent
is reproducible from its seed whatever the caller does with the global RNGs, and the caller's are untouched.
torch is imported only by the functions that need it.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Runs the block with ``n`` intra-op threads (None: unchanged), then restores the caller's setting.

    Small models run fastest on one thread here: on a busy 2-core machine, torch's default thread pool can be
    ~10× slower than a single thread (threads spin waiting for a core another process holds).
    """
    import torch

    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class GlobalRngStates:
    """The states of Python's ``random``, numpy's global RNG and torch's default CPU (and CUDA) generators."""

    python: Any
    numpy: Any
    torch: Any
    cuda: list | None = None

    @classmethod
    def capture(cls) -> GlobalRngStates:
        python, numpy = random.getstate(), np.random.get_state()
        return cls(python, numpy, *_torch_states())

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        _set_torch_states(self.torch, self.cuda)

    @classmethod
    def seeded(cls, seed: int) -> GlobalRngStates:
        """The states ``random.seed``, ``np.random.seed`` and ``torch.manual_seed`` with ``seed`` give."""
        import torch

        cpu = torch.Generator().manual_seed(seed).get_state()
        cuda = None
        if torch.cuda.is_initialized():
            devices = range(torch.cuda.device_count())
            cuda = [torch.Generator(f"cuda:{i}").manual_seed(seed).get_state() for i in devices]
        return cls(random.Random(seed).getstate(), np.random.RandomState(seed).get_state(), cpu, cuda)

    # ---- checkpoint form: JSON-able lists plus uint8 tensors (all readable with weights_only=True)
    def to_payload(self) -> dict[str, Any]:
        version, internal, gauss = self.python
        name, keys, pos, has_gauss, cached = self.numpy
        return {
            "python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": self.torch,
            "cuda": self.cuda,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> GlobalRngStates:
        version, internal, gauss = payload["python"]
        name, keys, pos, has_gauss, cached = payload["numpy"]
        numpy_state = (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
        python_state = (int(version), tuple(int(k) for k in internal), gauss)
        return cls(python_state, numpy_state, payload["torch"], payload["cuda"])


def _torch_states() -> tuple[Any, list | None]:
    import torch

    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None


def _set_torch_states(cpu: Any, cuda: list | None) -> None:
    import torch

    torch.set_rng_state(cpu)
    if cuda is not None and torch.cuda.is_initialized():
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def kept_global_state(threads: int | None = None) -> Iterator[None]:
    """Runs the block with ``threads`` torch threads; afterwards the thread count, the global RNGs and cuDNN's
    determinism flags (SB3's seeding sets them on CUDA) are as the caller had them."""
    import torch

    rngs = GlobalRngStates.capture()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        with torch_threads(threads):
            yield
    finally:
        rngs.restore()
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


class PrivateGlobalRngs:
    """An object's own global RNG states, swapped in around calls into code that draws from the global RNGs."""

    def __init__(self, states: GlobalRngStates):
        self.states = states

    @classmethod
    def seeded(cls, seed: int | None) -> PrivateGlobalRngs:
        """States as after seeding every global RNG with ``seed`` (None: a fresh seed from the OS)."""
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return cls(GlobalRngStates.seeded(seed))

    @contextlib.contextmanager
    def active(self, threads: int | None = None) -> Iterator[None]:
        """Inside the block the global RNGs are this object's (and torch uses ``threads``); the caller's after."""
        with kept_global_state(threads):
            self.states.restore()
            try:
                yield
            finally:
                self.states = GlobalRngStates.capture()

    @contextlib.contextmanager
    def torch_active(self, threads: int | None = None) -> Iterator[None]:
        """:meth:`active` for torch's generators only: ~5 µs instead of ~300 µs (numpy's legacy ``get_state`` and
        ``set_state`` are slow), for per-step calls that draw from torch alone (sampling a policy's action)."""
        caller = _torch_states()
        _set_torch_states(self.states.torch, self.states.cuda)
        try:
            with torch_threads(threads):
                yield
        finally:
            self.states.torch, self.states.cuda = _torch_states()
            _set_torch_states(*caller)


def isolated_training(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorates ``fn(model_cfg, train_cfg, ...)`` to run in :func:`kept_global_state` with ``train_cfg.threads``."""

    @functools.wraps(fn)
    def wrapper(model_cfg: Any, train_cfg: Any, *args: Any, **kwargs: Any) -> T:
        with kept_global_state(train_cfg.threads):
            return fn(model_cfg, train_cfg, *args, **kwargs)

    return wrapper

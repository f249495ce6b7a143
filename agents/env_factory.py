"""Build an env from a name: a Gymnasium id, an ``"perceptgym:perceptgym/..."`` id, or a user's ``"module:Class"``.

Plus the wrappers a run asks for (``env_wrappers`` in the hyperparameter files, RL Zoo's ``env_wrapper``) and
the observation adaptation tabular agents need (:func:`perceptgym.agents.spaces.make_tabular_env`).

**Names read from a file import nothing unasked.** A run directory's ``config.json`` names modules: plug-ins, a
``"module:Class"`` env id, a ``"module:Id-v0"`` Gymnasium id, wrappers. Importing a module runs its code, so a
shared run directory could run anything, e.g. a ``.py`` placed next to its ``config.json``. An
:class:`ImportPolicy` says which file the names come from; modules of perceptgym and Gymnasium and those the
user named on the command line are imported, any other only with ``trust`` (``--trust-plugins``). Either way,
the run directory and the working directory are taken off ``sys.path`` while such a module is imported.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import TimeLimit

from perceptgym.agents.config import check_positive_int
from perceptgym.agents.spaces import make_tabular_env

TRUSTED_PACKAGES = ("perceptgym", "gymnasium")
"""top-level packages whose modules a file may name without ``trust``: the suite itself and its env API"""


class UntrustedImportError(ValueError):
    """A file names a module to import, and the user has not said they trust that file."""


@dataclass(frozen=True)
class ImportPolicy:
    """Where the module names being imported come from, and what the user allowed.

    Attributes:
        source: the file that names the modules (a run's ``config.json``).
        trust: import any module it names (``--trust-plugins``).
        allowed: modules the user named themselves (``--plugin``), imported without ``trust``.
        run_dir: a folder kept off ``sys.path`` while importing (the run directory the file is in).
    """

    source: Path
    trust: bool = False
    allowed: frozenset[str] = frozenset()
    run_dir: Path | None = None

    def permits(self, module: str) -> bool:
        return self.trust or module in self.allowed or module.partition(".")[0] in TRUSTED_PACKAGES


def import_module(module: str, what: str, policy: ImportPolicy | None = None, target: str | None = None) -> ModuleType:
    """Imports ``module`` (of a plug-in, env or wrapper ``target``); ``policy`` None means the caller named it."""
    if policy is not None and not policy.permits(module):
        raise UntrustedImportError(
            f"{policy.source} names the {what} module {module!r}; importing it would run its code. If you trust "
            "this file, pass --trust-plugins (trust_plugins=True), or name the module yourself with --plugin"
        )
    try:
        with _without_local_paths(policy):
            return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what} {target or module!r}: cannot import module {module!r} ({e})") from e


@contextlib.contextmanager
def _without_local_paths(policy: ImportPolicy | None) -> Iterator[None]:
    """For names from a file: the working directory and the run directory (with what is inside) leave ``sys.path``."""
    if policy is None:
        yield
        return
    cwd = Path.cwd().resolve()
    run_dir = Path(policy.run_dir).resolve() if policy.run_dir is not None else None

    def local(entry: object) -> bool:
        if not isinstance(entry, str):
            return False
        path = (Path(entry) if entry else cwd).resolve()
        # the working directory itself only: a virtualenv inside it must stay importable
        return path == cwd or (run_dir is not None and (path == run_dir or run_dir in path.parents))

    saved = list(sys.path)
    sys.path[:] = [p for p in saved if not local(p)]
    try:
        yield
    finally:
        sys.path[:] = saved


def import_plugins(modules: Sequence[str], policy: ImportPolicy | None = None) -> None:
    """Imports user modules that register agents (``register_agent``) or envs, with a clear error."""
    for module in modules:
        if not isinstance(module, str) or not module:
            raise ValueError(f"plugin {module!r} must be a module name")
        import_module(module, "plugin", policy)


def _import(target: str, what: str, policy: ImportPolicy | None) -> Any:
    module, _, attr = target.partition(":")
    obj = import_module(module, what, policy, target)
    try:
        return getattr(obj, attr)
    except AttributeError as e:
        raise ValueError(f"{what} {target!r}: module {module!r} has no attribute {attr!r}") from e


def user_env_class(env_id: str, policy: ImportPolicy | None = None) -> type[gym.Env] | None:
    """The class named by ``"package.module:Class"``, or None when ``env_id`` is a Gymnasium id.

    Gymnasium ids may also contain ``":"`` (``"perceptgym:perceptgym/GridDriving-v0"`` imports ``perceptgym``
    first); they are told apart by the part after the colon, which for a class is a Python identifier.
    """
    module, sep, attr = env_id.partition(":")
    if not sep or not attr.isidentifier() or not module:
        return None
    cls = _import(env_id, "env", policy)
    if not (isinstance(cls, type) and issubclass(cls, gym.Env)):
        raise ValueError(f"env {env_id!r} is not a gymnasium.Env subclass (got {cls!r})")
    return cls


def make_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    policy: ImportPolicy | None = None,
) -> gym.Env:
    """Makes one env; ``perceptgym/...`` ids import :mod:`perceptgym.envs` (which registers them) first."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id {env_id!r} must be a non-empty string")
    if env_kwargs is not None and not (isinstance(env_kwargs, Mapping) and all(isinstance(k, str) for k in env_kwargs)):
        raise ValueError(f"env_kwargs={env_kwargs!r} must be a mapping of argument names to values")
    if max_episode_steps is not None:
        check_positive_int("max_episode_steps", max_episode_steps)
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    cls = user_env_class(env_id, policy)
    if cls is not None:
        env = cls(**kwargs)
        return TimeLimit(env, max_episode_steps) if max_episode_steps else env
    if env_id.startswith("envs:perceptgym/"):  # run directories written before the one-namespace move
        env_id = env_id.removeprefix("envs:")
    module, sep, _ = env_id.partition(":")
    if sep:  # gym.make imports the module before the id: the same rule as a plug-in's
        import_module(module, "env", policy)
    if env_id.startswith("perceptgym/"):
        importlib.import_module("perceptgym.envs")
    try:
        return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"cannot make env {env_id!r}: {e}") from e


def apply_wrappers(
    env: gym.Env,
    wrappers: Sequence[str | Mapping[str, Mapping[str, Any]]] | None,
    policy: ImportPolicy | None = None,
) -> gym.Env:
    """Wraps ``env`` in order with ``"module:Wrapper"`` entries or ``{"module:Wrapper": {kwargs}}`` ones."""
    for entry in wrappers or ():
        if isinstance(entry, str):
            target, kwargs = entry, {}
        elif isinstance(entry, Mapping) and len(entry) == 1:
            target, kwargs = next(iter(entry.items()))
            kwargs = dict(kwargs or {})
        else:
            raise ValueError(f"env wrapper {entry!r}: use 'module:Wrapper' or {{'module:Wrapper': {{kwargs}}}}")
        if ":" not in target:
            raise ValueError(f"env wrapper {target!r}: use 'module:Wrapper'")
        cls = _import(target, "env wrapper", policy)
        # only a Wrapper class: a file must not be able to call any function it names with the env
        if not (isinstance(cls, type) and issubclass(cls, gym.Wrapper)):
            raise ValueError(f"env wrapper {target!r} is not a gymnasium.Wrapper subclass (got {cls!r})")
        env = cls(env, **kwargs)
    return env


def build_env(
    env_id: str,
    settings: Mapping[str, Any] | None = None,
    *,
    tabular: bool = False,
    render_mode: str | None = None,
    policy: ImportPolicy | None = None,
) -> gym.Env:
    """The env of a run: :func:`make_env`, then ``env_wrappers``, then (tabular) discrete observations.

    ``settings`` are a run's env keys: ``env_kwargs``, ``max_episode_steps``, ``env_wrappers``, and for
    tabular agents ``obs_bins``, ``obs_low``, ``obs_high``.
    """
    settings = settings or {}
    env = make_env(
        env_id,
        settings.get("env_kwargs"),
        render_mode=render_mode,
        max_episode_steps=settings.get("max_episode_steps"),
        policy=policy,
    )
    env = apply_wrappers(env, settings.get("env_wrappers"), policy)
    if tabular:
        env = make_tabular_env(
            env, bins=settings.get("obs_bins"), low=settings.get("obs_low"), high=settings.get("obs_high")
        )
    return env

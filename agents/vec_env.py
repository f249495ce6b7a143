"""stable-baselines3 on Gymnasium 1.x vector envs: a :class:`VecEnv` over any :class:`gymnasium.vector.VectorEnv`.

SB3 steps a ``VecEnv`` (``step`` returns ``obs, rewards, dones, infos`` with one info dict per env, and the
last observation of a finished episode as ``infos[i]["terminal_observation"]``); Gymnasium 1.x vector envs
return batched info with ``_key`` masks and, in ``AutoresetMode.SAME_STEP``, ``info["final_obs"]`` and
``info["final_info"]``. :class:`VectorEnvAdapter` translates one into the other, so that SB3 trains on a
native numpy vector env (:class:`perceptgym.envs.grid_driving.vector.GridDrivingVectorEnv`,
``DigitBanditVectorEnv``) with no Python env per worker, or on ``SyncVectorEnv``/``AsyncVectorEnv``.

The adapter also does what SB3's ``Monitor`` does for each env of a ``DummyVecEnv`` built by
``make_vec_env``: ``infos[i]["episode"] = {"r", "l", "t"}`` when an episode ends, with the same rounding,
so SB3's logs and :func:`stable_baselines3.common.evaluation.evaluate_policy` read it as usual.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from perceptgym.agents.env_factory import ImportPolicy, build_env, import_module


def unbatch_info(info: Mapping[str, Any], rows: Sequence[int]) -> list[dict[str, Any]]:
    """The per-env info dicts of env ``rows`` from a batched Gymnasium vector info (``_key`` masks honoured).

    A key without a ``_key`` mask is taken to be there for every env (DigitBanditVectorEnv's info).
    Values are Python scalars for 1-D numeric arrays (as single envs give them) and rows otherwise.
    It runs at every step of the adapter, so each key is converted with one numpy call (``tolist``), not
    one ``item()`` per env (that made it ~half the adapter's step time at 64 envs).
    """
    rows = np.asarray(rows, dtype=np.int64)
    out: list[dict[str, Any]] = [{} for _ in range(len(rows))]
    for key, value in info.items():
        if key in ("final_obs", "final_info") or (key.startswith("_") and key[1:] in info):
            continue
        mask = info.get(f"_{key}")
        present = np.arange(len(rows)) if mask is None else np.flatnonzero(np.asarray(mask)[rows])
        if not len(present):
            continue
        if isinstance(value, Mapping):
            for j, v in zip(present.tolist(), unbatch_info(value, rows[present]), strict=True):
                out[j][key] = v
            continue
        value = np.asarray(value)
        picked = value[rows[present]]
        values = picked.tolist() if value.ndim == 1 and value.dtype != object else list(picked)
        for j, v in zip(present.tolist(), values, strict=True):
            out[j][key] = v
    return out


def _obs_row(obs: Any, i: int) -> Any:
    """Env ``i``'s observation from a batched one (dict or array); scalars as Python numbers, as one env gives."""
    if isinstance(obs, Mapping):
        return {key: _obs_row(value, i) for key, value in obs.items()}
    row = obs[i]
    return row.item() if isinstance(row, np.generic) else row


class VectorEnvAdapter(VecEnv):
    """A Gymnasium 1.x vector env as an SB3 ``VecEnv``.

    Args:
        env: a vector env whose ``metadata["autoreset_mode"]`` is ``SAME_STEP`` (what SB3 needs: the reset
            observation in the step that ended the episode) or ``DISABLED`` (the adapter resets ended envs
            with ``reset(options={"reset_mask": dones})``). ``NEXT_STEP`` envs cannot give SB3 the first
            observation of the next episode in time: build them with ``SAME_STEP``, e.g. ``gym.make_vec(...,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})``.
        monitor: add ``infos[i]["episode"]`` at episode ends, as SB3's ``Monitor`` does.
    """

    def __init__(self, env: VectorEnv, monitor: bool = True):
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
            raise ValueError(
                f"{type(env.unwrapped).__name__} autoresets in {mode!r}: SB3 needs AutoresetMode.SAME_STEP "
                "(or DISABLED); build it with vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}"
            )
        self.env, self.autoreset_mode, self.monitor = env, mode, monitor
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._t_start = time.time()

    # ---- the VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        obs, info = self.env.reset(seed=self._batch_seed(), options=self._batch_options())
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = unbatch_info(info, range(self.num_envs))
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("VectorEnvAdapter: step_async(actions) must come before step_wait()")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        ended = np.flatnonzero(dones).tolist()
        infos = unbatch_info(info, range(self.num_envs))
        if ended and self.autoreset_mode == AutoresetMode.DISABLED:  # the step's info; the adapter resets
            final_obs = obs
            obs, reset_info = self.env.reset(options={"reset_mask": dones})
            for i, new_info in zip(ended, unbatch_info(reset_info, ended), strict=True):
                self.reset_infos[i] = new_info
        elif ended:
            final_obs, final_info = info.get("final_obs"), info.get("final_info")
            if final_info is not None:  # Gymnasium's layout: top-level info of ended envs is their reset info
                for i, step_info in zip(ended, unbatch_info(final_info, ended), strict=True):
                    self.reset_infos[i], infos[i] = infos[i], step_info
        for i in ended:
            infos[i]["terminal_observation"] = self._terminal_obs(final_obs, i)
        for i, (term, trunc) in enumerate(zip(terminated.tolist(), truncated.tolist(), strict=True)):
            infos[i]["TimeLimit.truncated"] = trunc and not term
        if self.monitor:
            self._returns += np.asarray(rewards, dtype=np.float64)  # as Monitor: the rewards' sum, rounded
            self._lengths += 1
            for i in ended:
                infos[i]["episode"] = {
                    "r": round(float(self._returns[i]), 6),
                    "l": int(self._lengths[i]),
                    "t": round(time.time() - self._t_start, 6),
                }
            self._returns[dones], self._lengths[dones] = 0.0, 0
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-env attributes of Sync/Async vector envs; a native vector env's own attribute for each env."""
        indices = self._get_indices(indices)
        base = self.env.unwrapped
        if isinstance(base, SyncVectorEnv | AsyncVectorEnv):
            values = base.get_attr(attr_name)
            return [values[i] for i in indices]
        value = getattr(self.env, attr_name) if hasattr(self.env, attr_name) else getattr(base, attr_name)
        return [value for _ in indices]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        indices = list(self._get_indices(indices))
        base = self.env.unwrapped
        if isinstance(base, SyncVectorEnv | AsyncVectorEnv):
            every = indices == list(range(self.num_envs))
            values = [value] * self.num_envs if every else list(base.get_attr(attr_name))
            for i in indices:
                values[i] = value
            base.set_attr(attr_name, values)
        elif indices == list(range(self.num_envs)):
            setattr(base, attr_name, value)
        else:
            raise ValueError(f"{type(base).__name__} is one batched env: set {attr_name!r} for all envs or none")

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Per-env calls on Sync/Async vector envs; a native vector env's method is called once, for the batch."""
        indices = self._get_indices(indices)
        base = self.env.unwrapped
        if isinstance(base, SyncVectorEnv | AsyncVectorEnv):
            values = base.call(method_name, *method_args, **method_kwargs)
            return [values[i] for i in indices]
        value = getattr(base, method_name)(*method_args, **method_kwargs)
        return [value for _ in indices]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Monitor: whether this adapter monitors (it adds Monitor's ``episode`` info); others: Sync envs' wrappers."""
        indices = self._get_indices(indices)
        if wrapper_class is Monitor:
            return [self.monitor for _ in indices]
        base = self.env.unwrapped
        if isinstance(base, SyncVectorEnv):
            from stable_baselines3.common.env_util import is_wrapped

            return [is_wrapped(base.envs[i], wrapper_class) for i in indices]
        return [False for _ in indices]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.env.render()
        if frames is None or isinstance(frames, np.ndarray):  # a native vector env renders one scene
            return [frames]
        return list(frames)

    # ---- helpers -------------------------------------------------------------------------------------
    def _batch_seed(self) -> int | list[int] | None:
        """SB3's per-env seeds as the vector env's reset seed: None, s (env i gets s + i) or a list."""
        seeds = self._seeds
        if all(s is None for s in seeds):
            return None
        if any(s is None for s in seeds):
            raise ValueError(f"seeds for some envs only ({seeds}): seed all envs or none")
        if seeds == [seeds[0] + i for i in range(self.num_envs)]:
            return int(seeds[0])
        return [int(s) for s in seeds]

    def _batch_options(self) -> dict[str, Any] | None:
        options = self._options
        if not any(options):
            return None
        if any(o != options[0] for o in options):
            raise ValueError("a vector env resets all its envs with the same options; got different ones per env")
        return dict(options[0])

    @staticmethod
    def _terminal_obs(final_obs: Any, i: int) -> Any:
        if isinstance(final_obs, np.ndarray) and final_obs.dtype == object:  # SyncVectorEnv's layout
            return final_obs[i]
        return _obs_row(final_obs, i)


# ---- building the VecEnv of a run ------------------------------------------------------------------------
def _import_for(env_id: str) -> str:
    """Imports what registers ``env_id`` (``perceptgym/...`` ids, ``module:id``); returns the id to make."""
    if env_id.startswith("envs:perceptgym/"):  # run directories written before the one-namespace move
        env_id = env_id.removeprefix("envs:")
    module, sep, rest = env_id.partition(":")
    if sep and not rest.isidentifier():  # Gymnasium's "module:namespace/Env-v0" (not a "module:Class")
        importlib.import_module(module)
        env_id = rest
    if env_id.startswith("perceptgym/"):
        importlib.import_module("perceptgym.envs")
    return env_id


def has_sb3_vector_env(env_id: str) -> bool:
    """Whether ``env_id`` is a registered Gymnasium id whose native vector env SB3 can step.

    That is one declaring ``AutoresetMode.SAME_STEP`` or ``DISABLED`` in its class metadata; e.g.
    Gymnasium's ``CartPoleVectorEnv`` resets on the next step, so CartPole keeps SB3's ``DummyVecEnv``.
    """
    try:
        entry_point = gym.spec(_import_for(env_id)).vector_entry_point
    except (gym.error.Error, ImportError, ValueError):
        return False
    if entry_point is None:
        return False
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    mode = getattr(creator, "metadata", {}).get("autoreset_mode")
    return mode in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)


def make_sb3_vec_env(
    env_id: str,
    n_envs: int,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    policy: ImportPolicy | None = None,
) -> VecEnv:
    """The VecEnv SB3 trains on for ``n_envs`` copies of ``env_id``, seeded env i with ``seed + i``.

    The env's native vector env through :class:`VectorEnvAdapter` when it has one SB3 can step
    (:func:`has_sb3_vector_env`) and the run asks for no ``env_wrappers`` (a wrapper acts on one env);
    otherwise SB3's ``make_vec_env`` over :func:`build_env` (``DummyVecEnv`` of ``Monitor``-wrapped envs).
    ``settings`` are a run's env keys (``env_kwargs``, ``max_episode_steps``, ``env_wrappers``).
    """
    settings = dict(settings or {})
    module, sep, _ = env_id.partition(":")
    if sep and policy is not None:  # a module named by a file (a run's config.json) is imported only if trusted
        import_module(module, "env", policy, env_id)
    if has_sb3_vector_env(env_id) and not settings.get("env_wrappers"):
        kwargs = dict(settings.get("env_kwargs") or {})
        if settings.get("max_episode_steps"):
            kwargs["max_episode_steps"] = settings["max_episode_steps"]
        try:
            venv = gym.make_vec(_import_for(env_id), n_envs, vectorization_mode="vector_entry_point", **kwargs)
        except gym.error.Error as e:
            raise ValueError(f"cannot make vector env {env_id!r}: {e}") from e
        vec = VectorEnvAdapter(venv)
        if seed is not None:
            vec.seed(seed)
        return vec
    return make_vec_env(partial(build_env, env_id, settings, policy=policy), n_envs=n_envs, seed=seed)

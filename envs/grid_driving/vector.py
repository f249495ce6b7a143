"""GridDrivingVectorEnv: ``num_envs`` GridDriving envs stepped together with numpy (``gym.make_vec``).

The same dynamics as :class:`~perceptgym.envs.grid_driving.env.GridDrivingEnv`, not a copy of them: both
step with :func:`~perceptgym.envs.grid_driving.core.advance` over the model's compiled tables (here on int
arrays, one entry per sub-env), draw episode starts with ``DrivingModel.episode_starts`` and draw pixels with
one :class:`~perceptgym.envs.grid_driving.raster.PixelRaster`. Sub-env ``i`` of ``reset(seed=s)`` replays a
single env reset with seed ``s + i``, transition by transition.

Autoreset: ``AutoresetMode.SAME_STEP``. A sub-env whose episode ends is reset within the same ``step``,
which returns the first observation of its new episode; the last observation and info of the finished
episode are in ``info["final_obs"]`` and ``info["final_info"]`` (masked by ``info["_final_obs"]``), exactly
as :class:`gymnasium.vector.SyncVectorEnv` lays them out in that mode. Chosen over Gymnasium's default
(next-step) because it wastes no step: with next-step autoreset every episode end costs each ended sub-env
one step whose action is ignored (random-action episodes here last ~14 steps: ~7% of all steps), and it is
the semantics of stable-baselines3's ``VecEnv`` (``terminal_observation``), which
:class:`perceptgym.agents.vec_env.VectorEnvAdapter` serves from this env without stepping it again.

``info`` is batched as by ``SyncVectorEnv``: every key holds an array over sub-envs and ``info["_key"]``
marks the sub-envs that have it. Values where the mask is False are unspecified (not zeroed): read them
through the mask. Keys may share one mask array (and ``_event`` is the ``terminated`` array), and a value
may be one read-only array shared by all steps (``stop_numbers`` with fixed stops): treat ``info`` as
read-only.

Pixel observations are not copied: the env keeps every sub-env's frame in two buffers used in turn and
redraws only what moved since that buffer's last step (:meth:`PixelRaster.erase`, then
:meth:`PixelRaster.paint`), since copying whole frames costs more than all the drawing. So the array a step
returns stays valid through the next step and is overwritten by the one after (as
``SyncVectorEnv(copy=False)`` returns buffers that the next step overwrites, one step later): enough for
loops that store the last observation after stepping (stable-baselines3's rollout and replay buffers);
copy it to keep it longer, and do not write into it. ``info["final_obs"]`` frames are copies.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from perceptgym.envs.grid_driving.constants import DIGIT_PX, NO_SIGN, NUM_DIGITS, REWARD_TERMS
from perceptgym.envs.grid_driving.core import (
    EVENTS,
    NUM_ACTIONS,
    advance,
    draw_root,
    episode_keys,
    episode_rngs,
    make_trip,
    row_of,
)
from perceptgym.envs.grid_driving.env import (
    GridDrivingEnv,
    apply_reset_options,
    check_reset_options,
    draw_digits,
)

START_BLOCK = 256  # episode starts computed ahead per sub-env
REFILL_EVERY = 64  # [steps] between checks for blocks to refill (a sub-env takes at most one start per step)
INFO_MODES = ("full", "final")


def _object_array(n: int, idx: np.ndarray, values: list[Any]) -> np.ndarray:
    """An object array of length ``n`` with ``values`` at ``idx`` and None elsewhere (SyncVectorEnv's layout)."""
    out = np.empty(n, dtype=object)  # object arrays start as None
    for i, v in zip(idx.tolist(), values, strict=True):  # one by one: tuples and dicts must not be unpacked
        out[i] = v
    return out


class GridDrivingVectorEnv(VectorEnv):
    """A batch of GridDriving envs in one numpy env; kwargs as :class:`GridDrivingEnv`, plus these.

    Args:
        num_envs: sub-envs stepped together.
        max_episode_steps: truncate episodes after this many steps, as ``TimeLimit`` does for the single env
            (``gym.make_vec`` passes the registered 200); None: never.
        render_mode: renders sub-env 0 (``"human"``, ``"rgb_array"``, ``"ansi"``).
        info: ``"full"``: every key a single env's info has, laid out as by ``SyncVectorEnv``. ``"final"``:
            only what training needs, ``final_obs`` and ``final_info`` with ``is_success`` and ``event``;
            a step then costs ~30-40% less at 1024 sub-envs (building the full info is ~25 numpy calls).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": GridDrivingEnv.metadata["render_modes"],
        "render_fps": GridDrivingEnv.metadata["render_fps"],
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        info: str = "full",
        **kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        steps_ok = max_episode_steps is None or (
            isinstance(max_episode_steps, int | np.integer)
            and not isinstance(max_episode_steps, bool)
            and max_episode_steps >= 1
        )
        if not steps_ok:
            raise ValueError(f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}")
        if info not in INFO_MODES:
            raise ValueError(f"info must be one of {INFO_MODES}, got {info!r}")
        self.info_mode = info
        # One single env validates the arguments, holds the lazily loaded source and reader, and shows
        # sub-env 0 when rendering.
        self._view = GridDrivingEnv(render_mode=render_mode, **kwargs)
        self.model, self.params, self.obs_mode = self._view.model, self._view.params, self._view.obs_mode
        self.metadata = {**type(self).metadata, "render_fps": self._view.metadata["render_fps"]}
        self.num_envs = n = int(num_envs)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.render_mode = render_mode
        self.single_observation_space = self._view.observation_space
        self.single_action_space = self._view.action_space
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)

        t = self._tables = self.model.tables
        self._rows = np.arange(n)
        self._event_names = np.array(EVENTS, dtype=object)[t.event]  # per outcome
        self._success = t.event == EVENTS.index("arrived")
        self._term_masks = tuple(f"_{name}" for name in REWARD_TERMS)
        self._map_numbers = _object_array(n, self._rows, [self.params.gmap.stop_numbers] * n)
        self._map_numbers.setflags(write=False)
        self._masks = self.model.base_masks_packed
        k = self._n_stops = len(self.model.stop_cells)
        self._all = np.ones(n, dtype=bool)
        self._all.setflags(write=False)  # shared by the masks of keys every sub-env has
        self._row: np.ndarray | None = None  # None: no reset yet (see core.row_of)
        self._base = np.zeros(n, dtype=np.int64)
        self._card = np.zeros(n, dtype=np.int64)
        self._signs = np.full((n, k + 1), NO_SIGN, dtype=np.int64)  # stop numbers, then NO_SIGN (stop_slot)
        self._signs[:, :k] = self.params.gmap.stop_numbers
        self._obs_card = self._card  # the card the observation shows (perceived: what was read)
        self._obs_signs = self._signs
        self._t = 0  # steps taken by the batch since reset(); a sub-env truncates at its deadline
        self._deadline = np.zeros(n, dtype=np.int64)
        self._roots = np.zeros(n, dtype=np.uint64)
        # The queued episode starts (_fill_queue): sub-env i's next one is at _next[i], its first is its
        # episode _first[i] (counting from its last seeding).
        self._first = np.zeros(n, dtype=np.int64)
        self._next = np.zeros(n, dtype=np.int64)
        # One (num_envs, START_BLOCK) table per part of a start, _next indexing them flat (int64 like the state
        # they are copied into: a scatter that casts costs more; the shuffled numbers are digits, int8).
        images = self.obs_mode != "symbolic"
        self._keep_seeds = images or render_mode is not None  # the image seeds: for the images and render()
        b = START_BLOCK
        self._q_row, self._q_base, self._q_card = (np.zeros((n, b), dtype=np.int64) for _ in range(3))
        self._q_seed = np.zeros((n, b) if self._keep_seeds else 0, dtype=np.uint64)
        self._q_numbers = np.zeros((n, b, k) if self.params.shuffle_stops else 0, dtype=np.int8)
        self._seeded = False
        self._until_refill = REFILL_EVERY
        self._image_seed = np.zeros(n, dtype=np.uint64)
        # One bit generator per sub-env, re-seeded for each of its episodes (core.episode_rngs).
        self._bitgens = [np.random.PCG64(i) for i in range(n)] if images else []
        # Each sub-env's card, and its k signs then a blank (the "sign" of dict observations off the stops).
        self._card_image = np.zeros((n if images else 0, DIGIT_PX, DIGIT_PX), dtype=np.uint8)
        self._sign_images = np.zeros((n if images else 0, k + 1, DIGIT_PX, DIGIT_PX), dtype=np.uint8)
        if self.obs_mode == "perceived":
            self._read = np.full((n, k + 2), NO_SIGN, dtype=np.int64)  # card read, signs read, then NO_SIGN
            self._confidence = np.zeros((n, k + 1), dtype=np.float32)
            self._obs_card, self._obs_signs = self._read[:, 0], self._read[:, 1:]
        if self.obs_mode == "pixels":
            self._raster = self._view._get_raster()
            self._store = self._raster.episode_store(n)  # every sub-env's background (PixelRaster.erase)
            # Two frame buffers, used in turn: a step redraws only what moved since the buffer's last step
            # (from base state _drawn), and the signs and card where an episode began (_stale).
            shape = (n, *self._raster.shape)
            self._frames = (np.zeros(shape, dtype=np.uint8), np.zeros(shape, dtype=np.uint8))
            self._drawn = (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
            self._stale = (np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
            self._buffer = 0
        self._shown = (0, 0.0, None)  # sub-env 0's steps, return and last step, for render()
        self._flat = self.obs_mode in ("symbolic", "perceived")  # observations: one int array

    # ---- episodes ------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Resets every sub-env: ``seed`` an int (sub-env i: ``seed + i``), one seed per sub-env, or None.

        ``options`` (``card``, ``start``, ``phase``, see :class:`GridDrivingEnv`) apply to every sub-env.
        """
        n = self.num_envs
        if isinstance(seed, list | tuple):
            if len(seed) != n or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in seed):
                raise ValueError(f"seed must be an int, None or a list of {n} ints, got {seed!r}")
            seeds: list[int] | None = [int(s) for s in seed]
            super().reset(seed=None)
        else:
            super().reset(seed=seed)
            seeds = None if seed is None else [int(seed) + i for i in range(n)]
        options = check_reset_options(options)
        if seeds is not None:  # as n single envs: each draws its root from np_random seeded with its seed
            self._roots = np.array([draw_root(seeding.np_random(s)[0]) for s in seeds], dtype=np.uint64)
            self._first[:] = 0
        elif not self._seeded:
            self._roots = self.np_random.integers(0, 2**64, size=n, dtype=np.uint64)
            self._first[:] = 0
        else:  # continue every sub-env's episodes
            self._first += self._used()
        self._seeded = True
        self._fill_queue(self._rows)
        self._until_refill = REFILL_EVERY
        self._row = np.zeros(n, dtype=np.int64)
        self._t = 0
        self._base = np.zeros(n, dtype=np.int64)
        self._take_starts(self._rows, options)
        info: dict[str, Any] = {}
        if self.info_mode == "full":
            info = self._episode_info(self._rows, self._all)
            self._add_current(info, self._masks[self._base], self._base)
        self._shown = (0, 0.0, None)
        if self.render_mode == "human":
            self.render()
        if self.obs_mode == "pixels":  # new backgrounds everywhere: both buffers are drawn afresh
            return self._draw_frames(self._base, None, fresh=True), info
        return self._observe(self._base.copy()), info

    def _fill_queue(self, w: np.ndarray) -> None:
        """Queues the next START_BLOCK episode starts of sub-envs ``w`` (from their episode ``_first``)."""
        b = START_BLOCK
        keys = episode_keys(self._roots[w, None], self._first[w, None] + np.arange(b))
        s = self.model.episode_starts(keys.ravel(), image_seeds=self._keep_seeds)
        shape = (len(w), b)
        self._q_row[w] = row_of(self._tables, s.base, s.target).reshape(shape)
        self._q_base[w], self._q_card[w] = s.base.reshape(shape), s.card.reshape(shape)
        if self._keep_seeds:
            self._q_seed[w] = s.image_seed.reshape(shape)
        if self.params.shuffle_stops:
            self._q_numbers[w] = s.numbers.reshape(*shape, -1)
        self._next[w] = w * b

    def _used(self) -> np.ndarray:
        """How many of its queued starts each sub-env has taken."""
        return self._next - self._rows * START_BLOCK

    def _refill(self) -> None:
        """Every REFILL_EVERY steps: refills the blocks that the next REFILL_EVERY steps might use up.

        Checking on a schedule costs no numpy call in the other steps. A refill recomputes the block from
        the sub-env's next episode on, so when it happens never changes which starts a sub-env takes.
        """
        self._until_refill = REFILL_EVERY
        used = self._used()
        refill = (used > START_BLOCK - REFILL_EVERY).nonzero()[0]
        if len(refill):
            self._first[refill] += used[refill]
            self._fill_queue(refill)

    def _take_starts(self, idx: np.ndarray, options: dict[str, Any] | None = None) -> None:
        """Starts the next episode of sub-envs ``idx``: state, handwriting, its reading, pixel background."""
        q = self._next[idx]
        self._next[idx] = q + 1  # never past its block: _refill, reset()
        row, base, card = self._q_row.take(q), self._q_base.take(q), self._q_card.take(q)  # (take: flat)
        k = self._n_stops
        if self.params.shuffle_stops:
            self._signs[idx, :k] = self._q_numbers.reshape(-1, k)[q]
        if options:
            row, base, card = self._apply_options(idx, row, base, card, options)
        self._row[idx], self._base[idx], self._card[idx] = row, base, card
        if self._keep_seeds:
            seed = self._q_seed.take(q)
            self._image_seed[idx] = seed
        if self.max_episode_steps is not None:
            self._deadline[idx] = self._t + self.max_episode_steps
        if self.obs_mode == "symbolic":
            return
        # One source call per new episode, each with that episode's own Generator: the handwriting of
        # sub-env i must not depend on which other sub-envs started an episode in the same step.
        labels = np.concatenate([card[:, None], self._signs[idx, :k]], axis=1)
        rngs = episode_rngs(seed, [self._bitgens[i] for i in idx.tolist()])
        new = draw_digits(self._view._source, labels, rngs)
        self._card_image[idx], self._sign_images[idx, :k] = new[:, 0], new[:, 1:]
        if self.obs_mode == "perceived":  # one reader call for all new episodes' cards and signs
            read, confidence = self._view._reading.read(new.reshape(-1, DIGIT_PX, DIGIT_PX))
            self._read[idx, : k + 1] = read.reshape(len(idx), k + 1)
            self._confidence[idx] = confidence.reshape(len(idx), k + 1)
        if self.obs_mode == "pixels":
            self._raster.paint_episodes(self._store, idx, new[:, 0], new[:, 1:])

    def _apply_options(
        self, idx: np.ndarray, row: np.ndarray, base: np.ndarray, card: np.ndarray, options: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self._n_stops
        row, base, card = row.copy(), base.copy(), card.copy()
        for j, i in enumerate(idx.tolist()):  # at reset only, with options only
            numbers = tuple(self._signs[i, :k].tolist())
            card[j], base[j] = apply_reset_options(self.model, options, numbers, int(card[j]), int(base[j]))
            row[j] = row_of(self._tables, int(base[j]), numbers.index(int(card[j])))
        return row, base, card

    # ---- stepping ------------------------------------------------------------------------------------
    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._row is None:
            raise gym.error.ResetNeeded("GridDrivingVectorEnv: call reset() before step()")
        a = self._check_actions(actions)
        t = self._tables
        self._row, base, o = advance(t, self._row, a)
        self._base = base  # the new episodes' starts are written into it (_take_starts)
        rewards, terminated = t.reward.take(o), t.terminated.take(o)
        self._t += 1
        self._until_refill -= 1
        if not self._until_refill:
            self._refill()
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:  # as TimeLimit: also when the episode terminated on its last step
            truncated = self._deadline == self._t
        done = terminated | truncated
        idx = done.nonzero()[0]  # ~5x cheaper than np.flatnonzero's wrappers at this size
        # int observations are computed once, after the resets (the ended episodes' last ones alone before)
        obs = self._observe(base) if not (self._flat and len(idx)) else None
        if self.render_mode is not None:
            self._record_shown(int(a[0]), int(o[0]), bool(done[0]))
        full = self.info_mode == "full"
        # As SyncVectorEnv: a key is there when some sub-env has it (sub-envs that reset have reset info).
        info: dict[str, Any] = {}
        if full:
            terms = dict(zip(REWARD_TERMS, t.terms.take(o, axis=0).T, strict=True))  # (num_envs,) each
            ongoing = self._all if not len(idx) else ~done
            if len(idx) < self.num_envs:
                info["reward_terms"] = {**terms, **dict.fromkeys(self._term_masks, ongoing)}
                info["_reward_terms"] = ongoing
        if len(idx):
            final: dict[str, Any] = {}
            if full:
                final["reward_terms"] = {**terms, **dict.fromkeys(self._term_masks, done)}
                final["_reward_terms"] = done
                self._add_current(final, self._masks.take(base), base, done)  # before the resets change base
            ended = idx[terminated[idx]]  # small arrays: cheaper than searching all of terminated again
            if len(ended):
                final["event"], final["_event"] = np.empty(self.num_envs, dtype=object), terminated
                final["event"][ended] = self._event_names[o[ended]]
                final["is_success"], final["_is_success"] = self._success.take(o), terminated
            if obs is None:  # Discrete: stored as Python ints, at once
                info["final_obs"] = np.empty(self.num_envs, dtype=object)
                info["final_obs"][idx] = self._observe(base[idx], idx)
            else:
                info["final_obs"] = self._final_obs(obs, idx)
            info["_final_obs"] = done
            info["final_info"], info["_final_info"] = final, done
            self._take_starts(idx)
            if obs is None:  # the whole batch: fewer numpy calls than patching the new episodes in
                obs = self._observe(base)
            else:
                obs = self._observe_into(obs, idx, base[idx])
            if full:
                info.update(self._episode_info(idx, done))
        if full:
            self._add_current(info, self._masks.take(base), base)
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminated, truncated, info

    def _final_obs(self, obs: Any, idx: np.ndarray) -> np.ndarray:
        """``info["final_obs"]`` of pixels and dicts: sub-env ``idx``'s observations (own copies), else None."""
        return _object_array(self.num_envs, idx, self._unbatch(obs, idx))

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        n = self.num_envs
        if a.shape != (n,) or a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be an integer array of shape ({n},), one action per sub-env; got "
                f"{a.dtype} of shape {a.shape}"
            )
        # Negative ints wrap to huge unsigned ones: one check for both ends.
        u = a.view(np.uint64) if a.dtype == np.int64 else a.view(f"u{a.dtype.itemsize}")
        if u.max() >= NUM_ACTIONS:
            where = np.flatnonzero(u >= NUM_ACTIONS)
            raise ValueError(
                f"actions must be in 0..{NUM_ACTIONS - 1}; sub-envs {where[:5].tolist()} got {a[where[:5]].tolist()}"
            )
        return a.astype(np.int64, copy=False)

    # ---- observations and info -----------------------------------------------------------------------
    def _observe(self, base: np.ndarray, idx: np.ndarray | None = None) -> Any:
        """The observations of all sub-envs (``idx`` None) or of sub-envs ``idx``, at base states ``base``."""
        m = self.model
        if self.obs_mode in ("symbolic", "perceived"):
            card = self._obs_card if idx is None else self._obs_card[idx]
            if m.n_sign == 1:
                return base * NUM_DIGITS + card
            rows = self._rows if idx is None else idx
            return m.index(base, card, self._obs_signs[rows, self._tables.stop_slot[base]])
        if self.obs_mode == "pixels":
            return self._draw_frames(base, idx)
        rows = self._rows if idx is None else idx
        return {
            "state": base.copy(),
            "card": self._card_image.copy() if idx is None else self._card_image[idx],
            "sign": self._sign_images[rows, self._tables.stop_slot[base]],
        }

    def _draw_frames(self, base: np.ndarray, idx: np.ndarray | None, fresh: bool = False) -> np.ndarray:
        """Pixels: all sub-envs' frames in the other buffer (``idx`` None), or the new episodes ``idx``'s.

        ``fresh``: after reset(), every frame drawn from its background.
        """
        raster, bg = self._raster, self._store
        if fresh:
            for frames, drawn, stale in zip(self._frames, self._drawn, self._stale, strict=True):
                frames[:] = raster.blanks(1)
                raster.refresh(frames, bg, self._rows)
                drawn[:], stale[:] = base, False  # erasing from a clean background changes nothing
        if idx is not None:  # new episodes, in the buffer that shows their last steps; the other one later
            frames = self._frames[self._buffer]
            raster.refresh(frames, bg, idx)
            raster.erase(frames, bg, idx, self._drawn[self._buffer][idx])
            raster.paint(frames, idx, base)
            self._drawn[self._buffer][idx] = base
            self._stale[1 - self._buffer][idx] = True
            return frames
        b = self._buffer = 1 - self._buffer
        frames, drawn, stale = self._frames[b], self._drawn[b], self._stale[b]
        new_episodes = stale.nonzero()[0]
        if len(new_episodes):
            raster.refresh(frames, bg, new_episodes)
            stale[new_episodes] = False
        raster.erase(frames, bg, self._rows, drawn)
        raster.paint(frames, self._rows, base)
        drawn[:] = base
        return frames

    def _observe_into(self, obs: Any, idx: np.ndarray, base: np.ndarray) -> Any:
        if self.obs_mode == "pixels":
            return self._draw_frames(base, idx)
        new = self._observe(base, idx)
        if isinstance(obs, dict):
            for key, value in new.items():
                obs[key][idx] = value
        else:
            obs[idx] = new
        return obs

    def _unbatch(self, obs: Any, idx: np.ndarray) -> list[Any]:
        """Sub-env observations as a single env returns them (final_obs)."""
        if isinstance(obs, dict):
            parts = {key: self._unbatch(value, idx) for key, value in obs.items()}
            return [dict(zip(parts, values, strict=True)) for values in zip(*parts.values(), strict=True)]
        return obs[idx].tolist() if obs.ndim == 1 else list(obs[idx])  # Discrete: ints, as GridDrivingEnv

    def _add_current(
        self, info: dict[str, Any], packed: np.ndarray, base: np.ndarray, mask: np.ndarray | None = None
    ) -> None:
        """What every step and reset info has: the action mask (``packed``: ``_masks[base]``) and the card."""
        mask = self._all if mask is None else mask
        info["action_mask"], info["_action_mask"] = packed.view(np.int8).reshape(-1, 8)[:, :NUM_ACTIONS], mask
        info["card"], info["_card"] = self._card.copy(), mask
        if self.obs_mode != "perceived":
            return
        info["card_read"], info["_card_read"] = self._read[:, 0].copy(), mask
        info["card_confidence"], info["_card_confidence"] = self._confidence[:, 0].astype(np.float64), mask
        if self.params.shuffle_stops:
            slot = self._tables.stop_slot[base]
            info["sign"], info["_sign"] = self._signs[self._rows, slot], mask
            info["sign_read"], info["_sign_read"] = self._read[self._rows, slot + 1], mask
            # off a stop (slot == number of stops) there is no sign to read: known, hence confidence 1
            on_stop = slot < self._n_stops
            conf = self._confidence[self._rows, np.minimum(slot, self._n_stops - 1) + 1].astype(np.float64)
            info["sign_confidence"], info["_sign_confidence"] = np.where(on_stop, conf, 1.0), mask

    def _episode_info(self, idx: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """The reset info of new episodes in sub-envs ``idx``: their stop numbers (and what was read)."""
        n, k = self.num_envs, self._n_stops
        if self.params.shuffle_stops:
            numbers = _object_array(n, idx, [tuple(r) for r in self._signs[idx, :k].tolist()])
        else:  # one read-only array holding the map's tuple everywhere (unmasked values are unspecified)
            numbers = self._map_numbers
        info = {"stop_numbers": numbers, "_stop_numbers": mask}
        if self.obs_mode == "perceived":
            read, conf = self._read[idx, 1 : k + 1].tolist(), self._confidence[idx, 1:].tolist()
            info["signs_read"], info["_signs_read"] = _object_array(n, idx, [tuple(r) for r in read]), mask
            info["signs_confidence"] = _object_array(n, idx, [tuple(c) for c in conf])
            info["_signs_confidence"] = mask
        return info

    # ---- rendering -----------------------------------------------------------------------------------
    def _record_shown(self, action: int, outcome: int, done: bool) -> None:
        steps, ret, _ = self._shown
        t = self.model.tables_list
        terms = dict(zip(REWARD_TERMS, t.terms[outcome], strict=True))
        self._shown = (steps + 1, ret + t.reward[outcome], (action, terms, EVENTS[t.event[outcome]]))
        if done:  # the next render shows sub-env 0's new episode
            self._shown = (0, 0.0, None)

    def render(self) -> Any:
        """Renders sub-env 0 (as :meth:`GridDrivingEnv.render` in this env's render_mode)."""
        if self._row is None:
            raise gym.error.ResetNeeded("GridDrivingVectorEnv: call reset() before render()")
        view, k = self._view, self._n_stops
        base = int(self._base[0])
        if view._base != base or view._image_seed != int(self._image_seed[0]):
            trip = make_trip(int(self._card[0]), tuple(self._signs[0, :k].tolist()))
            view._start(trip, base, int(self._image_seed[0]))
            if self.obs_mode != "symbolic":
                view._images = np.concatenate([self._card_image[:1], self._sign_images[0, :k]])
            if self.obs_mode == "perceived":
                view._reads = (self._read[0, : k + 1], self._confidence[0])
        view._steps, view._return, view._last = self._shown
        return view.render()

    def close_extras(self, **kwargs: Any) -> None:
        self._view.close()

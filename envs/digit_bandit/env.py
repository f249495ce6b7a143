"""DigitBanditEnv: the Gymnasium glue around :mod:`perceptgym.envs.digit_bandit.core`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.envs.checks import ResetNeeded, check_options, check_real, check_seed
from perceptgym.envs.digit_bandit.core import (
    OBS_MODE_ALIASES,
    OBS_MODES,
    Block,
    Params,
    draw_block,
    draw_permutation,
    reward_for,
)
from perceptgym.envs.digits import IMAGE_SHAPE, NUM_DIGITS, DigitModels, DigitSource, LazyReader, LazySource, Reader
from perceptgym.envs.viewer import check_window_size


class DigitBanditEnv(DigitModels, gym.Env):
    """A contextual bandit on handwritten digits: read the digit, answer its label.

    ## Description
    Each round (episode) shows one handwritten digit drawn from a digit source (MNIST train split, MNIST test
    split, a GAN, or any ``DigitSource`` callable); the agent answers one of the 10 labels. Bandit algorithms
    are scored by cumulative regret, which ``info`` reports every round. This is the MNIST contextual bandit
    of bsuite and of the NeuralUCB / NeuralTS papers, with the perception ladder's observation modes.

    ## Action Space
    ``Discrete(10)``: the label answered (:class:`perceptgym.envs.digit_bandit.core.Action`).

    ## Observation Space
    - ``"symbolic"``: ``Discrete(10)``, the true digit (the upper bound; for testing agents).
    - ``"perceived"``: the ``"symbolic"`` observation with the digit replaced by the label ``reader`` reads
      from the image: ``Discrete(10)``, the same space as ``"symbolic"``, so any agent of the symbolic rung
      runs unchanged (``"perceived-label"``, its former name, is still accepted). ``info`` holds the read
      label and the reader's confidence (``label_read``, ``label_confidence``) at ``reset`` and ``step``.
    - ``"perceived-confidence"``: ``Dict(label=Discrete(10), confidence=Box(0, 1, (1,), float32))``, the read
      label with the reader's confidence in the observation (for bandit agents that use it).
    - ``"pixels"``: ``Box(0, 255, (28, 28), uint8)``, the image.

    The perceived modes read a whole block of images in one batched call; a reader that returns labels
    outside 0..9 or confidences outside [0, 1] is refused with an error that names it.

    ## Rewards
    ``reward_scheme="binary"``: 1 for the rewarded label, 0 otherwise; ``"plus_minus"``: +1 / -1 (bsuite).
    The rewarded label is ``perm[y]`` for the true digit ``y``; ``perm`` is the identity until the first
    permutation change (``permute_every``). With ``label_noise`` p a uniformly random digit replaces ``y``
    for the reward; with ``reward_noise`` q the reward is flipped. ``info`` holds ``label`` (true digit),
    ``optimal_action`` (``perm[y]``), ``expected_reward`` of the action taken, ``regret`` (expected reward of
    the optimal action minus that of the action taken: the pseudo-regret, which is 0 or a constant gap) and
    ``round`` (rounds played since the last seeded reset; it keeps counting over unseeded resets); in the
    perceived modes also ``label_read`` and ``label_confidence``.

    ## Starting State
    ``reset`` shows a fresh digit; the label is uniform over 0-9.

    ## Episode End
    Every episode is one round: ``terminated=True`` after each step (so value targets never bootstrap across
    unrelated contexts); ``truncated`` is always False. The step's observation repeats the round's context.
    A second ``step`` raises :class:`perceptgym.envs.checks.ResetNeeded` until ``reset``.

    ## Arguments
    ``obs_mode``, ``digit_source`` (a name in ``perceptgym.envs.digits.SOURCE_NAMES``, ``"gan:<path>"`` or a callable),
    ``reader`` (a name in ``perceptgym.envs.digits.READER_NAMES``, a checkpoint path or a callable; used only by the
    perceived modes), ``reward_scheme``, ``label_noise``, ``reward_noise``, ``permute_every`` [rounds],
    ``block_size`` [rounds drawn per source call], ``render_mode``, ``window_size`` [px: the box frames fit in].
    Sources and readers are loaded lazily, on the first ``reset``.

    ## Version History
    - v0: initial version. (Before release, ``"perceived"`` became the read label, as in GridDriving; the
      label-and-confidence Dict it was is now ``"perceived-confidence"``.)
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        obs_mode: str = "pixels",
        digit_source: str | DigitSource = "mnist-train",
        reader: str | Reader = "cnn",
        reward_scheme: str = "binary",
        label_noise: float = 0.0,
        reward_noise: float = 0.0,
        permute_every: int = 0,
        block_size: int = 1024,
        render_mode: str | None = None,
        window_size: tuple[int, int] | None = None,  # [px] (width, height) frames fit in; None: 960x540
    ) -> None:
        obs_mode = OBS_MODE_ALIASES.get(obs_mode, obs_mode) if isinstance(obs_mode, str) else obs_mode
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self._source, self._reading = LazySource(digit_source), LazyReader(reader)
        self.params = Params(
            reward_scheme=reward_scheme,
            label_noise=check_real("label_noise", label_noise),
            reward_noise=check_real("reward_noise", reward_noise),
            permute_every=permute_every,
            block_size=block_size,
        )
        self.obs_mode = obs_mode
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(NUM_DIGITS)
        self.observation_space = observation_space(obs_mode)

        self._expected_right, self._expected_wrong = self.params.expected_rewards()
        self._gap = self._expected_right - self._expected_wrong
        self._block: Block | None = None
        self._read: tuple[np.ndarray, np.ndarray] | None = None
        self._i = 0  # index of the current round in the block
        self._round = -1  # rounds started since the last seeded reset, minus one
        self._perm = np.arange(NUM_DIGITS, dtype=np.int64)
        self._pending = False  # a context is shown and awaits an answer
        self._last_action: int | None = None
        self._last_reward = 0.0
        self.cumulative_regret = 0.0
        self._window_size = check_window_size(window_size)
        self._renderer = None

    # ------------------------------------------------------------------ perception models (lazy)
    @property
    def permutation(self) -> np.ndarray:
        """The current label permutation (rewarded action = ``permutation[true digit]``)."""
        return self._perm.copy()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        check_options(options, ())
        seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None or self._block is None:
            self._block, self._read, self._round = None, None, -1
            self._perm = np.arange(NUM_DIGITS, dtype=np.int64)
            self.cumulative_regret = 0.0
        self._round += 1
        k = self.params.permute_every
        if k and self._round and self._round % k == 0:
            self._perm = draw_permutation(self._perm, self.np_random)
        self._i += 1
        if self._block is None or self._i >= len(self._block.labels):
            self._next_block()
        obs = self._observe()
        self._pending, self._last_action = True, None
        if self.render_mode == "human":
            self.render()
        info = {"round": self._round}
        self._add_reads(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self._pending:
            raise ResetNeeded("DigitBanditEnv: call reset() before step(); every episode is a single round")
        try:
            a = int(action)
        except (TypeError, ValueError):
            raise ValueError(f"action must be an int label in 0..9, got {action!r}") from None
        if a != action or not 0 <= a < NUM_DIGITS:
            raise ValueError(f"action must be an int label in 0..9, got {action!r}")
        block, i = self._block, self._i
        optimal = int(self._perm[block.labels[i]])
        reward = reward_for(a, block.reward_labels[i], block.flips[i], self._perm, self.params)
        if a == optimal:
            expected, regret = self._expected_right, 0.0
        else:
            expected, regret = self._expected_wrong, self._gap
        self.cumulative_regret += regret
        self._pending, self._last_action, self._last_reward = False, a, reward
        info = {
            "label": int(block.labels[i]),
            "optimal_action": optimal,
            "expected_reward": expected,
            "regret": regret,
            "round": self._round,
        }
        self._add_reads(info)
        if self.render_mode == "human":
            self.render()
        return self._observe(), reward, True, False, info  # fresh arrays: callers may keep both obs

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("DigitBanditEnv.render() called without a render_mode; pass render_mode to make().")
            return None
        if self._block is None:
            raise RuntimeError("DigitBanditEnv: call reset() before render()")
        if self._renderer is None:
            from perceptgym.envs.digit_bandit.render import DigitBanditRenderer  # lazy: pygame only when rendering

            self._renderer = DigitBanditRenderer(
                self._window_size, window=self.render_mode == "human", render_fps=self.metadata["render_fps"]
            )
        frame = self._renderer.render(self.snapshot())
        return frame if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def snapshot(self) -> dict[str, Any]:
        """A read-only view of the current round for renderers and viewers."""
        i = self._i
        snap = {
            "image": self._block.images[i],
            "label": int(self._block.labels[i]),
            "optimal_action": int(self._perm[self._block.labels[i]]),
            "action": self._last_action,
            "reward": self._last_reward if self._last_action is not None else None,
            "cumulative_regret": self.cumulative_regret,
            "round": self._round,
            "read": None,
        }
        if self._read is not None:
            snap["read"] = (int(self._read[0][i]), float(self._read[1][i]))
        return snap

    # ------------------------------------------------------------------ internals
    def _add_reads(self, info: dict[str, Any]) -> None:
        if self._read is not None:
            info["label_read"] = int(self._read[0][self._i])
            info["label_confidence"] = float(self._read[1][self._i])

    def _next_block(self) -> None:
        block = draw_block(self.params.block_size, self._source, self.params, self.np_random)
        read = self._reading(block.images) if self.obs_mode in PERCEIVED_MODES else None  # one batch
        self._block, self._read, self._i = block, read, 0

    def _observe(self) -> Any:
        return observe(self.obs_mode, self._block, self._read, self._i)

    # ------------------------------------------------------------------ resuming a training run
    def get_resume_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What, besides ``np_random``, the next rounds depend on: the block of drawn contexts and the counters.

        A training run saves it with its checkpoints (as JSON and arrays, never a pickle) so that a resumed
        run sees the same digits as an uninterrupted one; :meth:`set_resume_state` puts it back.
        """
        meta = {
            "i": self._i,
            "round": self._round,
            "cumulative_regret": self.cumulative_regret,
            "has_block": self._block is not None,
            "has_read": self._read is not None,
        }
        arrays = {"perm": self._perm.copy()}
        if self._block is not None:
            arrays |= {f"block_{k}": v for k, v in dataclasses.asdict(self._block).items()}
        if self._read is not None:
            arrays |= {"read_labels": self._read[0], "read_confidences": self._read[1]}
        return meta, arrays

    def set_resume_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restores :meth:`get_resume_state` (between rounds); a ValueError if it does not fit this env."""
        perm = np.asarray(arrays["perm"], dtype=np.int64)
        if sorted(perm.tolist()) != list(range(NUM_DIGITS)):
            raise ValueError("perm is not a permutation of the 10 labels")
        block = None
        if meta["has_block"]:
            block = Block(**{f.name: arrays[f"block_{f.name}"] for f in dataclasses.fields(Block)})
            n = len(block.labels)
            if block.images.shape != (n, *IMAGE_SHAPE) or not 0 <= int(meta["i"]) < n:
                raise ValueError(f"a block of {n} rounds with images {block.images.shape} at round {meta['i']}")
        read = (arrays["read_labels"], arrays["read_confidences"]) if meta["has_read"] else None
        if block is not None and (read is not None) != (self.obs_mode in PERCEIVED_MODES):
            raise ValueError(f"the saved state does not match obs_mode={self.obs_mode!r}")
        self._block, self._read, self._perm = block, read, perm
        self._i, self._round = int(meta["i"]), int(meta["round"])
        self.cumulative_regret = float(meta["cumulative_regret"])
        self._pending, self._last_action = False, None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_renderer"] = None  # a pygame window does not pickle; a fresh one is made on the next render()
        return state  # the digit source and the reader pickle by name (LazySource, LazyReader)


#: The modes whose observation is what the reader read.
PERCEIVED_MODES = ("perceived", "perceived-confidence")


def observation_space(obs_mode: str) -> spaces.Space:
    """The observation space of one round in ``obs_mode``."""
    if obs_mode == "pixels":
        return spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
    if obs_mode == "perceived-confidence":
        return spaces.Dict({"label": spaces.Discrete(NUM_DIGITS), "confidence": spaces.Box(0.0, 1.0, (1,), np.float32)})
    return spaces.Discrete(NUM_DIGITS)


def observe(obs_mode: str, block: Block, read: tuple[np.ndarray, np.ndarray] | None, idx: int | slice) -> Any:
    """Fresh observation data of round ``idx`` of ``block`` (a slice gives a batch, for the vector env)."""
    if obs_mode == "pixels":
        return block.images[idx].copy()
    if obs_mode == "symbolic":
        return block.labels[idx].copy()
    if obs_mode == "perceived":
        return read[0][idx].copy()
    conf = read[1][idx : idx + 1] if isinstance(idx, int) else read[1][idx, None]
    return {"label": read[0][idx].copy(), "confidence": conf.copy()}

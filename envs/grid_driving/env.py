"""GridDrivingEnv: the Gymnasium glue around the world model (spaces, reset/step, observation, info)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from perceptgym.envs.checks import ResetNeeded, check_bool, check_int, check_options, check_real, check_seed, is_int
from perceptgym.envs.digits import DigitModels, DigitSource, LazyReader, LazySource, PerceptionError, Reader
from perceptgym.envs.grid_driving.constants import (
    DEFAULT_ARRIVAL,
    DEFAULT_COLLISION,
    DEFAULT_PROGRESS,
    DEFAULT_RED_LIGHT,
    DEFAULT_TIME_COST,
    DEFAULT_WRONG_STOP,
    DIGIT_PX,
    HEADING_NAMES,
    NO_SIGN,
    NUM_DIGITS,
    NUM_HEADINGS,
    OBS_MODES,
    REWARD_TERMS,
)
from perceptgym.envs.grid_driving.core import (
    EVENTS,
    NUM_ACTIONS,
    Action,
    DrivingModel,
    DrivingState,
    Params,
    Trip,
    advance,
    compile_model,
    draw_root,
    episode_keys,
    episode_rngs,
    make_trip,
    row_of,
    trip_target,
)
from perceptgym.envs.grid_driving.maps import get_map
from perceptgym.envs.grid_driving.planning import TabularModel, optimal_return, tabular_model, value_iteration
from perceptgym.envs.viewer import check_window_size

RESET_OPTIONS = ("card", "start", "phase")
STARTS_BLOCK = 64  # episode starts computed at once by a single env (numpy calls cost more than the draws)


class GridDrivingEnv(DigitModels, gym.Env):
    """Drive a car through a small city to the stop whose handwritten number is on the trip card.

    ## Description
    A grid of roads and buildings. The ego car (red) has a position and a heading and drives only on roads;
    other cars (blue) drive round fixed rectangular loops at one cell per step and never yield; traffic
    lights at intersections alternate north-south / east-west green. Each episode draws a trip card, a
    handwritten digit 0-9; stops along the roads carry handwritten-digit signs. The car must STOP at the stop
    whose number matches the card, quickly, without crashing or running red lights.

    ## Action Space
    ``Discrete(5)``, see :class:`Action`: 0 FORWARD one cell, 1 LEFT / 2 RIGHT turn 90 degrees in place,
    3 WAIT, 4 STOP (ends the trip when on a stop; elsewhere it waits). ``info["action_mask"]`` (int8) marks
    FORWARD into a building and STOP away from a stop as invalid; taking them anyway just waits.

    ## Observation Space (``obs_mode``)
    - ``"symbolic"``: ``Discrete(n)``, the true state ``(cell, heading, phase, card, sign)`` encoded as in
      :mod:`perceptgym.envs.grid_driving.core` (``env.unwrapped.decode(s)``). The phase is the traffic clock.
    - ``"perceived"``: the ``"symbolic"`` observation with every digit in it replaced by the label ``reader``
      reads from that digit's image (drawn from ``digit_source``): the card and, with shuffled stops, the
      sign under the car. Same space as ``"symbolic"``, so any symbolic-mode agent runs unchanged; a misread
      card sends the car to the wrong stop. The reader's confidences are in ``info`` (``card_confidence``,
      and ``sign_confidence`` with shuffled stops), next to what it read (``card_read``, ``sign_read``) and
      the truth (``card``, ``sign``); ``reset``'s ``info`` also has every sign as read (``signs_read``,
      ``signs_confidence``, map order). All images of an episode are read in one batch at ``reset``; a
      reader that returns labels outside 0..9 or confidences outside [0, 1] is refused, by name.
    - ``"pixels"``: ``Box(0, 255, (H, W, 3), uint8)``, a top-down raster with the handwritten signs and card.
    - ``"dict"``: ``{"state": Discrete(n_base)`` (cell, heading, phase), ``"card"``: the 28x28 card image,
      ``"sign"``: the 28x28 sign image under the car (zeros off stops)}.

    ## Rewards
    The sum of named terms (``info["reward_terms"]``), each weighted by a constructor argument:
    ``time`` -time_cost every step, ``progress`` progress x cells gained towards the card's stop, ``arrival``
    on the right stop, ``wrong_stop`` on another stop, ``collision``, ``red_light`` for entering an
    intersection on red. With the defaults a trip is worth about +1 minus 0.01 per step.

    ## Starting State
    Uniform over road cells free of traffic, headings along the road, traffic phases, and cards among the
    map's stop numbers. ``reset(options=...)`` may fix ``card``, ``start=(row, col, heading)`` and ``phase``.

    ## Episode End
    Terminates on STOP at a stop (right or wrong) and on a collision; a ``step`` after that raises
    :class:`perceptgym.envs.checks.ResetNeeded` until ``reset``. The time limit comes from ``TimeLimit``
    (``max_episode_steps`` at registration), so the env itself returns ``truncated=False``.

    ## Arguments
    See ``__init__``; each is checked at construction (a wrong type or value is a ValueError naming it).
    ``digit_source`` is a name in ``perceptgym.envs.digits.SOURCE_NAMES``, ``"gan:<path>"`` or a callable;
    ``reader`` a name in ``perceptgym.envs.digits.READER_NAMES``, a checkpoint path or a callable; named
    models are loaded when first needed and pickle as their names. ``env.unwrapped.P`` is the exact model
    (fixed stop numbers only) and ``env.unwrapped.optimal_return()`` its optimal expected return from value
    iteration.

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array", "ansi"], "render_fps": 8}

    def __init__(
        self,
        map: str | Sequence[str] = "small",
        obs_mode: str = "symbolic",
        digit_source: str | DigitSource = "mnist-train",
        reader: str | Reader = "cnn",
        render_mode: str | None = None,
        render_fps: int | None = None,  # [frames/s] of the human window; None: metadata["render_fps"]
        window_size: tuple[int, int] | None = None,  # [px] (width, height) frames fit in; None: 1280x720
        n_cars: int = 2,  # other cars on the roads (traffic density)
        green_steps: int = 3,  # [steps] each light axis stays green this long; 0 = no lights
        shuffle_stops: bool = False,  # new stop numbers every episode (then no exact model)
        map_seed: int = 0,  # seed of map="procedural"
        route_seed: int = 0,  # chooses the other cars' loops and offsets
        max_period: int = 60,  # [steps] cap on the traffic period T (state-space size grows with T)
        time_cost: float = DEFAULT_TIME_COST,  # [reward/step], subtracted every step
        progress: float = DEFAULT_PROGRESS,  # [reward/cell] of road distance gained towards the target stop
        arrival: float = DEFAULT_ARRIVAL,  # [reward] for stopping at the card's stop
        wrong_stop: float = DEFAULT_WRONG_STOP,  # [reward] for stopping at another stop
        collision: float = DEFAULT_COLLISION,  # [reward] for hitting a car
        red_light: float = DEFAULT_RED_LIGHT,  # [reward] for entering an intersection on red
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"unknown obs_mode {obs_mode!r}: use one of {OBS_MODES}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}: use None or one of {self.metadata['render_modes']}")
        # Models first: they are the settings most often given wrongly (a typo in a name or a path).
        self._source, self._reading = LazySource(digit_source), LazyReader(reader)
        ints = {
            name: check_int(name, value, lo)
            for name, value, lo in (
                ("n_cars", n_cars, 0),
                ("green_steps", green_steps, 0),
                ("max_period", max_period, 1),
                ("map_seed", map_seed, 0),
                ("route_seed", route_seed, 0),
            )
        }
        weights = {
            "time_cost": time_cost,
            "progress": progress,
            "arrival": arrival,
            "wrong_stop": wrong_stop,
            "collision": collision,
            "red_light": red_light,
        }
        signs = {
            "time_cost": ">= 0",
            "progress": ">= 0",
            "arrival": ">= 0",
            "wrong_stop": "<= 0",
            "collision": "<= 0",
            "red_light": "<= 0",
        }
        weights = {name: check_real(name, value, signs[name]) for name, value in weights.items()}
        self.params = Params(
            gmap=get_map(map, seed=ints["map_seed"]),
            n_cars=ints["n_cars"],
            green_steps=ints["green_steps"],
            max_period=ints["max_period"],
            route_seed=ints["route_seed"],
            shuffle_stops=check_bool("shuffle_stops", shuffle_stops),
            **weights,
        )
        self.model: DrivingModel = compile_model(self.params)
        self.obs_mode, self.render_mode = obs_mode, render_mode
        if render_fps is not None:
            render_fps = check_int("render_fps", render_fps, 1)
            self.metadata = {**type(self).metadata, "render_fps": render_fps}  # this instance only
        self._window_size = check_window_size(window_size)
        self._renderer = None
        self._raster = None

        self.action_space = spaces.Discrete(NUM_ACTIONS)
        m = self.model
        if obs_mode in ("symbolic", "perceived"):
            self.observation_space = spaces.Discrete(m.n_states)
        elif obs_mode == "pixels":
            self.observation_space = spaces.Box(0, 255, self._get_raster().shape, dtype=np.uint8)
        else:
            img = spaces.Box(0, 255, (DIGIT_PX, DIGIT_PX), dtype=np.uint8)
            self.observation_space = spaces.Dict({"state": spaces.Discrete(m.n_base), "card": img, "sign": img})
        self._base = -1  # no episode yet
        self._done = False  # the episode terminated: step() needs a reset() first
        self._root, self._root_rng = None, None  # episode keys: root drawn from np_random (core.episode_keys)
        self._episode = 0
        self._block: list[tuple[tuple[int, ...], int, int, int]] = []  # the next episodes' starts (_next_start)
        self._block_first = 0
        self._image_bitgen = np.random.PCG64(0)  # re-seeded per episode by core.episode_rngs

    def _get_raster(self):
        if self._raster is None:
            from perceptgym.envs.grid_driving.raster import PixelRaster

            self._raster = PixelRaster(self.model)
        return self._raster

    # ---- episode -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Starts an episode; see the class docstring for ``options``.

        Seeding: ``reset(seed=s)`` draws one 64-bit root from the new ``np_random``, and episode j after it
        is fixed by key j of the splitmix64 sequence from that root (:mod:`~perceptgym.envs.grid_driving.core`);
        sub-env i of :class:`~perceptgym.envs.grid_driving.vector.GridDrivingVectorEnv` reset with seed s
        replays exactly this env reset with seed s + i.
        """
        options = check_reset_options(options)
        super().reset(seed=check_seed(seed))
        if self._root_rng is not self.np_random:  # newly seeded (or np_random replaced): a new key stream
            self._root, self._root_rng, self._episode = draw_root(self.np_random), self.np_random, 0
            self._block, self._block_first = [], 0
        numbers, card, base, image_seed = self._next_start()
        if options:
            card, base = apply_reset_options(self.model, options, numbers, card, base)
        self._start(make_trip(card, numbers), base, image_seed)
        if self.obs_mode != "symbolic":
            self._draw_images()
        if self.obs_mode == "perceived":
            self._reads = self._reading.read(self._images)  # one batch: the card, then the signs
            self._obs_card = int(self._reads[0][0])
            self._obs_signs = (*self._reads[0][1:].tolist(), NO_SIGN)
        info = self._info(base)
        info["stop_numbers"] = numbers
        if self._reads is not None:  # everything the reader read this episode, signs in map order
            info["signs_read"] = tuple(self._reads[0][1:].tolist())
            info["signs_confidence"] = tuple(self._reads[1][1:].tolist())
        if self.render_mode == "human":
            self.render()
        return self._observe(), info

    def _next_start(self) -> tuple[tuple[int, ...], int, int, int]:
        """(numbers, card, base, image seed) of the next episode; computed STARTS_BLOCK episodes at a time."""
        j = self._episode - self._block_first
        if not 0 <= j < len(self._block):
            keys = episode_keys(np.full(STARTS_BLOCK, self._root), np.arange(STARTS_BLOCK) + self._episode)
            s = self.model.episode_starts(keys)
            numbers = map(tuple, s.numbers.tolist())
            self._block = list(zip(numbers, s.card.tolist(), s.base.tolist(), s.image_seed.tolist(), strict=True))
            self._block_first, j = self._episode, 0
        self._episode += 1
        return self._block[j]

    def _start(self, trip: Trip, base: int, image_seed: int) -> None:
        """Sets up an episode (also used by the vector env to show one of its sub-envs)."""
        self._trip = trip
        self._row = row_of(self.model.tables_list, base, trip_target(trip, len(trip.numbers)))
        self._signs = (*trip.numbers, NO_SIGN)  # indexed by Tables.stop_slot
        self._base, self._steps, self._return, self._done = base, 0, 0.0, False
        self._last: tuple[int, dict[str, float], str] | None = None
        self._image_seed, self._images = image_seed, None
        self._reads: tuple[np.ndarray, np.ndarray] | None = None
        self._obs_card, self._obs_signs = trip.card, self._signs  # what the observation shows (perceived: reads)
        self._bg = None

    def _draw_images(self) -> None:
        """This episode's handwriting: the card, then each stop's sign (from the seed drawn at reset)."""
        if self._images is None:
            labels = np.array([[self._trip.card, *self._trip.numbers]], dtype=np.int64)
            rngs = episode_rngs(np.array([self._image_seed], dtype=np.uint64), [self._image_bitgen])
            self._images = draw_digits(self._source, labels, rngs)[0]

    def step(self, action):
        if self._base < 0:
            raise ResetNeeded("call reset() before step()")
        if self._done:
            raise ResetNeeded("the episode has terminated; call reset() before step()")
        if not (isinstance(action, int | np.integer) and 0 <= action < NUM_ACTIONS):
            a = np.asarray(action)
            if a.shape != () or a.dtype.kind not in "iu" or not 0 <= a < NUM_ACTIONS:
                raise ValueError(
                    f"invalid action {action!r}: expected an integer in 0..{NUM_ACTIONS - 1} "
                    f"({', '.join(f'{x.value}={x.name}' for x in Action)})"
                )
        action = int(action)
        t = self.model.tables_list
        self._row, base, o = advance(t, self._row, action)
        reward, terminated = t.reward[o], t.terminated[o]
        self._base = base
        self._steps += 1
        self._return += reward
        info = self._info(base)
        info["reward_terms"] = dict(zip(REWARD_TERMS, t.terms[o], strict=True))
        event = EVENTS[t.event[o]]
        if terminated:
            self._done = True
            info["event"] = event
            info["is_success"] = event == "arrived"
        self._last = (action, info["reward_terms"], event)
        if self.render_mode == "human":
            self.render()
        return self._observe(), reward, terminated, False, info

    def _info(self, base: int) -> dict[str, Any]:
        info: dict[str, Any] = {"action_mask": self.model.tables_list.masks[base].copy(), "card": self._trip.card}
        if self._reads is not None:
            info["card_read"] = self._obs_card
            info["card_confidence"] = float(self._reads[1][0])
            if self.params.shuffle_stops:
                slot = self.model.tables_list.stop_slot[base]
                info["sign"] = self._signs[slot]
                info["sign_read"] = self._obs_signs[slot]
                # Off a stop there is no sign to read: NO_SIGN is known, not read, hence confidence 1.
                k = len(self._trip.numbers)
                info["sign_confidence"] = 1.0 if slot >= k else float(self._reads[1][slot + 1])
        return info

    def _observe(self):
        m, base = self.model, self._base
        if self.obs_mode in ("symbolic", "perceived"):
            if m.n_sign == 1:
                return base * NUM_DIGITS + self._obs_card
            return m.index(base, self._obs_card, self._obs_signs[m.tables_list.stop_slot[base]])
        if self.obs_mode == "pixels":
            if self._bg is None:
                self._bg = self._get_raster().background(self._images[0], self._images[1:])
            return self._raster.frame(self._bg, base)
        k = m.tables_list.stop_slot[base]
        sign = self._images[k + 1] if k < len(self._trip.numbers) else np.zeros((DIGIT_PX, DIGIT_PX), dtype=np.uint8)
        return {"state": base, "card": self._images[0].copy(), "sign": sign.copy()}

    # ---- exact model ---------------------------------------------------------------------------------
    def encode(self, state: DrivingState) -> int:
        """Symbolic state index of a :class:`DrivingState`."""
        return self.model.encode(state)

    def decode(self, s: int) -> DrivingState:
        """The :class:`DrivingState` of a symbolic state index."""
        return self.model.decode(s)

    @cached_property
    def _tabular(self) -> TabularModel:
        return tabular_model(self.model)

    def tabular_model(self) -> TabularModel:
        """The exact model of the symbolic mode as (S, A) tables plus the start distribution."""
        return self._tabular

    @cached_property
    def P(self) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        """``P[s][a] = [(prob, next_state, reward, terminated)]`` like Taxi's (fixed stop numbers only).

        With ``shuffle_stops`` there is no exact model: ``P`` then raises AttributeError, so that
        ``hasattr(env.unwrapped, "P")`` tells agents whether they can plan.
        """
        if self.params.shuffle_stops:
            raise AttributeError("no exact model P with shuffle_stops=True (numbers not in the state)")
        return self._tabular.transitions()

    def value_iteration(self, gamma: float = 1.0, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Optimal (V, Q) of the symbolic mode; see :func:`perceptgym.envs.grid_driving.planning.value_iteration`."""
        return value_iteration(self._tabular, gamma=gamma, horizon=horizon)

    def optimal_return(self, gamma: float = 1.0, horizon: int | None = None) -> float:
        """Optimal expected return from the start distribution.

        ``horizon`` defaults to the registered ``max_episode_steps`` (the return reachable under the
        TimeLimit), or an unbounded horizon when the env was built without a spec.
        """
        if horizon is None and self.spec is not None:
            horizon = self.spec.max_episode_steps
        return optimal_return(self._tabular, gamma=gamma, horizon=horizon)

    # ---- rendering -----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A read-only description of the current scene, all the renderer needs."""
        if self._base < 0:
            raise gym.error.ResetNeeded("call reset() before render()")
        self._draw_images()
        m = self.model
        cell, heading, phase = m.base_parts(self._base)
        reads = self._reads
        return {
            "episode": (self._image_seed, self._trip),
            "ego": (*m.cells[cell], heading),
            "phase": phase,
            "cars": m.car_cells[phase].tolist(),
            "card": self._trip.card,
            "numbers": self._trip.numbers,
            "images": self._images,
            "card_read": None if reads is None else (int(reads[0][0]), float(reads[1][0])),
            "sign_reads": None
            if reads is None
            else list(zip(reads[0][1:].tolist(), reads[1][1:].tolist(), strict=True)),
            "steps": self._steps,
            "return": self._return,
            "last": self._last,
            "obs_mode": self.obs_mode,
        }

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to the constructor")
            return None
        if self.render_mode == "ansi":
            return self._render_ansi()
        if self._renderer is None:
            from perceptgym.envs.grid_driving.render import GridRenderer

            self._renderer = GridRenderer(
                self.model, self._window_size, window=self.render_mode == "human", fps=self.metadata["render_fps"]
            )
        frame = self._renderer.render(self.snapshot())
        return frame if self.render_mode == "rgb_array" else None

    def _render_ansi(self) -> str:
        m = self.model
        cell, heading, phase = m.base_parts(self._base)
        grid = [list(row) for row in self.params.gmap.rows]
        for (r, c, _), n in zip(self.params.gmap.stops, self._trip.numbers, strict=True):
            grid[r][c] = str(n)
        for other in m.car_cells[phase]:
            r, c = m.cells[other]
            grid[r][c] = "C"
        r, c = m.cells[cell]
        grid[r][c] = "^>v<"[heading]
        lights = " ".join(
            f"{rc}:{'NS' if ax == 0 else 'EW'}"
            for rc, ax in zip(self.params.gmap.intersections, m.light_axis[:, phase], strict=True)
        )
        lines = ["".join(row) for row in grid]
        lines.append(
            f"card {self._trip.card}  heading {HEADING_NAMES[heading]}  step {self._steps}  return {self._return:+.2f}"
        )
        if self.params.green_steps:
            lines.append(f"green: {lights}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_renderer"] = None  # a pygame window cannot be pickled; it is re-created on demand
        state.pop("P", None)  # cached, rebuilt on demand
        state.pop("_tabular", None)
        return state  # the digit source and the reader pickle by name (LazySource, LazyReader)


# ---- shared with the vector env ------------------------------------------------------------------------
def check_reset_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``reset(options=...)`` checked: a dict (or None) whose keys are in :data:`RESET_OPTIONS`."""
    return check_options(options, RESET_OPTIONS)


def apply_reset_options(
    m: DrivingModel, options: dict[str, Any], numbers: tuple[int, ...], card: int, base: int
) -> tuple[int, int]:
    """The (card, start base) of an episode after ``reset(options=...)`` fixed some of them."""
    if "card" in options:
        card = options["card"]
        if not is_int(card) or card not in numbers:
            raise ValueError(f"options['card']={card!r} is not a stop number this episode; stops: {numbers}")
        card = int(card)
    if "start" not in options and "phase" not in options:
        return card, base
    cell, heading, phase = m.base_parts(base)
    if "start" in options:
        start = options["start"]
        ok = isinstance(start, Sequence) and len(start) == 3 and all(is_int(v) for v in start)
        if not ok or not (0 <= start[2] < NUM_HEADINGS):
            raise ValueError(f"options['start'] must be (row, col, heading 0-3), got {start!r}")
        r, c, heading = (int(v) for v in start)
        h, w = m.params.gmap.shape
        if not (0 <= r < h and 0 <= c < w) or m.cell_index[r, c] < 0:
            raise ValueError(f"options['start']: ({r}, {c}) is not a road cell of map {m.params.gmap.name!r}")
        cell = int(m.cell_index[r, c])
    if "phase" in options:
        phase = options["phase"]
        if not is_int(phase) or not 0 <= phase < m.period:
            raise ValueError(f"options['phase'] must be an integer in 0..{m.period - 1}, got {phase!r}")
    if cell in m.car_cells[int(phase)]:
        raise ValueError(f"options: a car occupies {m.cells[cell]} at phase {phase}; choose another start")
    return card, (cell * NUM_HEADINGS + heading) * m.period + int(phase)


def draw_digits(source: LazySource, labels: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """The handwriting of M episodes: ``labels`` is ``(M, L)``, row i drawn with ``rngs[i]``; checked uint8.

    A source may draw all rows at once by implementing ``draw_many(labels, rngs)`` (row i equal to
    ``source(labels[i], rngs[i])``, as :class:`perceptgym.supervised.perception.MnistSource` does);
    otherwise it is called once per episode, each with that episode's own Generator, so that what one
    episode shows never depends on which other episodes are drawn with it.
    """
    many = getattr(source.source, "draw_many", None)
    if many is None:
        return np.stack([source(row, rng) for row, rng in zip(labels, rngs, strict=True)])
    images = np.asarray(many(labels, rngs))
    if images.shape != (*labels.shape, DIGIT_PX, DIGIT_PX) or images.dtype != np.uint8:
        raise PerceptionError(
            f"{source.name} returned {images.dtype} {images.shape[1:]} per episode from draw_many; "
            f"expected uint8 {(labels.shape[1], DIGIT_PX, DIGIT_PX)}"
        )
    return images

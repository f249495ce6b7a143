"""The GridDriving world model: parameters, state encoding and dynamics. No gym, no pygame.

The world is a deterministic function of one global clock: the other cars drive round fixed rectangular
loops at one cell per step and the traffic lights follow fixed schedules, all with period ``T``. So the
phase ``t mod T`` fully describes the traffic, and the whole dynamics compiles into lookup tables over
*base states* ``(road cell, heading, phase)`` x actions. The trip card (and, with shuffled stops, the number
on the sign under the car) complete the Markov state.

State index (mixed radix, most significant first)::

    s = (((cell * 4 + heading) * T + phase) * 10 + card) * n_sign + sign

with ``n_sign = 1`` (sign always ``NO_SIGN``) for maps with fixed stop numbers, and ``n_sign = 11`` (the
stop number under the car, or ``NO_SIGN``) when stops are shuffled per episode.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from perceptgym.envs.grid_driving.constants import (
    DIR_VECTORS,
    NO_SIGN,
    NUM_DIGITS,
    NUM_HEADINGS,
    REWARD_TERMS,
)
from perceptgym.envs.grid_driving.maps import GridMap, rectangle_loops, road_distances


class Action(IntEnum):
    """The ego car's actions. Turning happens in place (one step); STOP ends the trip at a stop."""

    FORWARD = 0
    LEFT = 1
    RIGHT = 2
    WAIT = 3
    STOP = 4


NUM_ACTIONS = len(Action)


@dataclass(frozen=True)
class Params:
    """Everything that defines the dynamics and the reward (validated by the env)."""

    gmap: GridMap
    n_cars: int = 2  # other cars
    green_steps: int = 3  # [steps] each axis is green this long; 0 = no traffic lights
    max_period: int = 60  # [steps] the traffic's period T may not exceed this (keeps the state space small)
    route_seed: int = 0  # chooses the other cars' loops and their offsets
    shuffle_stops: bool = False  # new stop numbers every episode
    time_cost: float = 0.01  # [reward/step]
    progress: float = 0.0  # [reward/cell]
    arrival: float = 1.0  # [reward]
    wrong_stop: float = -1.0  # [reward]
    collision: float = -1.0  # [reward]
    red_light: float = -0.2  # [reward]


class DrivingState(NamedTuple):
    """A decoded state. ``sign`` is ``NO_SIGN`` unless stops are shuffled and the car is on a stop."""

    row: int
    col: int
    heading: int
    phase: int
    card: int
    sign: int


class Trip(NamedTuple):
    """What one episode adds to the map: the card and the numbers on the stops (map order)."""

    card: int
    numbers: tuple[int, ...]
    target: int  # index of the stop showing ``card``, or -1 if none does


def make_trip(card: int, numbers: tuple[int, ...]) -> Trip:
    return Trip(card, numbers, numbers.index(card) if card in numbers else -1)


@dataclass
class DrivingModel:
    """The compiled world: traffic schedule, lights and transition tables for one ``Params``."""

    params: Params
    cells: list[tuple[int, int]] = field(init=False)
    period: int = field(init=False)  # T
    car_cells: np.ndarray = field(init=False)  # (T, n_cars) cell index of each other car at each phase
    light_axis: np.ndarray = field(init=False)  # (n_intersections, T) the axis with green
    n_sign: int = field(init=False)

    def __post_init__(self) -> None:
        p, gmap = self.params, self.params.gmap
        self.cells = gmap.road_cells
        h, w = gmap.shape
        self.cell_index = np.full((h, w), -1, dtype=np.int64)
        for i, rc in enumerate(self.cells):
            self.cell_index[rc] = i
        n = len(self.cells)
        self.neighbour = np.full((n, NUM_HEADINGS), -1, dtype=np.int64)
        for i, (r, c) in enumerate(self.cells):
            for k, (dr, dc) in enumerate(DIR_VECTORS):
                self.neighbour[i, k] = self.cell_index[r + dr, c + dc]
        self.stop_cells = [int(self.cell_index[r, c]) for r, c, _ in gmap.stops]
        self.stop_of_cell = np.full(n, -1, dtype=np.int64)
        self.stop_of_cell[self.stop_cells] = np.arange(len(self.stop_cells))
        self.inter_cells = [int(self.cell_index[rc]) for rc in gmap.intersections]
        self.inter_of_cell = np.full(n, -1, dtype=np.int64)
        self.inter_of_cell[self.inter_cells] = np.arange(len(self.inter_cells))
        # dist_to_stop[k, cell]: road distance [cells] from a cell to stop k (for the progress term).
        self.dist_to_stop = np.array(
            [road_distances(gmap.road, (r, c))[tuple(np.array(self.cells).T)] for r, c, _ in gmap.stops]
        )
        self.n_sign = NUM_DIGITS + 1 if p.shuffle_stops else 1
        self._place_cars()
        self._schedule_lights()
        self._build_tables()

    # ---- traffic -------------------------------------------------------------------------------------
    def _place_cars(self) -> None:
        """Puts ``n_cars`` cars on rectangular loops at offsets where they never meet (nor swap places)."""
        p = self.params
        light_period = 2 * p.green_steps if p.green_steps else 1
        rng = np.random.default_rng(p.route_seed)
        loops = rectangle_loops(p.gmap)
        # Shortest loops first (they keep T small), random order among equals.
        order = sorted(range(len(loops)), key=lambda i: (len(loops[i]), rng.random()))
        period, trajs = light_period, []
        for i in order * 2:  # each loop may carry two cars
            if len(trajs) == p.n_cars:
                break
            loop = [int(self.cell_index[rc]) for rc in loops[i]]
            new_period = math.lcm(period, len(loop))
            if new_period > p.max_period:
                continue
            old = [np.resize(t, new_period) for t in trajs]  # trajectories are periodic: tile them
            for off in rng.permutation(len(loop)):
                traj = np.array([loop[(off + t) % len(loop)] for t in range(new_period)])
                nxt = np.roll(traj, -1)
                if all(not (traj == o).any() and not ((traj == np.roll(o, -1)) & (nxt == o)).any() for o in old):
                    period, trajs = new_period, [*old, traj]
                    break
        if len(trajs) < p.n_cars:
            raise ValueError(
                f"map {p.gmap.name!r} fits only {len(trajs)} other cars (asked {p.n_cars}) with a traffic "
                f"period <= max_period={p.max_period}; lower n_cars or raise max_period"
            )
        self.period = period
        self.car_cells = np.stack(trajs, axis=1) if trajs else np.zeros((period, 0), dtype=np.int64)

    def _schedule_lights(self) -> None:
        """Green alternates every ``green_steps`` with a per-intersection offset fitted to the traffic.

        The other cars never stop, so each light's offset is the one under which the fewest of them enter on
        red, and any remaining such step is switched to their axis (the lights give way to the traffic).
        """
        p, T = self.params, self.period
        n_inter = len(self.inter_cells)
        if not p.green_steps:
            self.light_axis = np.zeros((n_inter, T), dtype=np.int64)
            return
        need = np.full((n_inter, T), -1, dtype=np.int64)  # axis a car needs when entering at phase t
        cells = np.array(self.cells)
        for k in range(self.car_cells.shape[1]):
            traj = self.car_cells[:, k]
            for t in range(T):
                a, b = traj[t], traj[(t + 1) % T]
                j = self.inter_of_cell[b]
                if j >= 0 and a != b:
                    need[j, t] = 0 if cells[a][1] == cells[b][1] else 1  # same column: north-south
        phases = np.arange(T)
        self.light_axis = np.zeros((n_inter, T), dtype=np.int64)
        for j in range(n_inter):
            best = min(
                range(2 * p.green_steps),
                key=lambda off: int(((need[j] >= 0) & (need[j] != ((phases + off) // p.green_steps) % 2)).sum()),
            )
            axis = ((phases + best) // p.green_steps) % 2
            self.light_axis[j] = np.where(need[j] >= 0, need[j], axis)

    # ---- tables --------------------------------------------------------------------------------------
    def _build_tables(self) -> None:
        T, n = self.period, len(self.cells)
        cell = np.arange(n)[:, None, None]
        head = np.arange(NUM_HEADINGS)[None, :, None]
        phase = np.arange(T)[None, None, :]
        shape = (n, NUM_HEADINGS, T)
        nxt_phase = (phase + 1) % T
        n_actions = len(Action)
        self.n_base = n * NUM_HEADINGS * T
        self.next_base = np.zeros((self.n_base, n_actions), dtype=np.int64)
        self.collides = np.zeros((self.n_base, n_actions), dtype=bool)
        self.runs_red = np.zeros((self.n_base, n_actions), dtype=bool)
        self.next_cell = np.zeros((self.n_base, n_actions), dtype=np.int64)
        occupied = np.zeros((T, n), dtype=bool)
        for k in range(self.car_cells.shape[1]):
            occupied[np.arange(T), self.car_cells[:, k]] = True
        for a in Action:
            ahead = self.neighbour[cell, head]
            if a == Action.FORWARD:
                dest = np.broadcast_to(np.where(ahead >= 0, ahead, cell), shape)
            else:
                dest = np.broadcast_to(cell, shape)
            new_head = {Action.LEFT: (head + 3) % 4, Action.RIGHT: (head + 1) % 4}.get(a, head)
            new_head = np.broadcast_to(new_head, shape)
            moved = dest != cell
            hit = occupied[np.broadcast_to(nxt_phase, shape), dest]
            for k in range(self.car_cells.shape[1]):
                now, then = self.car_cells[:, k][phase], self.car_cells[:, k][nxt_phase]
                hit = hit | (moved & (now == dest) & (then == cell))  # head-on swap
            red = np.zeros(shape, dtype=bool)
            if self.params.green_steps and self.inter_cells:
                j = self.inter_of_cell[dest]
                green = self.light_axis[np.maximum(j, 0), np.broadcast_to(phase, shape)]
                red = moved & (j >= 0) & (green != head % 2)  # heading % 2 is its axis (N/S 0, E/W 1)
            self.next_base[:, a] = ((dest * NUM_HEADINGS + new_head) * T + np.broadcast_to(nxt_phase, shape)).ravel()
            self.collides[:, a] = hit.ravel()
            self.runs_red[:, a] = red.ravel()
            self.next_cell[:, a] = dest.ravel()
        # Action masks per (cell, heading): FORWARD needs road ahead, STOP needs a stop.
        self.masks = np.ones((n, NUM_HEADINGS, n_actions), dtype=np.int8)
        self.masks[:, :, Action.FORWARD] = self.neighbour >= 0
        self.masks[:, :, Action.STOP] = (self.stop_of_cell >= 0)[:, None]
        self.masks.setflags(write=False)
        # Starts: any cell free of other cars at that phase, facing along the road.
        ok = ~occupied.T[:, None, :] & (self.neighbour >= 0)[:, :, None]
        self.start_bases = np.flatnonzero(ok.ravel())
        self._build_outcomes()
        for a in vars(self).values():  # one model is shared by every env with these Params (compile_model)
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
        self.tables = Tables.of(self)
        # The same tables as Python lists for one env: list indexing beats numpy scalar indexing ~5x.
        self.tables_list = self.tables.as_lists()
        self._stop_l = self.stop_of_cell.tolist()
        self._stop_numbers = np.array(self.params.gmap.stop_numbers, dtype=np.int64)
        self._stop_numbers.setflags(write=False)

    def _build_outcomes(self) -> None:
        """Compiles what a step does into ``outcome[target, base, action]``, an index into ``outcome_*``.

        Given the base state, the action and which stop is the trip's target (``n_stops``: none), a step is
        deterministic, and its reward terms take one of few values: the ending (none, arrived, wrong stop),
        the road distance gained towards the target (-1, 0, +1 cells), a collision, a red light. So every
        step is two table lookups (:func:`advance`), for one env and for a batch alike.
        """
        p, n_stops = self.params, len(self.stop_cells)
        n_ba = self.n_base * NUM_ACTIONS
        cell = np.repeat(np.arange(self.n_base) // (NUM_HEADINGS * self.period), NUM_ACTIONS)  # (n_ba,)
        action = np.tile(np.arange(NUM_ACTIONS), self.n_base)
        end_stop = np.where(action == Action.STOP, self.stop_of_cell[cell], -1)  # STOP on a stop ends the trip
        target = np.arange(n_stops + 1)[:, None]
        ending = np.where(end_stop < 0, 0, np.where(end_stop == target, 1, 2))  # (n_stops + 1, n_ba)
        gained = np.ones_like(ending)  # cells gained towards the target, + 1
        if p.progress:
            dist = np.vstack([self.dist_to_stop, np.zeros((1, len(self.cells)), dtype=np.int64)])
            gained = dist[:, cell] - dist[:, self.next_cell.ravel()] + 1
            gained[ending > 0] = 1
        moving = ending == 0
        hit = self.collides.ravel() & moving
        red = self.runs_red.ravel() & moving
        self.outcome = (((ending * 3 + gained) * 2 + hit) * 2 + red).ravel().astype(np.intp)
        assert self.outcome.shape == ((n_stops + 1) * n_ba,)
        terms, events = [], []
        for o in range(N_OUTCOMES):
            rest, red_o = divmod(o, 2)
            rest, hit_o = divmod(rest, 2)
            ending_o, gained_o = divmod(rest, 3)
            if ending_o:  # the trip ends here, right or wrong
                arrived = ending_o == 1
                arrival, wrong = (p.arrival, 0.0) if arrived else (0.0, p.wrong_stop)
                terms.append((-p.time_cost, 0.0, arrival, wrong, 0.0, 0.0))
                events.append(EVENTS.index("arrived" if arrived else "wrong_stop"))
            else:
                terms.append(
                    (
                        -p.time_cost,
                        p.progress * (gained_o - 1) if p.progress else 0.0,
                        0.0,
                        0.0,
                        p.collision if hit_o else 0.0,
                        p.red_light if red_o else 0.0,
                    )
                )
                events.append(EVENTS.index("collision" if hit_o else ""))
        self.outcome_terms = np.array(terms, dtype=np.float64)
        self.outcome_reward = np.array([sum(t) for t in terms], dtype=np.float64)  # summed as the terms' order
        self.outcome_event = np.array(events, dtype=np.intp)
        self.outcome_terminated = self.outcome_event > 0
        # Per base state: the action mask and the stop under the car (n_stops: none).
        ch = np.arange(self.n_base) // self.period
        self.base_masks = self.masks[ch // NUM_HEADINGS, ch % NUM_HEADINGS]
        # The same masks padded to 8 bytes and read as one int64 per base: a batch gathers them ~4x faster.
        packed = np.zeros((self.n_base, 8), dtype=np.int8)
        packed[:, :NUM_ACTIONS] = self.base_masks
        self.base_masks_packed = packed.view(np.int64).ravel()
        stop = self.stop_of_cell[ch // NUM_HEADINGS]
        self.stop_slot = np.where(stop < 0, n_stops, stop)

    # ---- encoding ------------------------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        return self.n_base * NUM_DIGITS * self.n_sign

    def base_parts(self, base: int) -> tuple[int, int, int]:
        """(cell index, heading, phase) of a base state."""
        ch, phase = divmod(base, self.period)
        cell, heading = divmod(ch, NUM_HEADINGS)
        return cell, heading, phase

    def encode(self, state: DrivingState) -> int:
        """State index of a decoded state (inverse of ``decode``)."""
        cell = int(self.cell_index[state.row, state.col]) if 0 <= state.row < self.cell_index.shape[0] else -1
        if cell < 0 or not 0 <= state.col < self.cell_index.shape[1]:
            raise ValueError(f"({state.row}, {state.col}) is not a road cell of map {self.params.gmap.name!r}")
        for name, value, radix in (
            ("heading", state.heading, NUM_HEADINGS),
            ("phase", state.phase, self.period),
            ("card", state.card, NUM_DIGITS),
            ("sign", state.sign, NUM_DIGITS + 1),
        ):
            if not 0 <= value < radix:
                raise ValueError(f"{name}={value} out of range 0..{radix - 1}")
        if self.n_sign == 1 and state.sign != NO_SIGN:
            raise ValueError(f"sign must be NO_SIGN={NO_SIGN} when stops are not shuffled, got {state.sign}")
        base = (cell * NUM_HEADINGS + state.heading) * self.period + state.phase
        return self.index(base, state.card, 0 if self.n_sign == 1 else state.sign)

    def index(self, base: int, card: int, sign_digit: int) -> int:
        """State index from a base state, a card and a sign component (0 when stops are fixed)."""
        return (base * NUM_DIGITS + card) * self.n_sign + sign_digit

    def decode(self, s: int) -> DrivingState:
        if not 0 <= s < self.n_states:
            raise ValueError(f"state {s} out of range 0..{self.n_states - 1}")
        rest, sign = divmod(int(s), self.n_sign)
        base, card = divmod(rest, NUM_DIGITS)
        cell, heading, phase = self.base_parts(base)
        r, c = self.cells[cell]
        return DrivingState(r, c, heading, phase, card, NO_SIGN if self.n_sign == 1 else sign)

    def sign_component(self, base: int, numbers: tuple[int, ...]) -> int:
        """The ``sign`` part of the state: 0 with fixed stops, else the number under the car or NO_SIGN."""
        if self.n_sign == 1:
            return 0
        k = self._stop_l[base // (NUM_HEADINGS * self.period)]
        return NO_SIGN if k < 0 else numbers[k]

    # ---- dynamics ------------------------------------------------------------------------------------
    def transition(self, base: int, action: int, trip: Trip) -> tuple[int, tuple[float, ...], bool, str]:
        """One step from base state ``base``: (next base, reward terms, terminated, event).

        ``event`` is "", "arrived", "wrong_stop" or "collision". Reward terms are in REWARD_TERMS order.
        """
        t = self.tables_list
        _, nxt, o = advance(t, row_of(t, base, trip_target(trip, len(self.stop_cells))), action)
        return nxt, t.terms[o], t.terminated[o], EVENTS[t.event[o]]

    def episode_starts(self, keys: npt.NDArray[np.uint64], image_seeds: bool = True) -> EpisodeStarts:
        """The starts of the episodes with these keys (:func:`episode_keys`): a batch of ``len(keys)``.

        Each key alone fixes its episode: the stop numbers (shuffled or the map's), the card among them,
        the start (uniform over :attr:`start_bases`) and the seed of the episode's handwriting. Draws
        are hashes of the key reduced modulo the range (a bias below 1e-15, far under sampling noise).
        Each draw hashes the key on its own, so ``image_seeds=False`` (``image_seed`` None) skips one
        hash and changes no other draw.
        """
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        n_stops = len(self.stop_cells)
        # Draw j hashes key + j * golden: 1 target, 2 start, 3 image seed, 4.. the permutation.
        draws = [1, 2, *([3] if image_seeds else []), *(range(4, 4 + NUM_DIGITS) if self.params.shuffle_stops else [])]
        h = mix64(keys[:, None] + _GOLDEN * np.array(draws, dtype=np.uint64))
        target = (h[:, 0] % np.uint64(n_stops)).astype(np.int64)
        if self.params.shuffle_stops:
            numbers = np.argsort(h[:, -NUM_DIGITS:], axis=1, kind="stable")[:, :n_stops]  # a uniform permutation
            card = np.take_along_axis(numbers, target[:, None], axis=1)[:, 0]
        else:  # the map's numbers: one read-only row, broadcast (no copy)
            fixed = self._stop_numbers
            numbers, card = np.broadcast_to(fixed, (len(keys), n_stops)), fixed.take(target)
        base = self.start_bases.take((h[:, 1] % np.uint64(len(self.start_bases))).astype(np.int64))
        return EpisodeStarts(numbers, card, base, target, h[:, 2] if image_seeds else None)

    def car_positions(self, phase: int) -> list[tuple[int, int, int]]:
        """(row, col, heading) of every other car at ``phase`` (heading = where it drives next)."""
        out = []
        for k in range(self.car_cells.shape[1]):
            a = self.car_cells[phase, k]
            b = self.car_cells[(phase + 1) % self.period, k]
            (r, c), (r2, c2) = self.cells[a], self.cells[b]
            out.append((r, c, DIR_VECTORS.index((r2 - r, c2 - c))))
        return out


assert len(REWARD_TERMS) == 6  # _build_outcomes() builds its terms tuples in this order

#: What ended a step (``DrivingModel.outcome_event`` indexes this); "" for none.
EVENTS = ("", "arrived", "wrong_stop", "collision")
N_OUTCOMES = 3 * 3 * 2 * 2  # ending x cells gained x collision x red light (see DrivingModel._build_outcomes)


_BASE_BITS, _OUTCOME_BITS = 24, 8  # Tables.step packs (next row, next base, outcome) into one int64


class Tables(NamedTuple):
    """The compiled dynamics as flat lookups: numpy arrays (for batches) or Python lists (for one env).

    A *row* is where a step's lookups start: ``target * n_ba + base * NUM_ACTIONS`` (see :func:`row_of`);
    the target stop does not change within an episode, so the next row keeps it. ``step[row + action]``
    packs the next base state, the next row and the outcome into one int64: a batch gathers one table
    (the one random memory access per sub-env and step) instead of three.
    """

    step: Any  # [row + action] -> next row << 32 | next base << 8 | outcome
    terms: Any  # [outcome] -> reward terms (REWARD_TERMS order)
    reward: Any  # [outcome] -> their sum
    terminated: Any  # [outcome] -> whether the episode ends
    event: Any  # [outcome] -> index into EVENTS
    masks: Any  # [base] -> action mask (int8, NUM_ACTIONS)
    stop_slot: Any  # [base] -> index of the stop under the car, n_stops if none
    n_ba: int  # n_base * NUM_ACTIONS

    @classmethod
    def of(cls, m: DrivingModel) -> Tables:
        n_ba = m.n_base * NUM_ACTIONS
        targets = np.arange(len(m.stop_cells) + 1, dtype=np.int64)[:, None]
        next_base = m.next_base.ravel()[None, :]
        next_row = targets * n_ba + next_base * NUM_ACTIONS
        if m.n_base >= 2**_BASE_BITS or next_row.max() >= 2**31:  # pragma: no cover - no map is this big
            raise ValueError(f"map {m.params.gmap.name!r} is too large for the step table ({m.n_base} base states)")
        outcome = m.outcome.reshape(next_row.shape)
        step = (next_row << (_BASE_BITS + _OUTCOME_BITS)) | (next_base << _OUTCOME_BITS) | outcome
        return cls(
            step.ravel(),
            m.outcome_terms,
            m.outcome_reward,
            m.outcome_terminated,
            m.outcome_event,
            m.base_masks,
            m.stop_slot,
            n_ba,
        )

    def as_lists(self) -> Tables:
        """The same tables with Python lists; the masks stay read-only arrays (copied into ``info``)."""
        return Tables(
            self.step.tolist(),
            [tuple(t) for t in self.terms.tolist()],
            self.reward.tolist(),
            self.terminated.tolist(),
            self.event.tolist(),
            list(self.masks),
            self.stop_slot.tolist(),
            self.n_ba,
        )


def advance(tables: Tables, row: Any, action: Any) -> tuple[Any, Any, Any]:
    """The dynamics: ``(next row, next base state, outcome)`` of ``action`` from ``row`` (see :func:`row_of`).

    Written once for both envs: ints with list tables (:class:`GridDrivingEnv`), or int arrays of one
    batch with array tables (:class:`GridDrivingVectorEnv`); the outcome indexes ``tables.terms``,
    ``reward``, ``terminated`` and ``event``.
    """
    v = tables.step[row + action]
    return v >> (_BASE_BITS + _OUTCOME_BITS), (v >> _OUTCOME_BITS) & (2**_BASE_BITS - 1), v & (2**_OUTCOME_BITS - 1)


def row_of(tables: Tables, base: Any, target: Any) -> Any:
    """The row of base state ``base`` on a trip to stop ``target`` (``n_stops``: none); ints or arrays."""
    return target * tables.n_ba + base * NUM_ACTIONS


def trip_target(trip: Trip, n_stops: int) -> int:
    """The outcome-table row of a trip: its target stop, or ``n_stops`` when no stop shows the card."""
    return trip.target if trip.target >= 0 else n_stops


class EpisodeStarts(NamedTuple):
    """A batch of episode starts (see :meth:`DrivingModel.episode_starts`)."""

    numbers: np.ndarray  # (M, n_stops) the stop numbers, map order (read-only when the map's: a broadcast row)
    card: np.ndarray  # (M,)
    base: np.ndarray  # (M,) start base state
    target: np.ndarray  # (M,) index of the stop showing the card
    image_seed: np.ndarray | None  # (M,) uint64, seeds the episode's handwriting (episode_rngs); None: not drawn


# ---- episode randomness --------------------------------------------------------------------------------
# Each env draws one 64-bit root from its Generator when it is seeded; its j-th episode is then fixed by
# key j of the splitmix64 sequence from that root (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
# number generators"). A batch of N envs thus computes the keys of all its new episodes with a few numpy
# operations, and sub-env i of a vector env draws exactly what one env seeded alike draws.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's output function, elementwise on a uint64 array (wraps modulo 2**64)."""
    z = np.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def draw_root(rng: np.random.Generator) -> np.uint64:
    """The root of an env's episode keys: one draw from its Generator."""
    return rng.integers(0, 2**64, dtype=np.uint64)


def episode_keys(roots: npt.NDArray[np.uint64], counters: npt.NDArray[np.integer]) -> npt.NDArray[np.uint64]:
    """Key of episode ``counters[i]`` (0, 1, ...) of the env with root ``roots[i]``."""
    counters = np.asarray(counters).astype(np.uint64)
    return mix64(np.asarray(roots, dtype=np.uint64) + (counters + np.uint64(1)) * _GOLDEN)


def episode_rngs(
    image_seeds: npt.NDArray[np.uint64], bit_generators: Sequence[np.random.PCG64]
) -> list[np.random.Generator]:
    """The Generators that draw episodes' handwriting, from their 64-bit seeds (one bit generator each).

    Sets each bit generator's state from hashes of its seed instead of building a new one: a fresh
    ``default_rng(seed)`` costs ~10 us (SeedSequence), several times what a vector env's reset of one
    sub-env costs otherwise. The caller owns the bit generators and reuses them.
    """
    h = mix64(np.asarray(image_seeds, dtype=np.uint64)[:, None] + _GOLDEN * np.arange(1, 5, dtype=np.uint64))
    rngs = []
    for (s_hi, s_lo, i_hi, i_lo), bit_generator in zip(h.tolist(), bit_generators, strict=True):
        bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (s_hi << 64) | s_lo, "inc": (i_hi << 64) | i_lo | 1},
            "has_uint32": 0,
            "uinteger": 0,
        }
        rngs.append(np.random.Generator(bit_generator))
    return rngs


@functools.lru_cache(maxsize=8)
def compile_model(params: Params) -> DrivingModel:
    """The compiled model of ``params``, shared (read-only) by every env built with equal Params."""
    return DrivingModel(params)

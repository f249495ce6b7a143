"""City maps: named layouts, custom layouts given as rows of text, and procedural maps from a seed.

A map is rows of characters: ``#`` a building, ``.`` a road cell, ``0``-``9`` a road cell with a stop whose
sign shows that digit. The outer border must be buildings, so a car can never leave the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perceptgym.envs.grid_driving.constants import BUILDING, DIR_VECTORS, ROAD, STOP_CHARS

#: Named maps. "small" is the default: 33 road cells and ten stops, small enough for tabular Q-learning.
NAMED_MAPS: dict[str, tuple[str, ...]] = {
    "tiny": (
        "#######",
        "#.1.8.#",
        "#.#.#.#",
        "#.....#",
        "#3#.#7#",
        "#.....#",
        "#######",
    ),
    "small": (
        "#########",
        "#.0..1..#",
        "#2##.##3#",
        "#.##4##.#",
        "#.......#",
        "#5##.##6#",
        "#.##7##.#",
        "#..8..9.#",
        "#########",
    ),
    "town": (
        "#############",
        "#.0..1...2..#",
        "#.##.###.##.#",
        "#3##.###4##.#",
        "#...........#",
        "#.##5###.##6#",
        "#.##.###.##.#",
        "#..........##",
        "#7##.###.##.#",
        "#.##.###9##.#",
        "#..8........#",
        "#############",
    ),
}
MAP_NAMES = (*NAMED_MAPS, "procedural")


@dataclass(frozen=True)
class GridMap:
    """A parsed map: which cells are road, where the stops are, which cells are intersections."""

    name: str
    rows: tuple[str, ...]
    road: np.ndarray = field(repr=False, compare=False)  # (H, W) bool
    stops: tuple[tuple[int, int, int], ...]  # (row, col, number) in reading order
    intersections: tuple[tuple[int, int], ...]  # road cells with >= 3 road neighbours

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    @property
    def road_cells(self) -> list[tuple[int, int]]:
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(self.road), strict=True)]

    @property
    def stop_numbers(self) -> tuple[int, ...]:
        return tuple(n for _, _, n in self.stops)


def parse_map(rows: Sequence[str], name: str = "custom") -> GridMap:
    """Checks and parses map rows; raises ValueError naming the first problem."""
    rows = tuple(rows)
    if len(rows) < 3 or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"map {name!r}: need >= 3 rows of equal length, got lengths {[len(r) for r in rows]}")
    allowed = set(BUILDING + ROAD + STOP_CHARS)
    for i, row in enumerate(rows):
        bad = set(row) - allowed
        if bad:
            raise ValueError(f"map {name!r} row {i}: unknown characters {sorted(bad)}; allowed {sorted(allowed)}")
    grid = np.array([list(r) for r in rows])
    if not (
        (grid[0] == BUILDING).all()
        and (grid[-1] == BUILDING).all()
        and (grid[:, 0] == BUILDING).all()
        and (grid[:, -1] == BUILDING).all()
    ):
        raise ValueError(f"map {name!r}: the outer border must be buildings ('#')")
    road = grid != BUILDING
    stops = tuple((r, c, int(grid[r, c])) for r, c in zip(*np.nonzero(np.isin(grid, list(STOP_CHARS))), strict=True))
    numbers = [n for _, _, n in stops]
    if not stops:
        raise ValueError(f"map {name!r}: needs at least one stop (a digit on a road cell)")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"map {name!r}: stop numbers must be distinct, got {sorted(numbers)}")
    inter = []
    for r, c in zip(*np.nonzero(road), strict=True):
        if sum(road[r + dr, c + dc] for dr, dc in DIR_VECTORS) >= 3:
            inter.append((int(r), int(c)))
    cells = list(zip(*np.nonzero(road), strict=True))
    if len(_reachable(road, cells[0])) != len(cells):
        raise ValueError(f"map {name!r}: all road cells must be connected")
    stops = tuple((int(r), int(c), n) for r, c, n in stops)
    return GridMap(name=name, rows=rows, road=road, stops=stops, intersections=tuple(inter))


def _reachable(road: np.ndarray, start: tuple[int, int]) -> set[tuple[int, int]]:
    seen, todo = {start}, [start]
    while todo:
        r, c = todo.pop()
        for dr, dc in DIR_VECTORS:
            nxt = (r + dr, c + dc)
            if road[nxt] and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def road_distances(road: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Breadth-first road distance [cells] from every cell to ``target`` (-1 off the road)."""
    dist = np.full(road.shape, -1, dtype=np.int64)
    dist[target] = 0
    frontier = [target]
    while frontier:
        nxt_frontier = []
        for r, c in frontier:
            for dr, dc in DIR_VECTORS:
                n = (r + dr, c + dc)
                if road[n] and dist[n] < 0:
                    dist[n] = dist[r, c] + 1
                    nxt_frontier.append(n)
        frontier = nxt_frontier
    return dist


def procedural_map(seed: int, n_lines: int = 3, n_stops: int = 10) -> GridMap:
    """A random city from ``seed``: ``n_lines`` roads each way, 1-3 cells apart, a few segments removed.

    Stops go on straight road cells (not corners or intersections) and get distinct random digits.
    """
    if not 2 <= n_lines <= 6:
        raise ValueError(f"n_lines must be in 2..6, got {n_lines}")
    rng = np.random.default_rng(seed)

    def lines() -> list[int]:
        pos = [1]
        for _ in range(n_lines - 1):
            pos.append(pos[-1] + 1 + int(rng.integers(2, 4)))  # 2-3 building cells between roads
        return pos

    rows_at, cols_at = lines(), lines()
    h, w = rows_at[-1] + 2, cols_at[-1] + 2
    for _attempt in range(100):
        road = np.zeros((h, w), dtype=bool)
        for r in rows_at:
            road[r, cols_at[0] : cols_at[-1] + 1] = True
        for c in cols_at:
            road[rows_at[0] : rows_at[-1] + 1, c] = True
        # Remove up to n_lines random segments between adjacent junctions, keeping the roads connected.
        for _ in range(int(rng.integers(0, n_lines + 1))):
            trial = road.copy()
            if rng.random() < 0.5:
                i, j = int(rng.integers(len(rows_at))), int(rng.integers(len(cols_at) - 1))
                trial[rows_at[i], cols_at[j] + 1 : cols_at[j + 1]] = False
            else:
                i, j = int(rng.integers(len(cols_at))), int(rng.integers(len(rows_at) - 1))
                trial[rows_at[j] + 1 : rows_at[j + 1], cols_at[i]] = False
            trial = _drop_dead_ends(trial)
            cells = list(zip(*np.nonzero(trial), strict=True))
            if cells and len(_reachable(trial, cells[0])) == len(cells):
                road = trial
        straight = [
            (int(r), int(c))
            for r, c in zip(*np.nonzero(road), strict=True)
            if (road[r - 1, c] and road[r + 1, c] and not road[r, c - 1] and not road[r, c + 1])
            or (road[r, c - 1] and road[r, c + 1] and not road[r - 1, c] and not road[r + 1, c])
        ]
        if len(straight) >= n_stops:
            break
    else:  # pragma: no cover - the line spacing always leaves room
        raise ValueError(f"procedural map {seed}: not enough room for {n_stops} stops")
    grid = np.where(road, ROAD, BUILDING).astype("<U1")
    chosen = rng.choice(len(straight), size=n_stops, replace=False)
    digits = rng.permutation(10)[:n_stops]
    for k, d in zip(chosen, digits, strict=True):
        grid[straight[k]] = str(d)
    return parse_map(["".join(row) for row in grid], name=f"procedural-{seed}")


def _drop_dead_ends(road: np.ndarray) -> np.ndarray:
    """Removes road cells with a single neighbour until none is left (cars on loops need no U-turns)."""
    road = road.copy()
    changed = True
    while changed:
        changed = False
        for r, c in zip(*np.nonzero(road), strict=True):
            if sum(road[r + dr, c + dc] for dr, dc in DIR_VECTORS) <= 1:
                road[r, c] = False
                changed = True
    return road


def get_map(name: str | Sequence[str], seed: int = 0) -> GridMap:
    """A named map, ``"procedural"`` (from ``seed``), or custom rows."""
    if isinstance(name, str):
        if name == "procedural":
            return procedural_map(seed)
        if name not in NAMED_MAPS:
            raise ValueError(f"unknown map {name!r}: use one of {MAP_NAMES} or a list of map rows")
        return parse_map(NAMED_MAPS[name], name=name)
    if not (isinstance(name, Sequence) and not isinstance(name, bytes) and all(isinstance(r, str) for r in name)):
        raise ValueError(f"map must be one of {MAP_NAMES} or a list of map rows (strings), got {name!r}")
    return parse_map(name)


def rectangle_loops(gmap: GridMap) -> list[tuple[tuple[int, int], ...]]:
    """All rectangles whose whole perimeter is road, as clockwise and anticlockwise cell cycles.

    These are the routes the other cars drive round and round. Sorted by length, then position.
    """
    road = gmap.road
    h, w = road.shape
    loops = []
    for r1 in range(1, h - 1):
        for r2 in range(r1 + 1, h - 1):
            for c1 in range(1, w - 1):
                for c2 in range(c1 + 1, w - 1):
                    if not (
                        road[r1, c1 : c2 + 1].all()
                        and road[r2, c1 : c2 + 1].all()
                        and road[r1 : r2 + 1, c1].all()
                        and road[r1 : r2 + 1, c2].all()
                    ):
                        continue
                    cw = (
                        [(r1, c) for c in range(c1, c2)]
                        + [(r, c2) for r in range(r1, r2)]
                        + [(r2, c) for c in range(c2, c1, -1)]
                        + [(r, c1) for r in range(r2, r1, -1)]
                    )
                    loops.append(tuple(cw))
                    loops.append((cw[0], *cw[:0:-1]))
    loops.sort(key=lambda loop: (len(loop), loop))
    return loops

"""The ``pixels`` observation: a small top-down RGB raster built with numpy (no pygame), fast.

Layout: the map at ``PIX_TILE`` px per cell (stop tiles show their handwritten sign at half size), and below
it a strip showing the trip card at full 28x28 size. Static parts (roads, signs, card) are composed once per
episode; each step copies that background and paints the lights and cars on it (a batch can instead keep
each frame and erase and repaint only what moves, :meth:`PixelRaster.erase`).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from perceptgym.envs.grid_driving.constants import (
    COLOR_BUILDING,
    COLOR_CAR,
    COLOR_CARD_BG,
    COLOR_EGO,
    COLOR_GREEN,
    COLOR_INK,
    COLOR_ROAD,
    COLOR_SIGN_BG,
    DIGIT_PX,
    NUM_HEADINGS,
    PIX_TILE,
)
from perceptgym.envs.grid_driving.core import DrivingModel

_RGB = np.dtype((np.void, 3))  # one pixel


@functools.lru_cache(maxsize=16)
def _ink_table(bg: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    """``ink_on`` for each of the 256 ink levels: the colours it blends, computed once per background."""
    alpha = np.arange(256, dtype=np.float32)[:, None] / 255.0
    out = np.asarray(bg, np.float32) * (1.0 - alpha) + np.asarray(COLOR_INK, np.float32) * alpha
    out = out.astype(np.uint8)
    out.setflags(write=False)
    return out


def ink_on(bg: tuple[int, int, int], digit: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A digit (0 background .. 255 ink) as dark ink on a ``bg`` coloured patch, (..., h, w, 3) uint8."""
    return _ink_table(tuple(int(c) for c in bg))[digit]


def half_size(digit: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(..., 28, 28) -> (..., 14, 14) by averaging 2x2 blocks (rounded down)."""
    d = digit.astype(np.uint16)
    return ((d[..., 0::2, 0::2] + d[..., 1::2, 0::2] + d[..., 0::2, 1::2] + d[..., 1::2, 1::2]) // 4).astype(np.uint8)


def _padded(rows: list[list[int]]) -> npt.NDArray[np.intp]:
    """Non-empty index lists as one (len(rows), longest) table; short rows repeat their last index."""
    width = max(len(r) for r in rows)
    return np.array([np.pad(np.asarray(r, dtype=np.intp), (0, width - len(r)), mode="edge") for r in rows])


def _ego_masks(tile: int) -> list[np.ndarray]:
    """Per heading, a frame 2 px wide whose front side is 4 px thick, leaving the sign under it visible."""
    masks = []
    for heading in range(NUM_HEADINGS):
        m = np.zeros((tile, tile), dtype=bool)
        m[:2, :] = m[-2:, :] = m[:, :2] = m[:, -2:] = True
        front = [np.s_[:4, :], np.s_[:, -4:], np.s_[-4:, :], np.s_[:, :4]][heading]
        m[front] = True
        masks.append(m)
    return masks


class PixelRaster:
    """Draws ``pixels`` observations for one compiled model, for one env or a batch of them.

    Batched: each frame is its episode's background plus what moves. What moves depends only on the
    phase (lights and other cars) and on the ego's cell and heading, so each is a precomputed list of
    pixels and colours, painted into all frames with one fancy-indexed assignment each.
    """

    def __init__(self, model: DrivingModel, tile: int = PIX_TILE):
        self.model, self.tile = model, tile
        h, w = model.params.gmap.shape
        self.shape = (h * tile + DIGIT_PX, w * tile, 3)
        base = np.zeros(self.shape, dtype=np.uint8)
        base[: h * tile] = np.repeat(
            np.repeat(
                np.where(model.params.gmap.road[..., None], COLOR_ROAD, COLOR_BUILDING).astype(np.uint8),
                tile,
                0,
            ),
            tile,
            1,
        )
        base[h * tile :] = COLOR_BUILDING
        self._base = base
        # Slices of each cell's tile and of each intersection's light bars (vertical bar: north-south green).
        self._tiles = [np.s_[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] for r, c in model.cells]
        mid, half = tile // 2, 1
        bars = [
            (
                np.s_[r * tile + 2 : (r + 1) * tile - 2, c * tile + mid - half : c * tile + mid + half],
                np.s_[r * tile + mid - half : r * tile + mid + half, c * tile + 2 : (c + 1) * tile - 2],
            )
            for r, c in (model.cells[i] for i in model.inter_cells)
        ]
        # What moves, as flat pixel indices painted in one colour each, in this order (later paint wins): per
        # phase the green light bars, then the other cars; per (cell, heading) the ego. Rows are padded by
        # repeating their last index, so that each is one fancy-indexed write for a whole batch.
        greens, cars = [], []
        for phase in range(model.period):
            green = []
            if model.params.green_steps:
                for bar, axis in zip(bars, model.light_axis[:, phase], strict=True):
                    green += self._pixels(bar[axis])
            car = []
            for other in model.car_cells[phase]:
                r0, c0 = model.cells[other]
                car += self._pixels(np.s_[r0 * tile + 3 : (r0 + 1) * tile - 3, c0 * tile + 3 : (c0 + 1) * tile - 3])
            greens.append(green)
            cars.append(car)
        masks = _ego_masks(tile)
        egos = [
            np.flatnonzero(self._grid_mask(self._tiles[cell], masks[heading])).tolist()
            for cell in range(len(model.cells))
            for heading in range(NUM_HEADINGS)
        ]
        # (pixel table, what picks its row: the phase or cell * 4 + heading, colour)
        self._layers: list[tuple[np.ndarray, str, np.ndarray]] = []
        for rows, kind, color in ((cars, "phase", COLOR_CAR), (egos, "ch", COLOR_EGO)):
            assert all(rows) or not any(rows)  # cars are there at every phase or never
            if all(rows):
                self._layers.append((_padded(rows), kind, np.array(color, dtype=np.uint8).view(_RGB)))
        self._runs = [layer[2] for layer in self._layers]  # see _color_run
        # Flat pixel indices of the stop tiles (map order, each in reading order) and of the card.
        index = np.arange(self.shape[0] * self.shape[1]).reshape(self.shape[:2])
        self._sign_pixels = np.concatenate([index[self._tiles[cell]].ravel() for cell in model.stop_cells])
        self._card_pixels = index[h * tile : h * tile + DIGIT_PX, :DIGIT_PX].ravel()
        # Per layer row, the tile rows its pixels lie in (``tile`` pixels of one image row in one cell: one
        # 3 * tile byte item), for erase.
        self._tile_rows = []
        for table, _, _ in self._layers:
            y, x = np.divmod(table, self.shape[1])
            rows = [np.unique(r) for r in y * w + x // tile]
            self._tile_rows.append(_padded([r.tolist() for r in rows]))
        self._tile_row = np.dtype((np.void, 3 * tile))
        # The tile rows that differ between episodes (signs, card): refresh copies them.
        episode = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        episode[self._sign_pixels] = episode[self._card_pixels] = True
        y, x = np.divmod(np.flatnonzero(episode), self.shape[1])
        self._episode_rows = np.unique(y * w + x // tile)
        # The lights, painted first, as whole tile rows of the intersections (plain road under them): per
        # phase, the rows either bar may cover with that phase's bars on road. Painting them also erases
        # the bars of the phase before.
        lit = np.zeros(self.shape[:2], dtype=bool)
        for bar in bars:
            lit[bar[0]] = lit[bar[1]] = True
        y, x = np.nonzero(lit)
        self._light_rows = np.unique(y * w + x // tile)
        lights = np.repeat(base[None], model.period, axis=0)
        for phase, green in enumerate(greens):
            lights[phase].reshape(-1, 3)[green] = COLOR_GREEN
        assert not model.inter_cells or (base[lit] == COLOR_ROAD).all()
        self._light_rows_rgb = lights.reshape(model.period, -1).view(self._tile_row)[:, self._light_rows].copy()

    def _grid_mask(self, tile_slice: tuple[slice, slice], inside: np.ndarray) -> np.ndarray:
        grid = np.zeros(self.shape[:2], dtype=bool)
        grid[tile_slice] = inside
        return grid

    def _pixels(self, region: tuple[slice, slice]) -> list[int]:
        """Flat pixel indices (row * width + col) of a rectangle, in reading order."""
        grid = np.zeros(self.shape[:2], dtype=bool)
        grid[region] = True
        return np.flatnonzero(grid).tolist()

    def backgrounds(self, cards: np.ndarray, signs: np.ndarray) -> npt.NDArray[np.uint8]:
        """The static pictures of a batch of episodes, ``(M, H, W, 3)``: map, stop signs and trip card.

        ``cards`` is ``(M, 28, 28)`` and ``signs`` ``(M, n_stops, 28, 28)`` (map order).
        """
        out = np.empty((len(cards), *self.shape), dtype=np.uint8)
        self.paint_backgrounds(out, np.arange(len(cards)), cards, signs)
        return out

    def blanks(self, n: int) -> npt.NDArray[np.uint8]:
        """``n`` pictures of the map alone, ``(n, H, W, 3)``: backgrounds without signs or card."""
        return np.repeat(self._base[None], n, axis=0)

    def paint_backgrounds(
        self, out: np.ndarray, idx: np.ndarray, cards: np.ndarray, signs: np.ndarray, blank: bool = True
    ) -> None:
        """Writes the backgrounds of episodes ``(cards, signs)`` into ``out[idx]`` (see :meth:`backgrounds`).

        ``blank=False``: ``out[idx]`` hold backgrounds of this map already (or :meth:`blanks`); only the signs
        and the card are written, which is all that differs between episodes.
        """
        t = self.tile
        digits = half_size(signs) if t == 14 else signs[..., :: 28 // t, :: 28 // t][..., :t, :t]
        if blank:
            out[idx] = self._base
        flat = out.reshape(-1).view(_RGB)
        offset = (idx * (out.shape[1] * out.shape[2]))[:, None]
        for pixels, bg, images in (
            (self._sign_pixels, COLOR_SIGN_BG, digits),
            (self._card_pixels, COLOR_CARD_BG, cards),
        ):
            flat.put(offset + pixels, _ink_table(bg).view(_RGB).take(images.reshape(len(idx), -1)))

    def frames(self, backgrounds: np.ndarray, base: np.ndarray) -> npt.NDArray[np.uint8]:
        """The observations of a batch: base states ``base`` (N,) drawn over their ``backgrounds``."""
        out = backgrounds.copy()
        self.paint(out, np.arange(len(out)), base)
        return out

    def paint(self, frames: np.ndarray, idx: np.ndarray, base: np.ndarray) -> None:
        """Paints what moves at base states ``base`` (lights, cars, ego) over ``frames[idx]``."""
        if len(self._light_rows):
            phase = base % self.model.period
            where = self._light_rows + (idx * (frames.shape[1] * self.model.params.gmap.shape[1]))[:, None]
            frames.reshape(-1).view(self._tile_row).put(where, self._light_rows_rgb[phase])
        flat, where = self._moving(frames, idx, base)
        for i, w in enumerate(where):
            flat.put(w, self._color_run(i, w.size))

    def refresh(self, frames: np.ndarray, backgrounds: np.ndarray, idx: np.ndarray) -> None:
        """Copies into ``frames[idx]`` the signs and card of ``backgrounds[idx]`` (a new episode, same map)."""
        where = self._episode_rows + (idx * (frames.shape[1] * self.model.params.gmap.shape[1]))[:, None]
        frames.reshape(-1).view(self._tile_row).put(where, backgrounds.reshape(-1).view(self._tile_row).take(where))

    def erase(self, frames: np.ndarray, backgrounds: np.ndarray, idx: np.ndarray, base: np.ndarray) -> None:
        """Undoes :meth:`paint` of ``base`` in ``frames[idx]``: those pixels show ``backgrounds[idx]`` again.

        A frame thus follows its sub-env with ~80 tile rows copied per step (erase the old state, paint the
        new) instead of a copy of its whole background. ``backgrounds`` is laid out as ``frames``.
        """
        flat = frames.reshape(-1).view(self._tile_row)
        source = backgrounds.reshape(-1).view(self._tile_row)
        offset = (idx * (frames.shape[1] * self.model.params.gmap.shape[1]))[:, None]
        rows = self._layer_rows(base)
        for table, (_, kind, _) in zip(self._tile_rows, self._layers, strict=True):
            where = table[rows[kind]] + offset
            flat.put(where, source.take(where))

    def _color_run(self, layer: int, size: int) -> np.ndarray:
        """``size`` pixels of layer ``layer``'s colour (``put`` with as many values as indices: ~2x faster)."""
        run = self._runs[layer]
        if len(run) < size:
            run = self._runs[layer] = np.repeat(self._layers[layer][2], size)
        return run[:size]

    def _moving(self, frames: np.ndarray, idx: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``frames`` as one flat array of pixels, and per layer the indices in it that ``base`` covers."""
        # Pixels as 3-byte items of one flat array, moved with take and put: each pixel one copy, ~10x faster
        # than (..., 3) rows and ~3x faster than fancy indexing.
        flat = frames.reshape(-1).view(_RGB)
        offset = (idx * (frames.shape[1] * frames.shape[2]))[:, None]
        rows = self._layer_rows(base)
        return flat, [table[rows[kind]] + offset for table, kind, _ in self._layers]

    def _layer_rows(self, base: np.ndarray) -> dict[str, np.ndarray]:
        ch, phase = np.divmod(base, self.model.period)
        return {"phase": phase, "ch": ch}

    def background(self, card_image: np.ndarray, sign_images: np.ndarray) -> npt.NDArray[np.uint8]:
        """The static picture of one episode (see :meth:`backgrounds`)."""
        return self.backgrounds(card_image[None], sign_images[None])[0]

    def frame(self, background: np.ndarray, base: int) -> npt.NDArray[np.uint8]:
        """The observation for base state ``base`` drawn over an episode's background."""
        out = background.copy()
        ch, phase = divmod(int(base), self.model.period)
        if len(self._light_rows):
            out.reshape(-1).view(self._tile_row).put(self._light_rows, self._light_rows_rgb[phase])
        flat = out.reshape(-1).view(_RGB)
        for table, kind, color in self._layers:  # as paint, with ints for one frame: fewer numpy calls
            flat.put(table[phase if kind == "phase" else ch], color)
        return out

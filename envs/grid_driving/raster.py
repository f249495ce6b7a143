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
    pairs = np.add(digit[..., 0::2, :], digit[..., 1::2, :], dtype=np.uint16)  # rows first: half the work after
    quads = np.add(pairs[..., 0::2], pairs[..., 1::2])
    quads >>= 2
    return quads.astype(np.uint8)


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
        # The same pixels as tile rows, in the same order (each sign tile's rows, the card's rows): a batch
        # writes a new episode's handwriting as 3 * tile byte items, ``tile`` times fewer than pixels.
        rows = index // self.shape[1] * w + index % self.shape[1] // tile  # the tile row of each pixel
        self._sign_rows = rows.ravel()[self._sign_pixels[::tile]]
        self._card_rows = rows.ravel()[self._card_pixels[::tile]] if DIGIT_PX % tile == 0 else None
        # A batch paints each layer as whole tile rows: it takes them from the frames (lights already drawn),
        # keeps the bytes the layer leaves (``_keep``: 255) and adds its colour where it paints (``_ink``),
        # ~10x fewer items moved than pixel by pixel. Per layer row (as _tile_rows), (rows, 3 * tile) bytes each.
        self._keep, self._ink = [], []
        for (table, _, color), tile_rows in zip(self._layers, self._tile_rows, strict=True):
            keep = np.full((*tile_rows.shape, 3 * tile), 255, dtype=np.uint8)
            ink = np.zeros_like(keep)
            y, x = np.divmod(table, self.shape[1])
            ids = y * w + x // tile
            for j in range(len(table)):  # at construction only: one row per phase or (cell, heading)
                pos = np.searchsorted(tile_rows[j], ids[j])  # padding repeats the last: the first match
                byte = 3 * (x[j] % tile)
                for c in range(3):
                    keep[j, pos, byte + c] = 0
                    ink[j, pos, byte + c] = color.view(np.uint8)[c]
            # padded tile rows repeat their row: give them its bytes too (the same row written twice, alike)
            first = np.argmax(tile_rows[:, :, None] == tile_rows[:, None, :], axis=2)
            keep = np.take_along_axis(keep, first[:, :, None], axis=1)
            ink = np.take_along_axis(ink, first[:, :, None], axis=1)
            self._keep.append(keep.reshape(len(table), -1))
            self._ink.append(ink.reshape(len(table), -1))
        # The tile rows that differ between episodes (signs, card): refresh copies them.
        episode = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        episode[self._sign_pixels] = episode[self._card_pixels] = True
        y, x = np.divmod(np.flatnonzero(episode), self.shape[1])
        self._episode_rows = np.unique(y * w + x // tile)
        # A batch's backgrounds as one compact *store* of tile rows (episode_store): the map's rows, then
        # each episode's own rows (_episode_rows: signs and card), ~7x smaller than whole pictures, so that
        # erasing reads mostly cached rows. Per layer row, where erase finds each tile row in a store: the
        # map's row, or (_erase_own set) that row's place among the episode's rows.
        self._n_rows, n_own = h * tile * w + DIGIT_PX * w, len(self._episode_rows)
        place = np.full(self._n_rows, -1, dtype=np.intp)
        place[self._episode_rows] = np.arange(n_own)
        self._erase_src, self._erase_own = [], []
        for tile_rows in self._tile_rows:
            own = place[tile_rows] >= 0
            self._erase_src.append(np.where(own, self._n_rows + place[tile_rows], tile_rows))
            self._erase_own.append(own.astype(np.intp))
        self._sign_place = place[self._sign_rows]
        self._card_place = None if self._card_rows is None else place[self._card_rows]
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
        if blank:
            out[idx] = self._base
        rows = out.reshape(-1).view(self._tile_row)
        row_offset = (idx * self._n_rows)[:, None]
        for pixels, tile_rows, colors in zip(
            (self._sign_pixels, self._card_pixels),
            (self._sign_rows, self._card_rows),
            self._colors(cards, signs),
            strict=True,
        ):
            if tile_rows is None:  # the card's rows are not whole tile rows: pixel by pixel
                out.reshape(-1).view(_RGB).put((idx * (out.shape[1] * out.shape[2]))[:, None] + pixels, colors)
            else:  # colors lists each tile row's pixels in a row: tile_rows items of 3 * tile bytes
                rows.put(row_offset + tile_rows, colors.view(np.uint8).reshape(len(idx), -1).view(self._tile_row))

    def _colors(self, cards: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pixels of the signs (half size: _sign_pixels' order) and of the cards, (M, pixels) each."""
        t = self.tile
        digits = half_size(signs) if t == 14 else signs[..., :: 28 // t, :: 28 // t][..., :t, :t]
        m = len(cards)
        return (
            _ink_table(COLOR_SIGN_BG).view(_RGB).take(digits.reshape(m, -1)),
            _ink_table(COLOR_CARD_BG).view(_RGB).take(cards.reshape(m, -1)),
        )

    # ---- a batch's backgrounds as a compact store of tile rows (see __init__) ---------------------------
    def episode_store(self, n: int) -> np.ndarray:
        """The store of ``n`` blank backgrounds: the map's tile rows, then ``n`` times its episode rows."""
        if self._card_rows is None:
            raise ValueError(f"a store of tile rows needs a tile that divides {DIGIT_PX}, got tile={self.tile}")
        rows = self._base.reshape(-1).view(self._tile_row)
        return np.concatenate([rows, np.tile(rows[self._episode_rows], n)])

    def paint_episodes(self, store: np.ndarray, idx: np.ndarray, cards: np.ndarray, signs: np.ndarray) -> None:
        """Writes the signs and cards of new episodes into episodes ``idx`` of a store (as paint_backgrounds)."""
        own = store[self._n_rows :]
        offset = (idx * len(self._episode_rows))[:, None]
        for place, colors in zip((self._sign_place, self._card_place), self._colors(cards, signs), strict=True):
            own.put(offset + place, colors.view(np.uint8).reshape(len(idx), -1).view(self._tile_row))

    def store_backgrounds(self, store: np.ndarray) -> npt.NDArray[np.uint8]:
        """The whole pictures of a store's backgrounds, ``(n, H, W, 3)`` (as :meth:`backgrounds`)."""
        n = (len(store) - self._n_rows) // len(self._episode_rows)
        out = self.blanks(n)
        self.refresh(out, store, np.arange(n))
        return out

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
            frames.reshape(-1).view(self._tile_row).put(where, self._light_rows_rgb.take(phase, axis=0))
        flat = frames.reshape(-1).view(self._tile_row)
        offset = (idx * (frames.shape[1] * self.model.params.gmap.shape[1]))[:, None]
        rows = self._layer_rows(base)
        for table, keep, ink, (_, kind, _) in zip(self._tile_rows, self._keep, self._ink, self._layers, strict=True):
            r = rows[kind]  # (take along an axis: row copies, several times faster than fancy indexing)
            where = table.take(r, axis=0) + offset
            now = flat.take(where)
            b = now.view(np.uint8).reshape(len(idx), -1)
            np.bitwise_and(b, keep.take(r, axis=0), out=b)
            np.bitwise_or(b, ink.take(r, axis=0), out=b)
            flat.put(where, now)

    def refresh(self, frames: np.ndarray, store: np.ndarray, idx: np.ndarray) -> None:
        """Copies into ``frames[idx]`` the signs and card of episodes ``idx`` of a store (new episodes)."""
        n_own = len(self._episode_rows)
        where = self._episode_rows + (idx * self._n_rows)[:, None]
        frames.reshape(-1).view(self._tile_row).put(where, store[self._n_rows :].reshape(-1, n_own)[idx])

    def erase(self, frames: np.ndarray, store: np.ndarray, idx: np.ndarray, base: np.ndarray) -> None:
        """Undoes :meth:`paint` of ``base`` in ``frames[idx]``: those pixels show the store's backgrounds again.

        A frame thus follows its sub-env with ~80 tile rows copied per step (erase the old state, paint the
        new) instead of a copy of its whole background.
        """
        flat = frames.reshape(-1).view(self._tile_row)
        offset = (idx * self._n_rows)[:, None]
        own_offset = (idx * len(self._episode_rows))[:, None]
        rows = self._layer_rows(base)
        for table, src, own, (_, kind, _) in zip(
            self._tile_rows, self._erase_src, self._erase_own, self._layers, strict=True
        ):
            r = rows[kind]
            source = src.take(r, axis=0) + own.take(r, axis=0) * own_offset
            flat.put(table.take(r, axis=0) + offset, store.take(source))

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

"""The ``pixels`` observation: a small top-down RGB raster built with numpy (no pygame), fast.

Layout: the map at ``PIX_TILE`` px per cell (stop tiles show their handwritten sign at half size), and below
it a strip showing the trip card at full 28x28 size. Static parts (roads, signs, card) are composed once per
episode; each step copies that background and paints the lights and cars on it.
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
        # Per phase: the pixels of the green bars, then the other cars over them (later paint wins).
        layers = []
        for phase in range(model.period):
            paint: dict[int, tuple[int, int, int]] = {}
            if model.params.green_steps:
                for bar, axis in zip(bars, model.light_axis[:, phase], strict=True):
                    paint.update(dict.fromkeys(self._pixels(bar[axis]), COLOR_GREEN))
            for other in model.car_cells[phase]:
                r0, c0 = model.cells[other]
                inner = np.s_[r0 * tile + 3 : (r0 + 1) * tile - 3, c0 * tile + 3 : (c0 + 1) * tile - 3]
                paint.update(dict.fromkeys(self._pixels(inner), COLOR_CAR))
            layers.append(paint)
        size = max(1, *(len(p) for p in layers))
        # Padded by repeating the last pixel with its colour, so repeated indices write equal values.
        self._phase_pixels = np.zeros((model.period, size), dtype=np.intp)
        self._phase_colors = np.zeros((model.period, size, 3), dtype=np.uint8)
        for phase, paint in enumerate(layers):
            if paint:
                pix = np.fromiter(paint, dtype=np.intp, count=len(paint))
                self._phase_pixels[phase] = np.pad(pix, (0, size - len(pix)), mode="edge")
                col = np.array(list(paint.values()), dtype=np.uint8)
                self._phase_colors[phase] = np.pad(col, ((0, size - len(col)), (0, 0)), mode="edge")
            else:  # nothing moves (no lights, no cars): repaint one road pixel with its own colour
                self._phase_pixels[phase] = 0
                self._phase_colors[phase] = base[0, 0]
        self._phase_colors_rgb = self._phase_colors.view(_RGB)[..., 0]
        self._ego_rgb = np.array(COLOR_EGO, dtype=np.uint8).view(_RGB)[0]
        # Per (cell, heading): the ego's frame, 2 px wide with a 4 px front, leaving the sign under it visible.
        masks = _ego_masks(tile)
        self._ego_pixels = np.array(
            [
                np.flatnonzero(self._grid_mask(self._tiles[cell], masks[heading]))
                for cell in range(len(model.cells))
                for heading in range(NUM_HEADINGS)
            ],
            dtype=np.intp,
        )
        # Flat pixel indices of the stop tiles (map order, each in reading order) and of the card.
        index = np.arange(self.shape[0] * self.shape[1]).reshape(self.shape[:2])
        self._sign_pixels = np.concatenate([index[self._tiles[cell]].ravel() for cell in model.stop_cells])
        self._card_pixels = index[h * tile : h * tile + DIGIT_PX, :DIGIT_PX].ravel()

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

    def paint_backgrounds(self, out: np.ndarray, idx: np.ndarray, cards: np.ndarray, signs: np.ndarray) -> None:
        """Writes the backgrounds of episodes ``(cards, signs)`` into ``out[idx]`` (see :meth:`backgrounds`)."""
        t = self.tile
        digits = half_size(signs) if t == 14 else signs[..., :: 28 // t, :: 28 // t][..., :t, :t]
        out[idx] = self._base
        pixels = out.reshape(len(out), -1).view(_RGB)
        rows = idx[:, None]
        pixels[rows, self._sign_pixels] = ink_on(COLOR_SIGN_BG, digits).reshape(len(idx), -1).view(_RGB)
        pixels[rows, self._card_pixels] = ink_on(COLOR_CARD_BG, cards).reshape(len(idx), -1).view(_RGB)

    def frames(self, backgrounds: np.ndarray, base: np.ndarray) -> npt.NDArray[np.uint8]:
        """The observations of a batch: base states ``base`` (N,) drawn over their ``backgrounds``."""
        model = self.model
        ch, phase = np.divmod(base, model.period)
        out = backgrounds.copy()
        # Pixels as 3-byte items: numpy then copies each with one move, ~10x faster than (..., 3) rows.
        pixels = out.reshape(len(out), -1).view(_RGB)
        rows = np.arange(len(out))[:, None]
        pixels[rows, self._phase_pixels[phase]] = self._phase_colors_rgb[phase]
        pixels[rows, self._ego_pixels[ch]] = self._ego_rgb
        return out

    def background(self, card_image: np.ndarray, sign_images: np.ndarray) -> npt.NDArray[np.uint8]:
        """The static picture of one episode (see :meth:`backgrounds`)."""
        return self.backgrounds(card_image[None], sign_images[None])[0]

    def frame(self, background: np.ndarray, base: int) -> npt.NDArray[np.uint8]:
        """The observation for base state ``base`` drawn over an episode's background."""
        return self.frames(background[None], np.array([base]))[0]

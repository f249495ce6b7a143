"""The ``pixels`` observation: a small top-down RGB raster built with numpy (no pygame), fast.

Layout: the map at ``PIX_TILE`` px per cell (stop tiles show their handwritten sign at half size), and below
it a strip showing the trip card at full 28x28 size. Static parts (roads, signs, card) are composed once per
episode; each step copies that background and paints the lights and cars on it.
"""

from __future__ import annotations

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


def ink_on(bg: tuple[int, int, int], digit: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A digit (0 background .. 255 ink) as dark ink on a ``bg`` coloured patch, (h, w, 3) uint8."""
    alpha = digit.astype(np.float32)[..., None] / 255.0
    out = np.asarray(bg, np.float32) * (1.0 - alpha) + np.asarray(COLOR_INK, np.float32) * alpha
    return out.astype(np.uint8)


def half_size(digit: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """28x28 -> 14x14 by averaging 2x2 blocks."""
    return digit.reshape(14, 2, 14, 2).mean(axis=(1, 3)).astype(np.uint8)


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
    """Draws ``pixels`` observations for one compiled model."""

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
        self._ego = _ego_masks(tile)
        # Slices of each cell's tile and of each intersection's light bars (vertical bar: north-south green).
        self._tiles = [np.s_[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] for r, c in model.cells]
        mid, half = tile // 2, 1
        self._bars = [
            (
                np.s_[r * tile + 2 : (r + 1) * tile - 2, c * tile + mid - half : c * tile + mid + half],
                np.s_[r * tile + mid - half : r * tile + mid + half, c * tile + 2 : (c + 1) * tile - 2],
            )
            for r, c in (model.cells[i] for i in model.inter_cells)
        ]

    def background(self, card_image: np.ndarray, sign_images: np.ndarray) -> npt.NDArray[np.uint8]:
        """The static picture of one episode: map, the stop signs and the trip card."""
        bg = self._base.copy()
        t = self.tile
        for k, cell in enumerate(self.model.stop_cells):
            digit = half_size(sign_images[k]) if t == 14 else sign_images[k][:: 28 // t, :: 28 // t][:t, :t]
            bg[self._tiles[cell]] = ink_on(COLOR_SIGN_BG, digit)
        h = self.model.params.gmap.shape[0] * t
        bg[h : h + DIGIT_PX, :DIGIT_PX] = ink_on(COLOR_CARD_BG, card_image)
        return bg

    def frame(self, background: np.ndarray, base: int) -> npt.NDArray[np.uint8]:
        """The observation for base state ``base`` drawn over an episode's background."""
        model = self.model
        cell, heading, phase = model.base_parts(base)
        out = background.copy()
        if model.params.green_steps:
            for bars, axis in zip(self._bars, model.light_axis[:, phase], strict=True):
                out[bars[axis]] = COLOR_GREEN
        t = self.tile
        for other in model.car_cells[phase]:
            out[self._tiles[other]][3 : t - 3, 3 : t - 3] = COLOR_CAR
        out[self._tiles[cell]][self._ego[heading]] = COLOR_EGO
        return out

"""The pygame viewer of GridDriving: draws a scene snapshot; never touches the env or its dynamics.

The static picture of an episode (city, stop signs with their handwritten digits, the trip card) is drawn
once into a cached surface; each frame blits it and draws only the lights, cars and panel text. Frames are
read straight from a 24-bit RGB surface's buffer, so an ``rgb_array`` frame costs well under a millisecond.
pygame is imported only here, and only ``pygame.display`` for a window (never ``pygame.init()``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.error import DependencyNotInstalled

from perceptgym.envs.grid_driving.constants import (
    AXIS_NS,
    COLOR_BAD,
    COLOR_BUILDING,
    COLOR_CAR,
    COLOR_CARD_BG,
    COLOR_EGO,
    COLOR_GOOD,
    COLOR_GRASS,
    COLOR_GREEN,
    COLOR_LANE,
    COLOR_PANEL,
    COLOR_RED,
    COLOR_ROAD,
    COLOR_SIGN_BG,
    COLOR_STOP,
    COLOR_TEXT,
    DIR_VECTORS,
    HEADING_NAMES,
    REWARD_TERMS,
)
from perceptgym.envs.grid_driving.core import Action, DrivingModel
from perceptgym.envs.grid_driving.raster import ink_on

TILE = 40  # [px] per map cell
PANEL_W = 210  # [px] side panel
RGB_MASKS = (0xFF, 0xFF00, 0xFF0000, 0)  # byte order R, G, B in memory: the buffer *is* the frame


def _import_pygame():
    try:
        import pygame
    except ImportError as e:  # pragma: no cover - pygame-ce is a dependency
        raise DependencyNotInstalled('pygame is needed to render GridDriving: pip install "pygame-ce"') from e
    return pygame


class GridRenderer:
    """Renders snapshots (``GridDrivingEnv.snapshot()``) to (H, W, 3) uint8 frames, optionally in a window."""

    def __init__(self, model: DrivingModel, window: bool = False, fps: int = 8, tile: int = TILE):
        pg = self.pg = _import_pygame()
        pg.font.init()
        self.model, self.tile, self.fps = model, tile, fps
        h, w = model.params.gmap.shape
        self.map_size = (w * tile, h * tile)
        self.size = (w * tile + PANEL_W, max(h * tile, 360))
        self.surface = pg.Surface(self.size, 0, 24, RGB_MASKS)
        self._bg = None
        self._bg_key: Any = None
        self._fonts = {s: pg.font.Font(None, s) for s in (16, 20, 26, 34)}
        self._text_cache: dict[tuple[str, int, tuple[int, int, int]], Any] = {}
        self.window = None
        self.closed = False
        if window:
            pg.display.init()
            self.window = pg.display.set_mode(self.size)
            pg.display.set_caption("perceptgym GridDriving")
            self.clock = pg.time.Clock()

    # ---- helpers -------------------------------------------------------------------------------------
    def _text(self, text: str, size: int = 20, color: tuple[int, int, int] = COLOR_TEXT):
        key = (text, size, color)
        surf = self._text_cache.get(key)
        if surf is None:
            if len(self._text_cache) > 1024:  # bounded: the return and step counters change every frame
                self._text_cache.clear()
            surf = self._text_cache[key] = self._fonts[size].render(text, True, color)
        return surf

    def _digit_surface(self, image: npt.NDArray[np.uint8], size: int, bg=COLOR_SIGN_BG):
        rgb = ink_on(bg, image)
        surf = self.pg.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
        return self.pg.transform.smoothscale(surf, (size, size))

    def _cell_rect(self, r: int, c: int, inset: int = 0):
        t = self.tile
        return self.pg.Rect(c * t + inset, r * t + inset, t - 2 * inset, t - 2 * inset)

    # ---- static background ---------------------------------------------------------------------------
    def _background(self, snap: dict[str, Any]):
        pg, t, gmap = self.pg, self.tile, self.model.params.gmap
        bg = pg.Surface(self.size, 0, 24, RGB_MASKS)
        bg.fill(COLOR_PANEL)
        road = gmap.road
        h, w = road.shape
        for r in range(h):
            for c in range(w):
                if not road[r, c]:
                    pg.draw.rect(bg, COLOR_GRASS, self._cell_rect(r, c))
                    pg.draw.rect(bg, COLOR_BUILDING, self._cell_rect(r, c, 5), border_radius=4)
                    continue
                pg.draw.rect(bg, COLOR_ROAD, self._cell_rect(r, c))
                horiz, vert = road[r, c - 1] or road[r, c + 1], road[r - 1, c] or road[r + 1, c]
                x, y = c * t, r * t
                if horiz and not vert:  # dashed centre line on straight roads only
                    pg.draw.line(bg, COLOR_LANE, (x + t // 8, y + t // 2), (x + 3 * t // 8, y + t // 2), 2)
                    pg.draw.line(bg, COLOR_LANE, (x + 5 * t // 8, y + t // 2), (x + 7 * t // 8, y + t // 2), 2)
                elif vert and not horiz:
                    pg.draw.line(bg, COLOR_LANE, (x + t // 2, y + t // 8), (x + t // 2, y + 3 * t // 8), 2)
                    pg.draw.line(bg, COLOR_LANE, (x + t // 2, y + 5 * t // 8), (x + t // 2, y + 7 * t // 8), 2)
        images = snap["images"]
        for k, ((r, c, _), (sr, sc)) in enumerate(zip(gmap.stops, self._sign_spots(), strict=True)):
            pg.draw.rect(bg, COLOR_STOP, self._cell_rect(r, c, 1), 3)  # the stop bay
            rect = self._cell_rect(sr, sc, 2)
            pg.draw.rect(bg, COLOR_STOP, rect.inflate(4, 4), border_radius=3)
            bg.blit(self._digit_surface(images[k + 1], rect.width), rect)
        self._draw_panel_static(bg, snap)
        return bg

    def _sign_spots(self) -> list[tuple[int, int]]:
        """Where each stop's sign stands: a building next to its bay, touching no other bay if possible."""
        gmap = self.model.params.gmap
        road, bays = gmap.road, {(r, c) for r, c, _ in gmap.stops}
        used: set[tuple[int, int]] = set()
        spots = []
        for r, c, _ in gmap.stops:
            options = [(r + dr, c + dc) for dr, dc in DIR_VECTORS if not road[r + dr, c + dc]]
            if not options:  # no building around: the sign stands in the bay itself
                spots.append((r, c))
                continue

            def clash(spot: tuple[int, int], bay=(r, c)) -> tuple[bool, int]:
                near = {(spot[0] + dr, spot[1] + dc) for dr, dc in DIR_VECTORS}
                return spot in used, len((near & bays) - {bay})

            best = min(options, key=clash)
            used.add(best)
            spots.append(best)
        return spots

    def _draw_panel_static(self, bg, snap: dict[str, Any]) -> None:
        x0 = self.map_size[0] + 12
        bg.blit(self._text("Trip card", 26), (x0, 10))
        card = self._digit_surface(snap["images"][0], 84, COLOR_CARD_BG)
        self.pg.draw.rect(bg, COLOR_STOP, (x0 - 3, 37, 90, 90), border_radius=4)
        bg.blit(card, (x0, 40))
        bg.blit(self._text(f"true: {snap['card']}", 20), (x0 + 96, 50))
        if snap["card_read"] is not None:
            label, conf = snap["card_read"]
            ok = label == snap["card"]
            bg.blit(self._text(f"read: {label}", 20, COLOR_GOOD if ok else COLOR_BAD), (x0 + 96, 72))
            bg.blit(self._text(f"conf: {conf:.0%}", 20, COLOR_GOOD if ok else COLOR_BAD), (x0 + 96, 94))
        else:
            bg.blit(self._text(f"({snap['obs_mode']})", 16), (x0 + 96, 74))
        reads = snap["sign_reads"]
        if reads is not None:
            y0 = self.size[1] - 100
            bg.blit(self._text("Signs  true: read (conf)", 16), (x0, y0))
            for i, (number, (label, conf)) in enumerate(zip(snap["numbers"], reads, strict=True)):
                color = COLOR_GOOD if label == number else COLOR_BAD
                pos = (x0 + 2 + 96 * (i // 5), y0 + 17 + 16 * (i % 5))
                bg.blit(self._text(f"{number}: {label} ({conf:.0%})", 16, color), pos)

    # ---- per frame -----------------------------------------------------------------------------------
    def render(self, snap: dict[str, Any]) -> npt.NDArray[np.uint8] | None:
        """Draws ``snap``; returns a fresh (H, W, 3) uint8 frame (None once the window was closed)."""
        if self.closed:
            return None
        pg, t, model, s = self.pg, self.tile, self.model, self.surface
        if snap["episode"] != self._bg_key:
            self._bg, self._bg_key = self._background(snap), snap["episode"]
        s.blit(self._bg, (0, 0))
        phase = snap["phase"]
        if model.params.green_steps:
            for (r, c), axis in zip(model.params.gmap.intersections, model.light_axis[:, phase], strict=True):
                ns, ew = (COLOR_GREEN, COLOR_RED) if axis == AXIS_NS else (COLOR_RED, COLOR_GREEN)
                x, y = c * t, r * t
                pg.draw.rect(s, ns, (x + 6, y + 1, t - 12, 4))  # stop lines at the north and south entries
                pg.draw.rect(s, ns, (x + 6, y + t - 5, t - 12, 4))
                pg.draw.rect(s, ew, (x + 1, y + 6, 4, t - 12))  # and at the west and east entries
                pg.draw.rect(s, ew, (x + t - 5, y + 6, 4, t - 12))
        for r, c, heading in model.car_positions(phase):
            self._draw_car(r, c, heading, COLOR_CAR)
        r, c, heading = snap["ego"]
        self._draw_car(r, c, heading, COLOR_EGO)
        self._draw_panel_dynamic(snap)
        frame = self._frame()
        if self.window is not None:
            self._show()
        return frame

    def _frame(self) -> npt.NDArray[np.uint8]:
        """A copy of the surface's pixels. The buffer locks the surface until it is released on return."""
        w, h = self.size
        rows = np.frombuffer(self.surface.get_buffer(), np.uint8).reshape(h, self.surface.get_pitch())
        return rows[:, : 3 * w].reshape(h, w, 3).copy()  # rows may be padded past 3 * w bytes

    def _draw_car(self, r: int, c: int, heading: int, color) -> None:
        pg, t = self.pg, self.tile
        long, short = int(t * 0.8), int(t * 0.5)
        vertical = heading % 2 == 0
        body = pg.Rect(0, 0, short if vertical else long, long if vertical else short)
        body.center = (c * t + t // 2, r * t + t // 2)
        pg.draw.rect(self.surface, color, body, border_radius=6)
        dr, dc = DIR_VECTORS[heading]
        # Windscreen towards the front, so the heading reads at a glance.
        wx, wy = body.centerx + dc * long // 5, body.centery + dr * long // 5
        ws = pg.Rect(0, 0, short - 8 if vertical else 6, 6 if vertical else short - 8)
        ws.center = (wx, wy)
        pg.draw.rect(self.surface, (230, 240, 255), ws, border_radius=2)

    def _draw_panel_dynamic(self, snap: dict[str, Any]) -> None:
        s, x0 = self.surface, self.map_size[0] + 12
        s.blit(self._text(f"step {snap['steps']}", 20), (x0, 140))
        s.blit(self._text(f"return {snap['return']:+.2f}", 20), (x0 + 86, 140))
        last = snap["last"]
        if last is not None:
            action, terms, event = last
            s.blit(self._text(f"{Action(action).name} -> {HEADING_NAMES[snap['ego'][2]]}", 20), (x0, 162))
            y = 184
            for name in REWARD_TERMS:
                if terms[name]:
                    s.blit(self._text(f"{name} {terms[name]:+.2f}", 16), (x0, y))
                    y += 15
            if event:
                good = event == "arrived"
                s.blit(
                    self._text(event.replace("_", " ").upper(), 26, COLOR_GOOD if good else COLOR_BAD),
                    (x0 + 96, 184),
                )

    # ---- window --------------------------------------------------------------------------------------
    def _show(self) -> None:
        pg = self.pg
        pg.event.pump()  # keep the window responsive even when nobody reads events
        if pg.event.peek(pg.QUIT):
            self.close()
            return
        self.window.blit(self.surface, (0, 0))
        pg.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.window is not None:
            self.pg.display.quit()
            self.window = None
        self.closed = True

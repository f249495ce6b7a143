"""The pygame viewer of GridDriving: draws a scene snapshot; never touches the env or its dynamics.

The picture is laid out to fit a box (``window_size``, default 1280x720: 80 px cells on the default map) and
drawn at that size: every length is a multiple of the cell size, fonts included, so a bigger window is
crisper, not blurrier. The static picture of an episode (city, stop signs with their handwritten digits, the
trip card) is drawn once into a cached surface; each frame blits it and draws the lights, cars, the last
step's event and the panel text. Events are drawn, not just named: a collision shows both cars and a crash
mark where they met, a red light the intersection entered on red, a stop the sign stopped at (what it shows,
what the reader read on it) and, after a wrong stop, the stop the card asked for.

pygame is imported only here (through :mod:`perceptgym.envs.viewer`), and only ``pygame.display`` for a window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

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
from perceptgym.envs.viewer import (
    DEFAULT_WINDOW_SIZE,
    TextCache,
    Window,
    import_pygame,
    rgb_surface,
    surface_frame,
)

UNIT = 40  # [px] the cell size the panel's layout is written for; everything scales with tile / UNIT
PANEL_CELLS = 5.25  # side panel width [cells]
MIN_ROWS = 9  # the panel needs 9 cells of height, whatever the map
MIN_TILE = 12  # [px] below this nothing is legible
COLOR_CRASH = (255, 196, 30)  # the crash mark
COLOR_CRASH_EDGE = (200, 40, 20)
COLOR_DIM = (150, 150, 160)
COLOR_EVENT_BG = (44, 48, 58)  # the event box
EVENT_TITLES = {"collision": "COLLISION", "red_light": "RED LIGHT", "wrong_stop": "WRONG STOP", "arrived": "ARRIVED"}


def layout_tile(shape: tuple[int, int], box: tuple[int, int]) -> int:
    """The cell size [px] at which a map of ``shape`` (rows, cols) and the panel fit in ``box`` (w, h)."""
    h, w = shape
    tile = int(min(box[0] / (w + PANEL_CELLS), box[1] / max(h, MIN_ROWS)))
    size = frame_size(shape, tile)
    if size[0] > box[0] or size[1] > box[1]:  # rounding up to even sides went past an odd box
        tile -= 1
    if tile < MIN_TILE:
        need = (int(np.ceil(MIN_TILE * (w + PANEL_CELLS))) + 1, MIN_TILE * max(h, MIN_ROWS) + 1)
        raise ValueError(f"window_size {box} is too small for a {h}x{w} map: it needs at least {need}")
    return tile


def frame_size(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """(width, height) [px] of the frame at ``tile`` px cells, rounded up to even sides (H.264 needs them)."""
    h, w = shape
    width, height = w * tile + round(PANEL_CELLS * tile), max(h, MIN_ROWS) * tile
    return width + width % 2, height + height % 2


class GridRenderer:
    """Renders snapshots (``GridDrivingEnv.snapshot()``) to (H, W, 3) uint8 frames, optionally in a window.

    Args:
        model: the compiled world (map, traffic, lights) the snapshots come from.
        window_size: (width, height) [px] the frame fits in, aspect ratio kept; None: 1280x720.
        window: show the frames in a resizable window (``human`` mode); a resize re-lays the picture out.
        fps: frames per second of the window.
    """

    def __init__(
        self, model: DrivingModel, window_size: tuple[int, int] | None = None, window: bool = False, fps: int = 8
    ):
        pg = self.pg = import_pygame("render GridDriving")
        pg.font.init()
        self.model, self.fps = model, fps
        self._road = model.params.gmap.road
        self._stop_cells = [(r, c) for r, c, _ in model.params.gmap.stops]
        self._signs = self._sign_spots()
        self._seen: tuple[Any, int, tuple[int, int, int]] | None = None  # (episode, steps, ego) last drawn
        self.size: tuple[int, int] = (0, 0)
        self.resize(window_size)
        self.window: Window | None = None
        self.closed = False
        if window:
            self.window = Window("perceptgym GridDriving", self.size)

    # ---- layout --------------------------------------------------------------------------------------
    def resize(self, box: tuple[int, int] | None) -> None:
        """Lays the picture out to fit ``box`` (w, h) [px; None: the default]; the next frame is drawn at it."""
        box = box or DEFAULT_WINDOW_SIZE
        h, w = self.model.params.gmap.shape
        t = layout_tile((h, w), box)
        if self.size != (0, 0) and t == self.tile:
            return
        self.tile, self.u = t, t / UNIT
        self.map_size = (w * t, h * t)
        self.size = frame_size((h, w), t)
        self.panel_x = self.map_size[0] + self.s(12)
        self.surface = rgb_surface(self.size)
        self._bg, self._bg_key = None, None
        self._dirty: list[Any] | None = None  # what the last frame drew over the background; None: everything
        x0 = self.panel_x - self.s(6)
        self._panel_rect = self.pg.Rect(x0, self.s(118), self.size[0] - x0, self.s(140))  # the panel's live part
        self._texts = TextCache(self.surface)

    def s(self, x: float) -> int:
        """``x`` panel units in pixels (one unit is a pixel at 40 px cells)."""
        return round(x * self.u)

    def _text(self, text: str, size: int = 20, color: tuple[int, int, int] = COLOR_TEXT, background=COLOR_PANEL):
        """``text`` at ``size`` panel units, on ``background`` (the panel's unless told)."""
        return self._texts(text, max(8, self.s(size)), color, background)

    def _digit_surface(self, image: npt.NDArray[np.uint8], size: int, bg=COLOR_SIGN_BG):
        rgb = ink_on(bg, image)
        surf = self.pg.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
        return self.pg.transform.smoothscale(surf, (size, size))

    def _cell_rect(self, r: int, c: int, inset: int = 0):
        t = self.tile
        return self.pg.Rect(c * t + inset, r * t + inset, t - 2 * inset, t - 2 * inset)

    def _center(self, r: float, c: float) -> tuple[float, float]:
        t = self.tile
        return c * t + t / 2, r * t + t / 2

    # ---- static background ---------------------------------------------------------------------------
    def _background(self, snap: dict[str, Any]):
        pg, t, s = self.pg, self.tile, self.s
        bg = rgb_surface(self.size)
        bg.fill(COLOR_PANEL)
        road = self._road
        h, w = road.shape
        lane = max(1, s(2))
        for r in range(h):
            for c in range(w):
                if not road[r, c]:
                    pg.draw.rect(bg, COLOR_GRASS, self._cell_rect(r, c))
                    pg.draw.rect(bg, COLOR_BUILDING, self._cell_rect(r, c, s(5)), border_radius=s(4))
                    continue
                pg.draw.rect(bg, COLOR_ROAD, self._cell_rect(r, c))
                horiz, vert = road[r, c - 1] or road[r, c + 1], road[r - 1, c] or road[r + 1, c]
                x, y = c * t, r * t
                if horiz and not vert:  # dashed centre line on straight roads only
                    pg.draw.line(bg, COLOR_LANE, (x + t // 8, y + t // 2), (x + 3 * t // 8, y + t // 2), lane)
                    pg.draw.line(bg, COLOR_LANE, (x + 5 * t // 8, y + t // 2), (x + 7 * t // 8, y + t // 2), lane)
                elif vert and not horiz:
                    pg.draw.line(bg, COLOR_LANE, (x + t // 2, y + t // 8), (x + t // 2, y + 3 * t // 8), lane)
                    pg.draw.line(bg, COLOR_LANE, (x + t // 2, y + 5 * t // 8), (x + t // 2, y + 7 * t // 8), lane)
        images = snap["images"]
        frame = max(1, s(1))  # thin: at 80 px cells the digit is 76 px, 2 cm at 96 dpi
        for k, ((r, c), (sr, sc)) in enumerate(zip(self._stop_cells, self._signs, strict=True)):
            pg.draw.rect(bg, COLOR_STOP, self._cell_rect(r, c, 1), max(2, s(3)))  # the stop bay
            rect = self._cell_rect(sr, sc, frame)  # the sign: its digit fills the cell inside a thin frame
            pg.draw.rect(bg, COLOR_STOP, rect.inflate(2 * frame, 2 * frame), border_radius=frame)
            bg.blit(self._digit_surface(images[k + 1], rect.width), rect)
        self._draw_panel_static(bg, snap)
        return bg

    def _sign_spots(self) -> list[tuple[int, int]]:
        """Where each stop's sign stands: a building next to its bay, touching no other bay if possible."""
        road, bays = self._road, set(self._stop_cells)
        used: set[tuple[int, int]] = set()
        spots = []
        for r, c in self._stop_cells:
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
        s, x0 = self.s, self.panel_x
        bg.blit(self._text("Trip card", 22), (x0, s(8)))
        self.pg.draw.rect(bg, COLOR_STOP, (x0 - s(3), s(30), s(82), s(82)), border_radius=s(4))
        bg.blit(self._digit_surface(snap["images"][0], s(76), COLOR_CARD_BG), (x0, s(33)))
        xr = x0 + s(90)
        bg.blit(self._text(f"true {snap['card']}", 22), (xr, s(40)))
        if snap["card_read"] is not None:
            label, conf = snap["card_read"]
            color = COLOR_GOOD if label == snap["card"] else COLOR_BAD
            bg.blit(self._text(f"read {label}", 22, color), (xr, s(63)))
            bg.blit(self._text(f"{conf:.0%} sure", 18, color), (xr, s(86)))
        else:
            bg.blit(self._text(f"({snap['obs_mode']})", 16, COLOR_DIM), (xr, s(66)))
        reads = snap["sign_reads"]
        if reads is not None:
            y0 = self.size[1] - s(100)
            bg.blit(self._text("Signs  true: read (conf)", 16), (x0, y0))
            for i, (number, (label, conf)) in enumerate(zip(snap["numbers"], reads, strict=True)):
                color = COLOR_GOOD if label == number else COLOR_BAD
                pos = (x0 + s(2) + s(96) * (i // 5), y0 + s(17) + s(16) * (i % 5))
                bg.blit(self._text(f"{number}: {label} ({conf:.0%})", 16, color), pos)

    # ---- per frame -----------------------------------------------------------------------------------
    def render(self, snap: dict[str, Any]) -> npt.NDArray[np.uint8] | None:
        """Draws ``snap``; returns a fresh (H, W, 3) uint8 frame (None once the window was closed)."""
        if self.closed:
            return None
        if self.window is not None:
            self.window.poll()  # first: a resize re-lays out this very frame
            if self.window.closed:
                self.close()
                return None
            if self.window.content_size != self.size:
                self.resize(self.window.content_size)
        pg, t, model, s = self.pg, self.tile, self.model, self.surface
        if snap["episode"] != self._bg_key:
            self._bg, self._bg_key, self._dirty = self._background(snap), snap["episode"], None
        if self._dirty is None:  # a new background or surface: all of it
            s.blit(self._bg, (0, 0))
        else:  # only what the last frame drew over it (cars, marks, the panel's changing part)
            for rect in self._dirty:
                s.blit(self._bg, rect, rect)
        self._dirty = [self._panel_rect]
        phase = snap["phase"]
        if model.params.green_steps:
            for (r, c), axis in zip(model.params.gmap.intersections, model.light_axis[:, phase], strict=True):
                ns, ew = (COLOR_GREEN, COLOR_RED) if axis == AXIS_NS else (COLOR_RED, COLOR_GREEN)
                x, y = c * t, r * t
                m, d = self.s(6), max(2, self.s(4))
                pg.draw.rect(s, ns, (x + m, y + 1, t - 2 * m, d))  # stop lines at the north and south entries
                pg.draw.rect(s, ns, (x + m, y + t - 1 - d, t - 2 * m, d))
                pg.draw.rect(s, ew, (x + 1, y + m, d, t - 2 * m))  # and at the west and east entries
                pg.draw.rect(s, ew, (x + t - 1 - d, y + m, d, t - 2 * m))
        event = self._event(snap)
        crash = self._crash(snap) if event == "collision" else None
        for k, (r, c, heading) in enumerate(model.car_positions(phase)):
            if crash is None or k != crash[0]:
                self._draw_car(self._center(r, c), heading, COLOR_CAR)
        if crash is None:
            r, c, heading = snap["ego"]
            self._draw_car(self._center(r, c), heading, COLOR_EGO)
        else:
            self._draw_crash(snap, *crash)
        self._draw_event_marks(snap, event)
        self._draw_panel_dynamic(snap, event)
        self._seen = (snap["episode"], snap["steps"], snap["ego"])
        frame = surface_frame(s)
        if self.window is not None:
            self.window.show(s, scale=False)
            self.window.tick(self.fps)
        return frame

    @staticmethod
    def _event(snap: dict[str, Any]) -> str:
        """The last step's event: collision, wrong_stop, arrived, red_light or ""."""
        last = snap["last"]
        if last is None:
            return ""
        _, terms, event = last
        return event or ("red_light" if terms["red_light"] else "")

    def _draw_car(self, center: tuple[float, float], heading: int, color, scale: float = 1.0) -> None:
        pg, t = self.pg, self.tile
        long, short = round(t * 0.8 * scale), round(t * 0.5 * scale)
        vertical = heading % 2 == 0
        body = pg.Rect(0, 0, short if vertical else long, long if vertical else short)
        body.center = (round(center[0]), round(center[1]))
        self._dirty.append(pg.draw.rect(self.surface, color, body, border_radius=max(2, round(long / 5))))
        dr, dc = DIR_VECTORS[heading]
        # Windscreen towards the front, so the heading reads at a glance.
        wx, wy = body.centerx + dc * long // 5, body.centery + dr * long // 5
        thick = max(3, round(long * 0.19))
        ws = pg.Rect(0, 0, short - 2 * thick // 3 - 4 if vertical else thick, thick if vertical else short - 4)
        ws.center = (wx, wy)
        pg.draw.rect(self.surface, (230, 240, 255), ws, border_radius=2)

    # ---- events --------------------------------------------------------------------------------------
    def _crash(self, snap: dict[str, Any]) -> tuple[int, tuple[int, int], tuple[int, int]] | None:
        """(index of the car hit, where the ego came from, where that car came from), cells.

        The other car is either in the ego's cell (it drove in, or the ego did) or, after a head-on swap, in
        the cell the ego just left. Where the ego came from is known when the previous step was drawn too;
        otherwise FORWARD means it came from behind.
        """
        r, c, heading = snap["ego"]
        action = snap["last"][0]
        dr, dc = DIR_VECTORS[heading]
        behind = (r - dr, c - dc)
        seen = self._seen
        if seen is not None and seen[0] == snap["episode"] and seen[1] == snap["steps"] - 1:
            came = tuple(seen[2][:2])
        else:
            came = behind if action == Action.FORWARD and self._road[behind] else (r, c)
        phase, period = snap["phase"], self.model.period
        now = self.model.car_positions(phase)
        before = self.model.car_positions((phase - 1) % period)
        for k, (cr, cc, _) in enumerate(now):
            if (cr, cc) == (r, c):
                return k, came, before[k][:2]
        for k, (cr, cc, _) in enumerate(now):
            if (cr, cc) == came and before[k][:2] == (r, c):  # head-on: they swapped cells
                return k, came, (r, c)
        return None  # not drawn as a pair (cannot happen with the env's dynamics)

    def _draw_crash(self, snap: dict[str, Any], k: int, ego_from: tuple[int, int], car_from: tuple[int, int]):
        """Both cars, each pulled back towards where it came from, and a crash mark where they meet."""
        r, c, heading = snap["ego"]
        car_r, car_c, car_heading = self.model.car_positions(snap["phase"])[k]
        t = self.tile
        if (car_r, car_c) == (r, c):  # same cell: it is the crash site
            ego_dir = np.subtract(ego_from, (r, c))
            car_dir = np.subtract(car_from, (r, c))
            if not ego_dir.any():  # the ego stood still: it is ahead of the car that drove into it
                ego_dir = -car_dir
            if (ego_dir == car_dir).all():
                ego_dir = np.array([car_dir[1], -car_dir[0]])
            site = np.array(self._center(r, c))
            ego_at = site + ego_dir[::-1] * 0.3 * t
            car_at = site + car_dir[::-1] * 0.3 * t
            cells = [(r, c)]
        else:  # head-on swap: they met on the border between the two cells
            ego_at = np.array(self._center(r, c)) + np.subtract(ego_from, (r, c))[::-1] * 0.15 * t
            car_at = np.array(self._center(car_r, car_c)) + np.subtract((r, c), (car_r, car_c))[::-1] * 0.15 * t
            site = (ego_at + car_at) / 2
            cells = [(r, c), (car_r, car_c)]
        for cell in cells:
            rect = self._cell_rect(*cell)
            self._dirty.append(self.pg.draw.rect(self.surface, COLOR_CRASH_EDGE, rect, max(2, self.s(3)), self.s(4)))
        # Each car faces the way it was going, so their fronts meet at the crash mark.
        car_facing = DIR_VECTORS.index(tuple(-np.asarray(car_dir))) if (car_r, car_c) == (r, c) else car_heading
        self._draw_car(tuple(car_at), car_facing, COLOR_CAR, 0.75)
        self._draw_car(tuple(ego_at), heading, COLOR_EGO, 0.75)
        self._draw_star(site, 0.15 * t)

    def _draw_star(self, center, radius: float) -> None:
        """A jagged crash mark: a 9-point star, yellow with a red rim."""
        n = 9
        angles = np.arange(2 * n) * np.pi / n + 0.3
        radii = np.where(np.arange(2 * n) % 2 == 0, radius, radius * 0.45)
        pts = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], axis=1)
        points = [tuple(p) for p in pts.round().astype(int).tolist()]
        self._dirty.append(self.pg.draw.polygon(self.surface, COLOR_CRASH, points))
        self._dirty.append(self.pg.draw.polygon(self.surface, COLOR_CRASH_EDGE, points, max(1, self.s(1.5))))

    def _stop_index(self, snap: dict[str, Any]) -> int:
        r, c, _ = snap["ego"]
        return self._stop_cells.index((r, c)) if (r, c) in self._stop_cells else -1

    def _outline_stop(self, k: int, color, width: int) -> None:
        pg = self.pg
        r, c = self._stop_cells[k]
        sr, sc = self._signs[k]
        sign = self._cell_rect(sr, sc).inflate(width, width)
        self._dirty.append(pg.draw.rect(self.surface, color, self._cell_rect(r, c), width, border_radius=self.s(4)))
        self._dirty.append(pg.draw.rect(self.surface, color, sign, width, border_radius=self.s(4)))

    def _draw_event_marks(self, snap: dict[str, Any], event: str) -> None:
        pg, s = self.pg, self.s
        if event in ("arrived", "wrong_stop"):
            k = self._stop_index(snap)
            if k >= 0:
                self._outline_stop(k, COLOR_GOOD if event == "arrived" else COLOR_BAD, max(3, s(4)))
            if event == "wrong_stop" and snap["card"] in snap["numbers"]:
                self._outline_stop(snap["numbers"].index(snap["card"]), COLOR_GOOD, max(2, s(2)))
        red = snap["last"] is not None and snap["last"][1]["red_light"]
        if red:  # the intersection entered on red: the stop line crossed, and a traffic light showing red
            r, c, heading = snap["ego"]
            t = self.tile
            outline = self._cell_rect(r, c)
            self._dirty.append(pg.draw.rect(self.surface, COLOR_RED, outline, max(3, s(4)), border_radius=s(4)))
            dr, dc = DIR_VECTORS[heading]
            cx, cy = self._center(r, c)
            ex, ey = cx - dc * t / 2, cy - dr * t / 2  # the middle of the edge it came in by
            d, span = max(4, s(7)), t - 2 * s(4)
            line = pg.Rect(0, 0, d if dc else span, span if dc else d)
            line.center = (round(ex), round(ey))
            self._dirty.append(pg.draw.rect(self.surface, COLOR_RED, line))
            # the light itself stands beside that stop line, on the car's right, off the road
            side = (-dr, dc)  # right of the heading (dc, dr) on screen, y pointing down
            box = pg.Rect(0, 0, s(14), s(30))
            box.center = (round(ex - dc * s(10) + side[0] * 0.62 * t), round(ey - dr * s(10) + side[1] * 0.62 * t))
            self._dirty.append(pg.draw.rect(self.surface, (25, 25, 28), box, border_radius=s(3)))
            for i, color in enumerate((COLOR_RED, (70, 60, 30), (30, 60, 35))):
                pg.draw.circle(self.surface, color, (box.centerx, box.y + s(6) + i * s(9)), max(2, s(4)))

    def _draw_panel_dynamic(self, snap: dict[str, Any], event: str) -> None:
        pg, surf, s, x0 = self.pg, self.surface, self.s, self.panel_x
        surf.blit(self._text(f"step {snap['steps']}", 20), (x0, s(122)))
        surf.blit(self._text(f"return {snap['return']:+.2f}", 20), (x0 + s(78), s(122)))
        last = snap["last"]
        if last is None:
            return
        action, terms, _ = last
        surf.blit(self._text(f"{Action(action).name}, facing {HEADING_NAMES[snap['ego'][2]]}", 20), (x0, s(144)))
        box = pg.Rect(x0 - s(5), s(166), self.size[0] - x0 - s(7), s(86))
        lines: list[tuple[str, tuple[int, int, int]]] = []
        if not event:
            for name in REWARD_TERMS:
                if terms[name]:
                    lines.append((f"{name} {terms[name]:+.2f}", COLOR_DIM))
            for i, (text, color) in enumerate(lines):
                surf.blit(self._text(text, 16, color), (x0, box.y + s(6) + i * s(16)))
            return
        good = event == "arrived"
        color = COLOR_GOOD if good else COLOR_BAD
        pg.draw.rect(surf, COLOR_EVENT_BG, box, border_radius=s(6))
        pg.draw.rect(surf, color, box, max(2, s(2)), border_radius=s(6))
        surf.blit(self._text(EVENT_TITLES[event], 24, color, COLOR_EVENT_BG), (x0, box.y + s(6)))
        x, y = x0, box.y + s(30)
        if event in ("arrived", "wrong_stop") and self._stop_index(snap) >= 0:
            k = self._stop_index(snap)
            size = s(48)
            pg.draw.rect(surf, color, (x - s(2), y - s(2), size + s(4), size + s(4)), border_radius=s(2))
            surf.blit(self._digit_surface(snap["images"][k + 1], size), (x, y))
            x += size + s(8)
            number = snap["numbers"][k]
            lines.append((f"sign {number}", COLOR_TEXT))
            if snap["sign_reads"] is not None:
                label, conf = snap["sign_reads"][k]
                lines.append((f"read {label} ({conf:.0%})", COLOR_GOOD if label == number else COLOR_BAD))
            lines.append((f"card {snap['card']}" + ("" if good else ": green stop"), COLOR_TEXT))
        elif event == "collision":
            lines.append(("hit a car", COLOR_TEXT))
            if terms["red_light"]:
                lines.append(("and ran a red light", COLOR_BAD))
        else:
            lines.append(("entered on red", COLOR_TEXT))
        lines.append((f"reward {sum(terms.values()):+.2f}", COLOR_DIM))
        for i, (text, c) in enumerate(lines):
            surf.blit(self._text(text, 16, c, COLOR_EVENT_BG), (x, y + i * s(13.5)))

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window = None
        self.closed = True

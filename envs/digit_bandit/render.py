"""The pygame viewer of DigitBandit: the digit shown, the true label, the agent's choice, the running regret.

Laid out to fit a box (``window_size``, default 960x540) and drawn at that size, like GridDriving's viewer.
The answer row shows the ten labels: the agent's choice filled (green when rewarded, red when not) and the
rewarded label outlined. pygame is imported only when a frame is first drawn, so the env imports and
pickles without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from perceptgym.envs.viewer import TextCache, Window, import_pygame, rgb_surface, surface_frame

BASE = (480, 270)  # [units] the layout; one unit is a pixel at 480x270, and everything scales with the box
#: One digit needs less room than a city: 960x540 shows it 476 px tall (12 cm at 96 dpi) and fits any laptop.
DEFAULT_WINDOW_SIZE = (960, 540)
MIN_UNIT = 0.5  # below 240x135 nothing is legible
BACKGROUND, INK, RIGHT, WRONG, MUTED, BOX = (
    (24, 26, 33),
    (235, 235, 235),
    (90, 200, 110),
    (230, 90, 80),
    (150, 150, 160),
    (52, 56, 68),
)


def frame_size(unit: float) -> tuple[int, int]:
    """(width, height) [px] at ``unit`` px per layout unit, rounded up to even sides (H.264 needs them)."""
    w, h = round(BASE[0] * unit), round(BASE[1] * unit)
    return w + w % 2, h + h % 2


class DigitBanditRenderer:
    """Draws frames from :meth:`DigitBanditEnv.snapshot` dicts; owns the window in ``human`` mode."""

    def __init__(self, window_size: tuple[int, int] | None = None, window: bool = False, render_fps: int = 4) -> None:
        self.pg = import_pygame("render DigitBandit")
        self.pg.font.init()
        self.fps = render_fps
        self.size: tuple[int, int] = (0, 0)
        self.resize(window_size)
        self.window = Window("perceptgym DigitBandit", self.size) if window else None
        self.closed = False

    def resize(self, box: tuple[int, int] | None) -> None:
        """Lays the picture out to fit ``box`` (w, h) [px; None: the default]; the next frame is drawn at it."""
        box = box or DEFAULT_WINDOW_SIZE
        unit = min(box[0] / BASE[0], box[1] / BASE[1])
        size = frame_size(unit)
        if size[0] > box[0] or size[1] > box[1]:  # rounding up to even sides went past an odd box
            unit -= 1 / BASE[1]
            size = frame_size(unit)
        if unit < MIN_UNIT:
            need = frame_size(MIN_UNIT)
            raise ValueError(f"window_size {box} is too small for DigitBandit: it needs at least {need}")
        if size == self.size:
            return
        self.u, self.size = unit, size
        self.surface = rgb_surface(size)
        self._texts = TextCache(self.surface, limit=512)
        self._bg = None
        self._shown = None  # the digit surface on self.surface now
        self._digit: tuple[bytes, Any] | None = None  # the last digit drawn, scaled: one scaling per round

    def s(self, x: float) -> int:
        return round(x * self.u)

    def _text(self, text: str, size: float, color, background=BACKGROUND) -> Any:
        return self._texts(text, max(8, self.s(size)), color, background)

    def render(self, snap: dict[str, Any]) -> npt.NDArray[np.uint8] | None:
        """Draws ``snap``; returns a fresh (H, W, 3) uint8 frame (None once the window was closed)."""
        if self.closed:
            return None
        if self.window is not None:
            self.window.poll()
            if self.window.closed:
                self.close()
                return None
            if self.window.content_size != self.size:
                self.resize(self.window.content_size)
        self.draw(snap)
        frame = surface_frame(self.surface)
        if self.window is not None:
            self.window.show(self.surface, scale=False)
            self.window.tick(self.fps)
        return frame

    # Layout [units]: the digit on the left, the text column from x = 272, the answer row at y = 130.
    ROW_Y = 130

    def _static(self):
        """What every frame shares at this size: background, the digit's frame, the answer row's ten boxes."""
        if self._bg is None:
            pg, s = self.pg, self.s
            bg = self._bg = rgb_surface(self.size)
            bg.fill(BACKGROUND)
            side = s(238)
            pg.draw.rect(bg, BOX, (s(12), s(12), side + s(8), side + s(8)), border_radius=s(4))
            bg.blit(self._text("agent chose", 18, MUTED), (s(272), s(self.ROW_Y - 20)))
            for k in range(10):
                rect = self._answer_box(k)
                pg.draw.rect(bg, BOX, rect, border_radius=s(3))
                label = self._text(str(k), 20, INK, BOX)
                bg.blit(label, label.get_rect(center=rect.center))
        return self._bg

    def _answer_box(self, k: int):
        s = self.s
        w, gap = 17.6, 2.0
        return self.pg.Rect(s(272 + k * (w + gap)), s(self.ROW_Y), s(w), s(28))

    def draw(self, snap: dict[str, Any]) -> None:
        pg, surf, s = self.pg, self.surface, self.s
        x, y = s(272), s(14)
        # Only what changed is redrawn: the digit when it is another one, and the text column every frame.
        if self._shown is None:  # a new surface: everything once
            surf.blit(self._static(), (0, 0))
        digit = self._digit_surface(snap["image"], s(238))
        if self._shown is not digit:
            surf.blit(digit, (s(16), s(16)))  # it covers its square: nothing under it to restore
            self._shown = digit
        column = pg.Rect(x - s(4), 0, self.size[0] - x + s(4), self.size[1])
        surf.blit(self._static(), column, column)
        surf.blit(self._text(f"round {snap['round'] + 1}", 18, MUTED), (x, y))
        y += s(22)
        surf.blit(self._text(f"true label {snap['label']}", 28, INK), (x, y))
        y += s(28)
        if snap["optimal_action"] != snap["label"]:  # a label permutation is in force: another label is rewarded
            surf.blit(self._text(f"rewarded answer {snap['optimal_action']}", 18, MUTED), (x, y))
            y += s(20)
        if snap["read"] is not None:
            label, conf = snap["read"]
            surf.blit(self._text(f"read as {label} ({conf:.0%})", 18, MUTED), (x, y))
        action, best = snap["action"], snap["optimal_action"]
        y = s(self.ROW_Y + 36)
        if action is None:
            surf.blit(self._text("answer: ?", 26, MUTED), (x, y))
        else:
            ok = action == best
            color = RIGHT if ok else WRONG
            rect = self._answer_box(action)
            pg.draw.rect(surf, color, rect, border_radius=s(3))
            label = self._text(str(action), 20, INK, color)
            surf.blit(label, label.get_rect(center=rect.center))
            pg.draw.rect(surf, RIGHT, self._answer_box(best).inflate(s(3), s(3)), max(2, s(2)), border_radius=s(4))
            result = f"{action}: {'right' if ok else 'wrong'}, reward {snap['reward']:+g}"
            surf.blit(self._text(result, 24, color), (x, y))
        y += s(34)
        regret = snap["cumulative_regret"]
        surf.blit(self._text(f"regret so far {regret:.1f}", 26, INK), (x, y))
        rounds = snap["round"] + (action is not None)
        if rounds:
            surf.blit(self._text(f"{regret / rounds:.3f} per round over {rounds}", 16, MUTED), (x, y + s(26)))

    def _digit_surface(self, image: npt.NDArray[np.uint8], side: int):
        img = np.asarray(image, dtype=np.uint8)
        key = img.tobytes()
        if self._digit is None or self._digit[0] != key:
            digit = self.pg.surfarray.make_surface(np.repeat(img.T[:, :, None], 3, axis=2))  # pygame is (W, H)
            scaled = self.pg.transform.smoothscale(digit, (side, side))
            self._digit = (key, scaled.convert(self.surface))  # same pixel format: a plain copy per blit
        return self._digit[1]

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window = None
        self.closed = True

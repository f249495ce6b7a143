"""What both envs' viewers share: frame sizes, a fast surface-to-frame copy and a resizable pygame window.

Sizes: every renderer lays its picture out to *fit inside* a box ``window_size = (width, height)`` [px],
keeping its aspect ratio, and draws it at that size (fonts and digits are drawn at the target size, never a
small frame scaled up). GridDriving's default box, 1280x720, fits a 1280x800 laptop screen with room for the
title bar and gives its default map 80 px cells: stop signs 76 px, 2 cm at 96 dpi (DigitBandit's is 960x540:
one digit needs less room). Frames always have even sides, which H.264 video (yuv420p) needs.

:class:`Window` shows frames: resizable (the picture is re-laid out for the new size by renderers that can,
scaled otherwise, and letterboxed to keep its aspect ratio), its event queue pumped on every frame, key
presses collected for programs (:meth:`Window.take_keys`) and an optional footer line (key help, status).
:class:`Viewer` puts any ``rgb_array`` env behind one; ``perceptgym watch`` and ``perceptgym play`` use it.

pygame is imported only when a window or a surface is made, and only ``pygame.display`` and ``pygame.font``
are initialised (never ``pygame.init()``, which would also start audio).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.error import DependencyNotInstalled

DEFAULT_WINDOW_SIZE = (1280, 720)  # [px] the box frames fit in by default
MIN_WINDOW_SIDE = 64  # [px] below this nothing is legible
RGB_MASKS = (0xFF, 0xFF00, 0xFF0000, 0)  # byte order R, G, B in memory: a surface's buffer *is* the frame
BORDER_COLOR = (16, 17, 21)  # letterbox bars and footer strip
FOOTER_COLOR = (205, 205, 210)


def import_pygame(what: str = "render"):
    try:
        import pygame
    except ImportError as e:  # pragma: no cover - pygame-ce is a core dependency
        raise DependencyNotInstalled(f'pygame is needed to {what}: pip install "pygame-ce"') from e
    return pygame


def check_window_size(value: Any, name: str = "window_size") -> tuple[int, int] | None:
    """``None`` or a (width, height) pair of ints >= MIN_WINDOW_SIDE [px]; a ValueError naming ``name`` otherwise."""
    if value is None:
        return None
    ok = not isinstance(value, str | bytes) and np.shape(value) == (2,)  # a tuple, a list (JSON), an array
    ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in value)
    if not ok or min(value) < MIN_WINDOW_SIDE:
        raise ValueError(
            f"{name} must be (width, height) in pixels, both >= {MIN_WINDOW_SIDE}, e.g. {DEFAULT_WINDOW_SIZE}; "
            f"got {value!r}"
        )
    return int(value[0]), int(value[1])


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest (width, height) with ``size``'s aspect ratio inside ``box``."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def rgb_surface(size: tuple[int, int]):
    """A 24-bit surface whose pixel buffer is laid out R, G, B (see :func:`surface_frame`)."""
    pg = import_pygame()
    return pg.Surface(size, 0, 24, RGB_MASKS)


def surface_frame(surface) -> npt.NDArray[np.uint8]:
    """A fresh (H, W, 3) uint8 copy of an :func:`rgb_surface`'s pixels, straight from its buffer.

    One memcpy instead of ``surfarray`` (which transposes), so a frame costs a fraction of a millisecond. The
    buffer locks the surface until it is released on return.
    """
    w, h = surface.get_size()
    rows = np.frombuffer(surface.get_buffer(), np.uint8).reshape(h, surface.get_pitch())
    return rows[:, : 3 * w].reshape(h, w, 3).copy()  # rows may be padded past 3 * w bytes


class TextCache:
    """Text surfaces at pixel sizes, cached (bounded: counters change every frame).

    Each is anti-aliased onto an opaque ``background`` and converted to the ``target`` surface's pixel
    format, so blitting it is a plain copy rather than a per-pixel alpha blend.
    """

    def __init__(self, target, limit: int = 1024) -> None:
        self.pg, self.target, self.limit = import_pygame(), target, limit
        self._fonts: dict[int, Any] = {}
        self._texts: dict[tuple[Any, ...], Any] = {}

    def __call__(self, text: str, px: int, color: tuple[int, int, int], background: tuple[int, int, int]):
        key = (text, px, color, background)
        surf = self._texts.get(key)
        if surf is None:
            if len(self._texts) >= self.limit:
                self._texts.clear()
            font = self._fonts.get(px)
            if font is None:
                font = self._fonts[px] = self.pg.font.Font(None, px)
            surf = self._texts[key] = font.render(text, True, color, background).convert(self.target)
        return surf


class Window:
    """A resizable pygame window that shows frames letterboxed, with an optional footer line of text.

    Call :meth:`poll` once per frame (``show`` does): it pumps the event queue, so the window never freezes,
    notes a close request (:attr:`closed`), a new size (:attr:`content_size`) and, with ``collect_keys``, key
    presses as ``pygame.key.name`` spells them (:meth:`take_keys`). Without ``collect_keys`` key events stay
    in pygame's queue for the caller to read.
    """

    def __init__(
        self,
        title: str,
        frame_size: tuple[int, int],
        *,
        footer: bool = False,
        collect_keys: bool = False,
    ) -> None:
        pg = self.pg = import_pygame("open a window")
        pg.display.init()
        pg.font.init()
        self._footer_on, self._collect = footer, collect_keys
        w, h = frame_size
        self.footer_height = _footer_height(h) if footer else 0
        self.surface = pg.display.set_mode((w, h + self.footer_height), pg.RESIZABLE)
        pg.display.set_caption(title)
        self.clock = pg.time.Clock()
        self.footer = ""
        self.closed = False
        self._keys: list[str] = []
        self._fonts: dict[int, Any] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.surface.get_size()

    @property
    def content_size(self) -> tuple[int, int]:
        """The box above the footer that a frame should fit in."""
        w, h = self.size
        return max(1, w), max(1, h - self.footer_height)

    def poll(self) -> None:
        """Pumps the event queue: close requests, resizes and (with ``collect_keys``) key presses."""
        if self.closed:
            return
        pg = self.pg
        wanted = [pg.QUIT, pg.WINDOWCLOSE, pg.VIDEORESIZE, pg.WINDOWSIZECHANGED]
        if self._collect:
            wanted.append(pg.KEYDOWN)
        pg.event.pump()
        resized = False
        for event in pg.event.get(wanted):
            if event.type in (pg.QUIT, pg.WINDOWCLOSE):
                self.closed = True
            elif event.type == pg.KEYDOWN:
                self._keys.append(pg.key.name(event.key))
            else:
                resized = True
        if resized and not self.closed:
            self.surface = pg.display.get_surface()  # SDL2 resizes the display surface itself
            if self._footer_on:
                h = self.size[1]
                self.footer_height = _footer_height(h - h // 29)

    def take_keys(self) -> list[str]:
        """The keys pressed since the last call, oldest first."""
        keys, self._keys = self._keys, []
        return keys

    def show(self, frame, *, scale: bool = True) -> None:
        """Draws ``frame`` (a pygame Surface or an (H, W, 3) uint8 array) centred in :attr:`content_size`.

        With ``scale`` a frame of another size is scaled to fit (keeping its aspect ratio); without, it is
        drawn as it is (renderers that re-lay out at :attr:`content_size` draw crisper than any scaling).
        """
        self.poll()
        if self.closed:
            return
        pg = self.pg
        if isinstance(frame, np.ndarray):
            data = np.ascontiguousarray(frame, dtype=np.uint8)
            frame = pg.image.frombuffer(data.tobytes(), (data.shape[1], data.shape[0]), "RGB")
        box, size = self.content_size, frame.get_size()
        if scale and size != box:
            size = fit(size, box)
            frame = pg.transform.smoothscale(frame, size)
        self.surface.fill(BORDER_COLOR)
        self.surface.blit(frame, ((box[0] - size[0]) // 2, (box[1] - size[1]) // 2))
        if self._footer_on and self.footer:
            self._draw_footer(box[1])
        pg.display.flip()

    def _draw_footer(self, y0: int) -> None:
        h = self.footer_height
        px = max(12, round(h * 0.8))
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = self.pg.font.Font(None, px)
        text = font.render(self.footer, True, FOOTER_COLOR)
        if text.get_width() > self.size[0] - 8:  # a narrow window: shrink the line rather than cut it
            text = self.pg.transform.smoothscale(
                text, (self.size[0] - 8, max(1, round(text.get_height() * (self.size[0] - 8) / text.get_width())))
            )
        self.surface.blit(text, ((self.size[0] - text.get_width()) // 2, y0 + (h - text.get_height()) // 2))

    def tick(self, fps: float) -> None:
        """Waits out the rest of this frame at ``fps`` frames per second."""
        self.clock.tick(fps)

    def close(self) -> None:
        if self.pg.display.get_init():
            self.pg.display.quit()
        self.closed = True


def _footer_height(frame_h: int) -> int:
    return max(18, round(frame_h / 28))


def set_window_size(env: gym.Env, size: tuple[int, int] | None) -> bool:
    """Makes one of our envs draw its next frames to fit ``size``; False for envs that cannot.

    For viewers whose window was resized: perceptgym's renderers re-lay out at the new size (crisp text and
    digits); other envs' frames are scaled by the :class:`Window` instead.
    """
    unwrapped = env.unwrapped
    if not hasattr(unwrapped, "_window_size"):
        return False
    size = check_window_size(size)
    unwrapped._window_size = size
    renderer = getattr(unwrapped, "_renderer", None)
    if renderer is not None:
        renderer.resize(size)  # None: the renderer's own default
    return True


class Viewer:
    """Shows an ``rgb_array`` env in a :class:`Window` that collects keys and has a footer line.

    The window opens at the size of the env's first frame (other envs' frames: scaled to fit ``window_size``
    if given). When it is resized, perceptgym's envs redraw at the new size (:func:`set_window_size`); other
    envs' frames are scaled.
    """

    def __init__(self, env: gym.Env, title: str = "perceptgym", window_size: tuple[int, int] | None = None) -> None:
        if env.render_mode != "rgb_array":
            raise ValueError(f"a Viewer shows rgb_array frames; the env has render_mode={env.render_mode!r}")
        self.env, self.title = env, title
        self.window: Window | None = None
        self.frame: npt.NDArray[np.uint8] | None = None
        self._box: tuple[int, int] | None = None
        self._relayout = hasattr(env.unwrapped, "_window_size")  # one of ours: it redraws at any size
        self._initial = check_window_size(window_size)  # for other envs: the window's first size

    @property
    def closed(self) -> bool:
        return self.window is not None and self.window.closed

    def draw(self, fps: float, footer: str = "") -> None:
        """Renders the env's current frame, shows it and waits out the frame at ``fps``; pumps events."""
        if self.closed:
            return
        if self.window is not None:
            self.window.poll()
            if self._relayout and self.window.content_size != self._box:
                self._box = self.window.content_size
                set_window_size(self.env, self._box)
        self.frame = np.asarray(self.env.render())
        if self.window is None:
            size = (self.frame.shape[1], self.frame.shape[0])
            if self._initial is not None and not self._relayout:
                size = fit(size, self._initial)
            self.window = Window(self.title, size, footer=True, collect_keys=True)
            self._box = self.window.content_size
        self.window.footer = footer
        self.window.show(self.frame, scale=not self._relayout)
        self.window.tick(fps)

    def take_keys(self) -> list[str]:
        """Keys pressed since the last call (the event queue is pumped first)."""
        if self.window is None:
            return []
        self.window.poll()
        return self.window.take_keys()

    def close(self) -> None:
        if self.window is not None:
            self.window.close()

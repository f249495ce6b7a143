"""Pygame drawing for DigitBandit: the digit enlarged, the answer given, the running regret.

pygame is imported only here and only when a frame is first drawn, so the env imports and pickles without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.error import DependencyNotInstalled

WIDTH, HEIGHT = 480, 256  # [px]
DIGIT_PX = 224  # the 28x28 digit is drawn 8x enlarged [px]
MARGIN = 16  # [px]
BACKGROUND, INK, RIGHT, WRONG, MUTED = (
    (24, 26, 33),
    (235, 235, 235),
    (90, 200, 110),
    (230, 90, 80),
    (150, 150, 160),
)


def _pygame():
    try:
        import pygame
    except ImportError as e:  # pragma: no cover - pygame-ce is a core dependency
        raise DependencyNotInstalled('pygame is needed to render DigitBandit: pip install "pygame-ce"') from e
    return pygame


class DigitBanditRenderer:
    """Draws frames from :meth:`DigitBanditEnv.snapshot` dicts; owns the window in ``human`` mode."""

    def __init__(self, render_fps: int = 4) -> None:
        pygame = _pygame()
        if not pygame.font.get_init():
            pygame.font.init()
        self._font = pygame.font.Font(None, 30)
        self._small = pygame.font.Font(None, 22)
        self._surface = pygame.Surface((WIDTH, HEIGHT))
        self._window = None
        self._clock = None
        self._fps = render_fps

    def draw(self, snap: dict[str, Any]) -> np.ndarray:
        """Returns the frame as an ``(HEIGHT, WIDTH, 3)`` uint8 array."""
        pygame = _pygame()
        surf = self._surface
        surf.fill(BACKGROUND)
        img = np.asarray(snap["image"], dtype=np.uint8)
        digit = pygame.surfarray.make_surface(np.repeat(img.T[:, :, None], 3, axis=2))  # pygame is (W, H)
        surf.blit(pygame.transform.scale(digit, (DIGIT_PX, DIGIT_PX)), (MARGIN, MARGIN))

        lines: list[tuple[str, tuple[int, int, int], Any]] = [(f"round {snap['round']}", MUTED, self._small)]
        lines.append((f"digit shown: {snap['label']}", INK, self._font))
        if snap["optimal_action"] != snap["label"]:  # a label permutation is in force
            lines.append((f"rewarded answer: {snap['optimal_action']}", MUTED, self._small))
        if snap["read"] is not None:
            label, conf = snap["read"]
            lines.append((f"read as {label} ({100 * conf:.0f}%)", MUTED, self._small))
        if snap["action"] is None:
            lines.append(("answer: ?", MUTED, self._font))
        else:
            ok = snap["action"] == snap["optimal_action"]
            lines.append((f"answer: {snap['action']} {'right' if ok else 'wrong'}", RIGHT if ok else WRONG, self._font))
            lines.append((f"reward {snap['reward']:+g}", INK, self._small))
        lines.append((f"regret so far: {snap['cumulative_regret']:.1f}", INK, self._font))
        x, y = 2 * MARGIN + DIGIT_PX, MARGIN
        for text, colour, font in lines:
            surf.blit(font.render(text, True, colour), (x, y))
            y += font.get_linesize() + 8
        return np.transpose(pygame.surfarray.array3d(surf), (1, 0, 2)).copy()

    def show(self, frame: np.ndarray) -> None:
        """Shows ``frame`` in a window (opened on first use), paced at ``render_fps``."""
        pygame = _pygame()
        if self._window is None:
            pygame.display.init()
            pygame.display.set_caption("perceptgym DigitBandit")
            self._window = pygame.display.set_mode((WIDTH, HEIGHT))
            self._clock = pygame.time.Clock()
        pygame.event.pump()
        self._window.blit(pygame.surfarray.make_surface(np.transpose(frame, (1, 0, 2))), (0, 0))
        pygame.display.flip()
        self._clock.tick(self._fps)

    def close(self) -> None:
        if self._window is not None:
            pygame = _pygame()
            pygame.display.quit()
            self._window = None

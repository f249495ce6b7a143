"""What every program shares: tyro parsing, and one clear error line with exit code 2 instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import tyro

T = TypeVar("T")

#: The errors a program turns into ``<prog>: error: <message>`` and exit code 2: bad settings and bad files
#: (every checkpoint and data error of the library derives from ValueError or OSError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


def run_program(
    body: Callable[[T], Any],
    args_type: type[T],
    argv: Sequence[str] | None,
    prog: str,
    *,
    on_interrupt: Callable[[T], str] | None = None,
) -> int:
    """Parses ``argv`` into ``args_type`` and calls ``body(args)``; returns the process exit code.

    ``body`` may return an int (the exit code) or anything else (success). Ctrl-C prints ``on_interrupt(args)``
    (what was saved, how to resume) and returns 130.
    """
    args = tyro.cli(
        args_type,
        args=None if argv is None else list(argv),
        prog=prog,
        description=sys.modules[body.__module__].__doc__,
    )
    try:
        result = body(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted" + (f": {on_interrupt(args)}" if on_interrupt else ""), file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0

"""What every program shares: tyro parsing, one clear error line with exit code 2 instead of a traceback, and a
safe import path.

* Bad settings and bad files (every checkpoint, data and settings error of the library is a ValueError or an
  OSError) print ``<prog>: error: <message>`` and return 2. Command-line parse errors (tyro's, naming the
  argument) are made one line the same way, exit code 2. An unexpected exception prints one line saying so and
  returns 1; ``--debug`` (anywhere on the command line, or ``PERCEPTGYM_DEBUG=1``) shows the traceback instead.
* ``python -m perceptgym.<program>`` puts the working directory first on ``sys.path``, so any module imported
  later (plug-ins, and the libraries imported lazily) could come from a ``.py`` in it, e.g. from inside a shared
  run directory. The programs run without it, as the ``perceptgym`` command does (``PYTHONPATH`` still works).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import tyro

if TYPE_CHECKING:
    from perceptgym.agents.playback import LoadedRun

T = TypeVar("T")

#: The errors a program turns into ``<prog>: error: <message>`` and exit code 2: bad settings and bad files
#: (every checkpoint and data error of the library derives from ValueError or OSError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)
DEBUG_FLAG = "--debug"


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
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("PERCEPTGYM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != DEBUG_FLAG]
    description = (sys.modules[body.__module__].__doc__ or "") + f"\n{DEBUG_FLAG}: show the traceback of an error."
    args = None
    with _without_working_directory():
        try:
            args = _parse(args_type, argv, prog, description)
            result = body(args)
        except _ParseError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        except SystemExit as e:  # tyro's --help (0), already printed
            if isinstance(e.code, str):
                print(f"{prog}: error: {e.code}", file=sys.stderr)
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except KeyboardInterrupt:
            note = on_interrupt(args) if on_interrupt is not None and args is not None else ""
            print(f"{prog}: interrupted" + (f": {note}" if note else ""), file=sys.stderr)
            return 130
        except USER_ERRORS as e:
            if debug:
                traceback.print_exc()
            print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        except Exception as e:
            if debug:
                raise
            print(
                f"{prog}: internal error ({type(e).__name__}: {_one_line(e)}); this is a bug, please report it "
                f"(rerun with {DEBUG_FLAG} for the traceback)",
                file=sys.stderr,
            )
            return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


class _ParseError(Exception):
    """A command line tyro refused, as one line."""


_BOX = "│╭╮╰╯─┃┏┓┗┛━"


def _parse(args_type: type[T], argv: list[str], prog: str, description: str) -> T:
    """``tyro.cli``, with its error box (a value it cannot parse, a check in ``__post_init__``) made one line.

    A flag given twice is refused: argparse keeps only the last one, so ``--set a=1 --set b=2`` would drop
    ``a=1`` without a word (every value of a several-valued flag goes after one flag: ``--set a=1 b=2``).
    """
    repeated = _repeated_flag(argv)
    if repeated is not None:
        raise _ParseError(
            f"{repeated} is given more than once; give it once (a flag that takes several values takes them all "
            f"after one {repeated}) (see {prog} --help)"
        )
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            args = tyro.cli(args_type, args=argv, prog=prog, description=description)
        sys.stderr.write(captured.getvalue())  # warnings tyro printed on the way, if any
        return args
    except SystemExit as e:
        text = captured.getvalue()
        if e.code in (0, None) or not text.strip():
            sys.stderr.write(text)
            raise
        lines = text.splitlines()
        if lines and lines[0].lstrip().startswith("╭"):  # the box's title ("Value error"): the text says it
            lines = lines[1:]
        words = [line.strip(_BOX + " ") for line in lines]
        kept = [w for w in words if w and not w.startswith("For full helptext")]
        raise _ParseError(" ".join(" ".join(kept).split()) + f" (see {prog} --help)") from None


def _repeated_flag(argv: Sequence[str]) -> str | None:
    """The first ``--flag`` that appears twice in ``argv`` (``--flag=value`` counts as ``--flag``), up to ``--``."""
    seen: set[str] = set()
    for token in argv:
        if token == "--":
            break
        if token.startswith("--") and len(token) > 2 and not token[2].isdigit():
            name = token.split("=", 1)[0]
            if name in seen:
                return name
            seen.add(name)
    return None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


@contextlib.contextmanager
def _without_working_directory() -> Iterator[None]:
    """Removes ``sys.path[0]`` while the program runs when it is the working directory (``python -m``)."""
    entry = sys.path[0] if sys.path else None
    local = entry is not None and Path(entry or ".").resolve() == Path.cwd().resolve()
    if local:
        del sys.path[0]
    try:
        yield
    finally:
        if local:
            sys.path.insert(0, entry)


def parse_json_object(text: str | None, setting: str) -> dict[str, Any] | None:
    """``--env-kwargs '{"a": 1}'`` -> ``{"a": 1}``, with an error naming the setting (None stays None)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{setting} {text!r} is not JSON ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"{setting} must be a JSON object such as '{{\"key\": 1}}', got {text!r}")
    return value


def parse_overrides(items: Sequence[str], setting: str = "--set") -> dict[str, Any]:
    """``("alpha=0.5", "net_arch=[64, 64]")`` -> ``{"alpha": 0.5, "net_arch": [64, 64]}`` (values are YAML)."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{setting} {item!r}: use key=value")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"{setting} {item!r}: the value is not valid YAML ({' '.join(str(e).split())})") from e
    return overrides


@dataclass
class PlaybackArgs:
    """The settings ``perceptgym evaluate`` and ``perceptgym watch`` share: which agent, on which env and handwriting,
    and how its pictures look. Each program's ``Args`` adds its own (episodes, video, ...)."""

    path: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="PATH")]]
    """a run directory, or a checkpoint file (.npz / .pt)"""
    env: str | None = None
    """play on this env instead of the run's (spaces must match)"""
    env_kwargs: str | None = None
    """JSON object replacing keys of the run's env_kwargs, e.g. '{"n_cars": 0}'"""
    digit_source: str | None = None
    """handwriting the env shows (perceptgym envs): mnist-train, mnist-test, gan or gan:<checkpoint>; default: the
    run's own. Wins over a digit_source key of --env-kwargs"""
    window_size: tuple[int, int] | None = None
    """WIDTH HEIGHT [px] the picture (window or video frames) fits in; perceptgym envs draw at this size (default
    1280 720), other envs' frames are scaled in the window"""
    end_hold: float = 1.5
    """seconds the last frame of each episode stays on screen and in a video"""
    trust_checkpoint: bool = False
    """allow an SB3 .zip checkpoint (written by older perceptgym): SB3 unpickles it, which runs any code the file
    holds, so use this only for a file you made yourself (re-save it to get the safe .pt format)"""
    trust_plugins: bool = False
    """import the modules the run's config.json names (plug-ins, env and wrapper modules other than perceptgym's
    and Gymnasium's); importing a module runs its code, so use this only for a run directory you trust"""

    def __post_init__(self) -> None:
        from perceptgym.agents.config import check_settings
        from perceptgym.envs.digits import check_source_name
        from perceptgym.envs.viewer import check_window_size

        check_settings(self, at_least={"end_hold": 0})
        check_window_size(self.window_size, "--window-size")
        if self.digit_source is not None:
            try:
                check_source_name(self.digit_source)
            except ValueError as e:
                raise ValueError(f"--digit-source: {e}") from e

    def env_overrides(self) -> dict[str, Any] | None:
        """``--env-kwargs`` with ``--digit-source`` on top (None: neither given)."""
        overrides = parse_json_object(self.env_kwargs, "--env-kwargs")
        if self.digit_source is not None:
            overrides = {**(overrides or {}), "digit_source": self.digit_source}
        return overrides

    def load(self, render_mode: str | None = None) -> LoadedRun:
        """The agent and a fresh env for it, as these settings say (see :func:`perceptgym.agents.playback.load_run`)."""
        from perceptgym.agents.playback import load_run

        overrides = self.env_overrides()
        try:
            return load_run(
                self.path,
                env_id=self.env,
                env_kwargs=overrides,
                render_mode=render_mode,
                trust_checkpoint=self.trust_checkpoint,
                trust_plugins=self.trust_plugins,
            )
        except TypeError as e:  # an env_kwargs key (or --digit-source) the env does not take
            if not overrides:
                raise
            raise ValueError(f"{e} (settings given by --env-kwargs / --digit-source: {sorted(overrides)})") from e

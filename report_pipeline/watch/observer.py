"""`make_observer`: the live display on a terminal, plain lines otherwise.

Apart from `live` so that a run from cron or a pipe never imports rich (a start-up cost
before the first request).
"""

from __future__ import annotations

from typing import TextIO

from ..run.outcome import RunObserver
from .progress import PlainProgress


def make_observer(
    *, interactive: bool | None, quiet: bool, interval_s: float, stream: TextIO, out: TextIO | None = None,
) -> RunObserver:
    """The progress display for a run: live on a terminal, plain lines otherwise.

    `interactive` is the config's `progress`: None for "auto" (live when `stream`
    is a TTY), True for "on" (live even on a pipe), False for "off". `quiet` always
    means plain lines, which print only the final one. The live display draws on
    `stream` (standard error); plain lines go to `out` (standard output; `stream` when
    not given).
    """
    live = interactive if interactive is not None else _is_tty(stream)
    if live and not quiet:
        from rich.console import Console

        from .live import LiveProgress

        console = Console(file=stream, force_terminal=True if interactive else None)
        if interactive or not console.is_dumb_terminal:
            return LiveProgress(console)
    return PlainProgress(out if out is not None else stream, interval_s=interval_s, quiet=quiet)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False

"""Where the library talks: one stderr console and progress bars that a switch silences.

`set_verbose(False)` (or SENSECF_QUIET=1) makes every library call silent — no progress bars, no step lines —
for use inside notebooks, servers and other programs. The CLI keeps the default (verbose).
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

_state = {"verbose": os.environ.get("SENSECF_QUIET", "").strip().lower() not in ("1", "true", "yes")}
_consoles: dict[bool, Console] = {}


def set_verbose(verbose: bool) -> None:
    """Turn the library's progress bars and status lines on or off (process-wide)."""
    _state["verbose"] = bool(verbose)


def is_verbose() -> bool:
    """Whether the library prints progress."""
    return _state["verbose"]


def console() -> Console:
    """The library's stderr console (quiet when verbosity is off)."""
    quiet = not _state["verbose"]
    if quiet not in _consoles:
        _consoles[quiet] = Console(stderr=True, quiet=quiet)
    return _consoles[quiet]


class RateColumn(ProgressColumn):
    """Completed steps per second."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s", style="progress.data.speed")


def progress_bar(enabled: bool = True, width: int = 28, eta: bool = False, transient: bool = False,
                 rate: bool = False) -> Progress:
    """A rich progress bar (description, bar, n/total[, steps/s], elapsed[, "ETA" remaining]) on the library
    console; disabled when `enabled` is false or verbosity is off."""
    columns = [TextColumn(f"{{task.description:<{width}}}"), BarColumn(), MofNCompleteColumn()]
    if rate:
        columns.append(RateColumn())
    columns.append(TimeElapsedColumn())
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()] if rate else [TimeRemainingColumn()]
    return Progress(*columns, console=console(), disable=not (enabled and _state["verbose"]), transient=transient)

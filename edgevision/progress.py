"""rich progress bars and console shared by long-running steps."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Wide when not a terminal (logs, CI), so tables are not squeezed to 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def progress_bar() -> Progress:
    """A progress bar for loops over batches; quiet when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
        disable=not sys.stderr.isatty(),
    )


def log(message: str) -> None:
    """One line of progress information on stderr."""
    console.print(message, highlight=False)

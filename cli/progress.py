"""Progress display of long ``tollgate`` operations (rich), always on stderr: stdout keeps
only results, so it can be piped or redirected."""

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def progress_bar(console: Console, *, redirect_stdout: bool = False) -> Progress:
    """A bar with a spinner, counts, percentage and elapsed time; a task with ``total=None``
    shows as a pulsing bar (a wait whose length is unknown)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        redirect_stdout=redirect_stdout,
        redirect_stderr=False,
    )

"""``make bench``: run every benchmark module and print its figures.

The figures are plain lines on stdout, as before; a progress bar across the modules goes to
stderr. When stdout and stderr are the same terminal the figure lines are printed above the
bar (text unchanged), so the bar's redraws do not tear them; when stdout is redirected or
piped it receives the figure lines alone."""

import asyncio
import sys
from collections.abc import Callable, Sequence

from benchmarks import (
    anchoring,
    escrow,
    ledger,
    markets,
    payments,
    settlement,
    subscriptions,
    tickets,
)
from cli.progress import progress_bar, stderr_console

Step = tuple[str, Callable[[], None]]

STEPS: Sequence[Step] = (
    ("ledger", lambda: asyncio.run(ledger.main())),
    ("markets", lambda: asyncio.run(markets.main())),
    ("tickets", tickets.main),
    ("anchoring", anchoring.main),
    ("escrow", escrow.main),
    ("payments", payments.main),
    ("subscriptions", subscriptions.main),
    ("settlement", settlement.main),
)


def run(steps: Sequence[Step]) -> None:
    console = stderr_console()
    same_terminal = sys.stdout.isatty() and console.is_terminal
    with progress_bar(console, redirect_stdout=same_terminal) as progress:
        task = progress.add_task("benchmarks", total=len(steps))
        for name, step in steps:
            progress.update(task, description=f"benchmark {name}")
            step()
            sys.stdout.flush()
            progress.advance(task)
        progress.update(task, description="benchmarks done")


def main() -> None:
    run(STEPS)


if __name__ == "__main__":
    main()

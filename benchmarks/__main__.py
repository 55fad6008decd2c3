"""``make bench``: run every benchmark module, print its figures, then one table of them all.

The figures are plain lines on stdout, as before; a progress bar across the modules goes to
stderr. When stdout and stderr are the same terminal the figure lines are printed above the
bar (text unchanged), so the bar's redraws do not tear them; when stdout is redirected or
piped it receives the figure lines alone.

Each benchmark records the numbers of its lines as it prints them (``benchmarks.figures``);
once every benchmark has run, stdout gets one table of all of them with their goals and each
figure's ratio to its goal. A benchmark that fails is reported on stderr, the others still
run, the table says which failed, and the exit code is 1. ``python -m benchmarks NAME ...``
runs only the named ones (``python -m benchmarks load``)."""

import asyncio
import sys
from collections.abc import Callable, Sequence

from benchmarks import (
    anchoring,
    escrow,
    figures,
    ledger,
    load,
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
    ("load", load.main),
)


def run(steps: Sequence[Step]) -> list[str]:
    """Run the steps in order; the names of those that failed."""
    console = stderr_console()
    same_terminal = sys.stdout.isatty() and console.is_terminal
    failed: list[str] = []
    with progress_bar(console, redirect_stdout=same_terminal) as progress:
        task = progress.add_task("benchmarks", total=len(steps))
        for name, step in steps:
            progress.update(task, description=f"benchmark {name}")
            try:
                step()
            except Exception:
                failed.append(name)
                console.print(f"benchmark {name} failed:")
                console.print_exception()
            sys.stdout.flush()
            progress.advance(task)
        progress.update(task, description="benchmarks done")
    return failed


def selected(names: Sequence[str]) -> Sequence[Step]:
    known = {name for name, _ in STEPS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [step for step in STEPS if not names or step[0] in names]


def main(argv: Sequence[str] = ()) -> int:
    steps = selected(argv)
    failed = run(steps)
    print()
    print(figures.table(figures.recorded(), failed=failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

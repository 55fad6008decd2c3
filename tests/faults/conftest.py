"""Fault tests: one fault stack (``tests/faults/stack.py``) for this package, whose parts
the tests kill and restart (stopped after its last test); the size from
``TOLLGATE_FAULT_SCALE``; and, at the end of the run, a table of every scenario's movements
expected, performed, duplicated and lost."""

import random
from collections.abc import AsyncIterator

import pytest

from tests.faults import audit
from tests.faults.scale import Scale, current, seed
from tests.faults.stack import FaultStack


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator per test, from the run's seed and the test's name: the same moments
    and amounts on every run with the same seed."""
    return random.Random(f"{seed()}:{request.node.name}")


@pytest.fixture(scope="package")
async def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultStack]:
    stack = FaultStack(tmp_path_factory.mktemp("fault-stack"))
    try:
        await stack.start()
        yield stack
    finally:
        await stack.dispose()
        stack.close()


@pytest.fixture
async def stack(fault_stack: FaultStack) -> AsyncIterator[FaultStack]:
    """The fault stack; a part a failed test left stopped is started again for the next."""
    yield fault_stack
    for name in fault_stack.parts:
        if not fault_stack.running(name):
            await fault_stack.start_part(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not audit.REPORTED:
        return
    terminalreporter.section(f"fault tests ({current().name} size, seed {seed()})")
    width = max(len("scenario"), *(len(f.scenario) for f in audit.REPORTED))
    terminalreporter.write_line(
        f"{'scenario':<{width}} {'expected':>8} {'performed':>9} {'duplicated':>10} {'lost':>5}"
    )
    for figures in audit.REPORTED:
        terminalreporter.write_line(
            f"{figures.scenario:<{width}} {figures.expected:>8} {figures.performed:>9}"
            f" {figures.duplicated:>10} {figures.lost:>5}"
            + ("" if not figures.problems else f"  ({len(figures.problems)} problems)")
        )
        if figures.notes:
            terminalreporter.write_line(f"{'':<4}{figures.notes}")

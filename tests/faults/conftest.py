"""Fault tests: one fault stack (``tests/faults/stack.py``) for this package, whose parts
the tests kill and restart (stopped after its last test); the size from
``TOLLGATE_FAULT_SCALE``. The table at the end of the run is ``tests/faults/summary.py``'s."""

import random
from collections.abc import AsyncIterator

import pytest

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

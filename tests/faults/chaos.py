"""Taking parts of the fault stack away at random moments of a run."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from tests.faults.stack import FaultStack
from tests.fixtures.waiting import until

Progress = Callable[[], Awaitable[float]]


async def restart_worker(stack: FaultStack) -> None:
    await stack.start_part("worker")
    await until(stack.worker_polling, "the restarted worker to poll", 60, every=0.2)


async def kill_worker_at_random(
    stack: FaultStack,
    rng: random.Random,
    targets: Sequence[tuple[str, Progress]],
    kills: int,
    *,
    within: float,
) -> list[str]:
    """SIGKILL the worker ``kills`` times and start it again after a random pause of up to
    2 s. Each kill falls during the work of one of ``targets`` (a name and its progress, 0 to
    1) still under way, in turn: once its progress passes a point drawn at random between 5%
    and 50% of what it has left, plus a random fraction of a second. Returns when each kill
    fell; fails if the work ended before all of them could."""
    started = time.monotonic()
    moments: list[str] = []
    for kill in range(kills):
        live = [(name, progress) for name, progress in targets if await progress() < 1]
        assert live, f"the work ended before kill {kill + 1} of {kills}"
        name, progress = live[kill % len(live)]
        now = await progress()
        point = now + rng.uniform(0.05, 0.5) * (1 - now)

        async def reached(progress: Progress = progress, point: float = point) -> bool:
            return await progress() >= point

        await until(reached, f"{point:.0%} of the {name}", within, every=0.1)
        await asyncio.sleep(rng.uniform(0, 0.2))
        done = await progress()
        stack.kill("worker")
        moments.append(f"{name} {done:.0%} done ({time.monotonic() - started:.0f}s)")
        await asyncio.sleep(rng.uniform(0, 2))
        await restart_worker(stack)
    return moments

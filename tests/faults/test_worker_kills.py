"""The worker SIGKILLed at random moments, then restarted, while it pays a batch payout and
releases escrow holds with their payouts (on the fault stack's Temporal dev server), and
while it chases failed subscription charges through a month of dunning (on the time-skipping
Temporal server, see ``test_dunning_survives_worker_kills``). Afterwards the sandbox, the
chain and the ledger show every movement exactly once."""

import asyncio
import random
import time

import pytest

from tests.faults.audit import report
from tests.faults.chaos import kill_worker_at_random
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.faults.workloads import (
    HeldPayout,
    audit_batch_and_payouts,
    batch_and_payouts_final,
    batch_items,
    batch_progress,
    create_held_payouts,
    held_payouts_progress,
    start_batch,
)
from tests.fixtures.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_batch_and_hold_releases_survive_worker_kills(
    stack: FaultStack, scale: Scale, rng: random.Random
) -> None:
    tag = f"kill-{rng.randrange(16**6):06x}"
    sessions = stack.sessions()
    items = batch_items(rng, tag, scale.kill_batch_items, scale.kill_chain_share)
    started = time.monotonic()
    async with stack.api() as api, stack.sandbox() as sandbox:
        # The batch first, then the holds while it runs (their timers fire as the last ones
        # are created): the first kill falls during the batch, the next during the releases.
        batch = await start_batch(api, sandbox, sessions, stack.settings, items, f"{tag}-partner")
        creating = asyncio.ensure_future(
            create_held_payouts(
                api, sandbox, stack.settings, rng, tag, scale.kill_holds, due_in=scale.due_in
            )
        )
        kills_rng = random.Random(rng.random())  # the kills' draws, whatever creating draws
        held: list[HeldPayout] = []

        async def holds_done() -> float:
            if not creating.done():
                return 0.0
            held[:] = creating.result()
            return sum(await held_payouts_progress(sessions, held)) / (2 * len(held))

        async def batch_done() -> float:
            return await batch_progress(sessions, batch) / len(batch.items)

        targets = [("batch", batch_done), ("releases", holds_done)]
        moments = await kill_worker_at_random(
            stack, kills_rng, targets, scale.kills, within=scale.patience
        )
        held[:] = await creating

        await until(
            lambda: batch_and_payouts_final(sessions, batch, held),
            "the batch, the releases and the payouts",
            scale.patience,
            every=1,
        )
        elapsed = time.monotonic() - started
        kills = f"kills: {', '.join(moments)}; {elapsed:.0f}s"
        figures = await audit_batch_and_payouts(
            "worker SIGKILL", kills, batch, held, sandbox, sessions, stack.settings
        )
    for each in figures:
        report(each)
        each.check()

"""The Stripe sandbox failing 20% of calls, at random, with 500s, 429s and timeouts (the
answer held 5 s, past the stack's 3 s client timeout, after the work is done and stored
under the idempotency key), while a batch payout runs and holds are released and paid out.
Everything completes; the retries (the SDK's own, then the activities') find the stored
answers under the same keys, so no transfer is made twice."""

import random
import time
from typing import Any

import pytest
from sqlalchemy import text

from tests.faults.audit import report
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.faults.workloads import (
    audit_batch_and_payouts,
    batch_and_payouts_final,
    batch_items,
    create_held_payouts,
    start_batch,
)
from tests.fixtures.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

FAULTS = {"rate": 0.2, "kinds": ["500", "429", "timeout"], "timeout_seconds": 5}


async def test_everything_completes_once_with_a_fifth_of_stripe_calls_failing(
    stack: FaultStack, scale: Scale, rng: random.Random
) -> None:
    tag = f"flt-{rng.randrange(16**6):06x}"
    sessions = stack.sessions()
    started = time.monotonic()
    async with stack.api() as api, stack.sandbox() as sandbox:
        before: dict[str, Any] = (await sandbox.get("/_sandbox/faults")).json()
        configured = await sandbox.post(
            "/_sandbox/faults", json={**FAULTS, "seed": rng.randrange(2**31)}
        )
        assert configured.status_code == 200, configured.text
        try:
            held = await create_held_payouts(
                api, sandbox, stack.settings, rng, tag, scale.faulty_holds, due_in=scale.due_in
            )
            items = batch_items(rng, tag, scale.faulty_batch_items, chain_share=0.05)
            batch = await start_batch(
                api, sandbox, sessions, stack.settings, items, f"{tag}-partner"
            )

            await until(
                lambda: batch_and_payouts_final(sessions, batch, held),
                "the batch, the releases and the payouts",
                scale.patience,
                every=1,
            )
        finally:
            restored = await sandbox.post(
                "/_sandbox/faults",
                json={
                    "rate": before["rate"],
                    "kinds": before["kinds"],
                    "timeout_seconds": before["timeout_seconds"],
                },
            )
            assert restored.status_code == 200, restored.text
        elapsed = time.monotonic() - started
        retried = await retried_attempts(sessions, batch.batch_id, [h.schedule_id for h in held])

        notes = f"{retried} activity attempts failed and were retried; {elapsed:.0f}s"
        figures = await audit_batch_and_payouts(
            "Stripe 20% faults", notes, batch, held, sandbox, sessions, stack.settings
        )
    for each in figures:
        report(each)
        each.check()


async def retried_attempts(sessions: Any, batch_id: str, schedule_ids: list[str]) -> int:
    """Failed attempts counted on the batch's transfers and on the payouts: the
    faults the SDK's own retries did not absorb (a 429, or three failures in a row)."""
    async with sessions() as session:
        transfers = await session.scalar(
            text("SELECT coalesce(sum(attempts), 0) FROM transfers WHERE batch_id = :b"),
            {"b": batch_id},
        )
        payouts = await session.scalar(
            text(
                "SELECT coalesce(sum(retry_count), 0) FROM payout_schedules"
                " WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": schedule_ids},
        )
    return int(transfers or 0) + int(payouts or 0)

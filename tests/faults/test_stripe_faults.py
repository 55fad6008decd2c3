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

from tests.faults.audit import MovementAudit, report
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.faults.workloads import (
    audit_batch,
    audit_held_payouts,
    batch_failures,
    batch_items,
    batch_progress,
    batch_status,
    create_held_payouts,
    held_payouts_progress,
    payout_failures,
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

            async def finished() -> bool:
                released, paid = await held_payouts_progress(sessions, held)
                return (
                    released == paid == len(held)
                    and await batch_progress(sessions, batch) == len(batch.items)
                    and await batch_status(sessions, batch) != "processing"
                )

            await until(
                finished, "the batch, the releases and the payouts", scale.patience, every=1
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
        assert await batch_failures(sessions, batch) == []
        assert await payout_failures(sessions, held) == []
        retried = await retried_attempts(sessions, batch.batch_id, [h.schedule_id for h in held])

        notes = f"{retried} activity attempts failed and were retried; {elapsed:.0f}s"
        batch_audit = MovementAudit(f"Stripe 20% faults: {len(batch.items)}-item batch payout")
        await audit_batch(batch_audit, batch, sandbox, sessions, stack.settings)
        holds_audit = MovementAudit(f"Stripe 20% faults: {len(held)} holds released, paid out")
        await audit_held_payouts(holds_audit, held, sandbox, sessions)
    for figures in (batch_audit.figures(notes), holds_audit.figures(notes)):
        report(figures)
        figures.check()


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

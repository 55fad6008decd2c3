"""The business figures behind /metrics, read from a real PostgreSQL: each one moves when the
records it counts do (compared before and after, so other rows do not matter)."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from models.anchoring import AnchorBatch
from models.tickets import Ticket
from models.webhooks import WebhookDelivery
from services import escrow, metrics, payouts
from services.metrics import BusinessSnapshot
from tests.services.test_escrow_payout_services import new_hold, new_schedule
from tests.services.test_invoices_service import fail, start, succeed
from tests.services.test_subscriptions_service import APR_1, bill, new_plan, subscribe
from tests.services.test_webhooks_service import new_endpoint, new_event


def bucket(snapshot: BusinessSnapshot, bound: float) -> int:
    return dict(snapshot.escrow_release_lateness.buckets)[bound]


async def test_a_completed_payout_counts_once_by_outcome_and_amount(session: AsyncSession) -> None:
    before = await metrics.snapshot(session)
    hold = await new_hold(session)
    schedule = await new_schedule(session, hold.payee_id)
    pending = await metrics.snapshot(session)
    await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)
    await payouts.complete(session, schedule.id, transfer_id=f"tr_{uuid.uuid4().hex}", actor=SYSTEM)
    after = await metrics.snapshot(session)

    assert pending.payout_schedules["pending"] == before.payout_schedules["pending"] + 1
    assert after.payout_schedules["pending"] == before.payout_schedules["pending"]
    assert after.payout_schedules["completed"] == before.payout_schedules["completed"] + 1
    assert after.payouts_completed == before.payouts_completed + 1
    assert after.payouts_completed_amount["USD"] == (
        before.payouts_completed_amount.get("USD", 0) + schedule.amount
    )
    # Every status is reported, zero or not, so no series disappears.
    assert set(after.payout_schedules) == {
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    }


async def test_release_lateness_counts_late_releases_and_overdue_holds(
    session: AsyncSession,
) -> None:
    before = await metrics.snapshot(session)
    late = await new_hold(session)
    overdue = await new_hold(session)
    disputed = await new_hold(session)
    early = await new_hold(session)
    now = datetime.now(UTC)
    late.release_at = now - timedelta(seconds=120)
    overdue.release_at = now - timedelta(minutes=10)
    disputed.release_at = now - timedelta(hours=2)
    await session.flush()
    await escrow.dispute(session, disputed.id, reason="not delivered", actor=SYSTEM)
    await escrow.release(session, late.id, key=f"{late.id}-all", actor=SYSTEM)
    await escrow.release(session, early.id, key=f"{early.id}-all", actor=SYSTEM)
    after = await metrics.snapshot(session)

    lateness = after.escrow_release_lateness
    # The late one, about two minutes late: in the 300 s bucket, not the 60 s one. The early
    # release (before its date) is not lateness.
    assert lateness.count == before.escrow_release_lateness.count + 1
    assert bucket(after, 60) == bucket(before, 60)
    assert bucket(after, 300) == bucket(before, 300) + 1
    assert 110 < lateness.sum - before.escrow_release_lateness.sum < 600
    assert lateness.buckets[-1] == (float("inf"), lateness.count)
    # The overdue hold counts, the disputed one waits for its resolution and does not.
    assert after.escrow_holds_overdue == before.escrow_holds_overdue + 1
    assert after.escrow_overdue_max_seconds >= 590


async def test_dunning_attempts_count_first_attempts_and_retries_by_outcome(
    session: AsyncSession,
) -> None:
    before = await metrics.snapshot(session)
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    first = await start(session, invoice)
    under_way = await metrics.snapshot(session)
    await fail(session, first, APR_1 + timedelta(minutes=1))
    retry_at = invoice.next_payment_attempt
    assert retry_at is not None
    retry = await start(session, invoice, retry_at)
    await succeed(session, retry, retry_at + timedelta(seconds=5))
    after = await metrics.snapshot(session)

    assert under_way.dunning_attempts_pending == before.dunning_attempts_pending + 1
    assert after.dunning_attempts_pending == before.dunning_attempts_pending
    changed = {
        key: after.dunning_attempts[key] - before.dunning_attempts[key]
        for key in after.dunning_attempts
    }
    assert changed == {
        ("first", "failed"): 1,
        ("first", "succeeded"): 0,
        ("retry", "failed"): 0,
        ("retry", "succeeded"): 1,
    }
    assert after.subscriptions["active"] >= 1


async def test_the_anchoring_backlog_counts_tickets_without_a_confirmed_batch(
    session: AsyncSession,
) -> None:
    before = await metrics.snapshot(session)
    now = datetime.now(UTC)
    batch = AnchorBatch(root=uuid.uuid4().bytes * 2, leaf_count=3, status="SUBMITTED")
    session.add(batch)
    for _ in range(2):
        session.add(
            Ticket(
                id=uuid.uuid4(),
                booking_id=uuid.uuid4().hex,
                user_id="rider",
                driver_id="driver",
                trip={},
                valid_from=now,
                valid_until=now + timedelta(hours=1),
                status="ACTIVE",
                key_id="test-1",
                payload="not-signed",
                created_at=now - timedelta(minutes=5),
            )
        )
    await session.flush()
    after = await metrics.snapshot(session)

    assert after.anchoring_backlog["unbatched"] == before.anchoring_backlog["unbatched"] + 2
    assert after.anchoring_backlog["submitted"] == before.anchoring_backlog["submitted"] + 3
    assert after.anchor_batches["SUBMITTED"] == before.anchor_batches["SUBMITTED"] + 1
    assert after.anchoring_backlog_oldest_seconds >= 299


async def test_webhook_deliveries_are_counted_by_status(session: AsyncSession) -> None:
    before = await metrics.snapshot(session)
    endpoint = await new_endpoint(session)
    event = await new_event(session)
    session.add(
        WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.event_type,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            message_id=f"msg_{event.id}",
            payload={},
            occurred_at=event.created_at,
            status="dead_lettered",
        )
    )
    await session.flush()
    after = await metrics.snapshot(session)

    assert (
        after.webhook_deliveries["dead_lettered"] == before.webhook_deliveries["dead_lettered"] + 1
    )
    assert after.webhook_deliveries["succeeded"] == before.webhook_deliveries["succeeded"]

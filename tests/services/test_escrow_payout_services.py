"""Escrow holds and payout schedules on a real PostgreSQL: ledger postings, keyed movements,
refusals, runs and their Stripe keys, and the outbox events."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from domain.errors import Conflict, NotFound, ValidationError
from domain.escrow import HoldReason, TriggerEvent
from domain.money import Money
from models.escrow import EscrowHold, EscrowMovement, Payout, PayoutSchedule
from models.outbox import OutboxEvent
from services import escrow, ledger, payouts

AMOUNT = 10_000


async def balance(session: AsyncSession, code: str) -> int:
    """USD balance (debits minus credits) of an account; 0 before it is opened."""
    try:
        return (await ledger.balances(session, code)).get("USD", 0)
    except NotFound:
        return 0


async def events(session: AsyncSession, entity_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxEvent.event_type)
        .where(OutboxEvent.entity_id == str(entity_id))
        .order_by(OutboxEvent.id)
    )
    return list(rows)


async def new_hold(session: AsyncSession, required_approvals: int = 0) -> EscrowHold:
    suffix = uuid.uuid4().hex[:8]
    return await escrow.create_hold(
        session,
        payer_id=f"rider-{suffix}",
        payee_id=f"driver-{suffix}",
        money=Money(AMOUNT, "USD"),
        reason=HoldReason.GUARANTEE_PERIOD,
        release_at=datetime.now(UTC) + timedelta(days=30),
        required_approvals=required_approvals,
        actor=SYSTEM,
    )


def accounts(hold: EscrowHold) -> tuple[str, str]:
    return escrow.payer_account(hold.payer_id), escrow.payee_account(hold.payee_id)


async def test_a_hold_moves_the_money_from_the_payer_to_escrow(session: AsyncSession) -> None:
    escrow_before = await balance(session, escrow.ESCROW_ACCOUNT)

    hold = await new_hold(session)

    payer, payee = accounts(hold)
    # transfer(source, destination) debits the destination (+) and credits the source (-).
    assert await balance(session, payer) == -AMOUNT
    assert await balance(session, escrow.ESCROW_ACCOUNT) - escrow_before == AMOUNT
    assert await balance(session, payee) == 0
    assert (hold.status, hold.held_amount) == ("active", AMOUNT)
    assert await events(session, hold.id) == ["escrow_hold.created"]


async def test_a_partial_release_then_the_rest_pays_the_payee_everything(
    session: AsyncSession,
) -> None:
    escrow_before = await balance(session, escrow.ESCROW_ACCOUNT)
    hold = await new_hold(session)
    payer, payee = accounts(hold)

    first = await escrow.release(session, hold.id, key=f"{hold.id}-a", actor=SYSTEM, amount=2_500)
    assert (first.amount, first.hold.status, first.hold.held_amount) == (
        2_500,
        "partially_released",
        AMOUNT - 2_500,
    )
    assert await balance(session, payee) == 2_500

    rest = await escrow.release(session, hold.id, key=f"{hold.id}-b", actor=SYSTEM)

    assert (rest.amount, rest.hold.status, rest.hold.held_amount) == (AMOUNT - 2_500, "released", 0)
    assert rest.hold.released_at is not None
    assert await balance(session, payee) == AMOUNT
    assert await balance(session, escrow.ESCROW_ACCOUNT) == escrow_before
    assert await balance(session, payer) == -AMOUNT
    assert await events(session, hold.id) == [
        "escrow_hold.created",
        "escrow_hold.released",
        "escrow_hold.released",
    ]


async def test_the_same_key_moves_money_once(session: AsyncSession) -> None:
    hold = await new_hold(session)
    _, payee = accounts(hold)
    key = f"hold-{hold.id}-release-1"

    first = await escrow.release(session, hold.id, key=key, actor=SYSTEM, amount=4_000)
    again = await escrow.release(session, hold.id, key=key, actor=SYSTEM, amount=4_000)

    assert (first.repeated, again.repeated, again.amount) == (False, True, 4_000)
    assert await balance(session, payee) == 4_000
    assert again.hold.held_amount == AMOUNT - 4_000
    moves = await session.scalar(select(func.count()).where(EscrowMovement.hold_id == hold.id))
    assert moves == 1
    assert (await events(session, hold.id)).count("escrow_hold.released") == 1


async def test_cancel_returns_the_rest_to_the_payer(session: AsyncSession) -> None:
    escrow_before = await balance(session, escrow.ESCROW_ACCOUNT)
    hold = await new_hold(session)
    payer, payee = accounts(hold)
    await escrow.release(session, hold.id, key=f"{hold.id}-part", actor=SYSTEM, amount=3_000)

    cancelled = await escrow.give_back(
        session, hold.id, key=f"{hold.id}-cancel", actor=SYSTEM, cancel=True
    )

    assert (cancelled.amount, cancelled.hold.status) == (AMOUNT - 3_000, "cancelled")
    assert cancelled.hold.cancelled_at is not None
    assert await balance(session, payer) == -3_000
    assert await balance(session, payee) == 3_000
    assert await balance(session, escrow.ESCROW_ACCOUNT) == escrow_before
    assert (await events(session, hold.id))[-1] == "escrow_hold.cancelled"
    with pytest.raises(Conflict):
        await escrow.release(session, hold.id, key=f"{hold.id}-late", actor=SYSTEM)


async def test_a_refund_returns_everything_and_ends_the_hold(session: AsyncSession) -> None:
    hold = await new_hold(session)
    payer, _ = accounts(hold)

    refunded = await escrow.give_back(
        session, hold.id, key=f"{hold.id}-refund", actor=SYSTEM, cancel=False
    )

    assert (refunded.amount, refunded.hold.status) == (AMOUNT, "refunded")
    assert await balance(session, payer) == 0
    assert (await events(session, hold.id))[-1] == "escrow_hold.refunded"


async def test_a_disputed_hold_is_not_released_until_resolved(session: AsyncSession) -> None:
    hold = await new_hold(session)
    await escrow.dispute(session, hold.id, reason="item not delivered", actor=SYSTEM)

    with pytest.raises(Conflict) as refused:
        await escrow.release(session, hold.id, key=f"{hold.id}-1", actor=SYSTEM)
    assert refused.value.code == "hold_disputed"
    with pytest.raises(Conflict):
        await escrow.release(session, hold.id, key=f"{hold.id}-2", actor=SYSTEM, amount=100)

    await escrow.resolve(session, hold.id, actor=SYSTEM)
    released = await escrow.release(session, hold.id, key=f"{hold.id}-3", actor=SYSTEM)

    assert released.hold.status == "released"


async def test_a_hold_needs_its_approvals_from_distinct_approvers(session: AsyncSession) -> None:
    hold = await new_hold(session, required_approvals=2)
    await escrow.approve(session, hold.id, approver="alice", actor=SYSTEM)
    await escrow.approve(session, hold.id, approver="alice", actor=SYSTEM)

    with pytest.raises(Conflict) as refused:
        await escrow.release(session, hold.id, key=f"{hold.id}-1", actor=SYSTEM)
    assert refused.value.code == "approvals_missing"

    approved = await escrow.approve(session, hold.id, approver="bob", actor=SYSTEM)
    assert approved.approvals == ["alice", "bob"]
    released = await escrow.release(session, hold.id, key=f"{hold.id}-2", actor=SYSTEM)

    assert released.hold.status == "released"


async def test_extend_only_moves_the_date_later(session: AsyncSession) -> None:
    hold = await new_hold(session)
    later = hold.release_at + timedelta(days=10)

    extended = await escrow.extend(session, hold.id, release_at=later, actor=SYSTEM)

    assert extended.release_at == later
    with pytest.raises(ValidationError):
        await escrow.extend(session, hold.id, release_at=later - timedelta(days=1), actor=SYSTEM)


async def new_schedule(session: AsyncSession, payee_id: str) -> PayoutSchedule:
    return await payouts.create_schedule(
        session,
        payee_id=payee_id,
        destination="acct_driver1",
        money=Money(AMOUNT, "USD"),
        trigger_event=TriggerEvent.GUARANTEE_PERIOD_END,
        scheduled_for=datetime.now(UTC) + timedelta(days=7),
        actor=SYSTEM,
    )


async def test_a_completed_payout_posts_payee_to_stripe_once(session: AsyncSession) -> None:
    hold = await new_hold(session)
    _, payee = accounts(hold)
    await escrow.release(session, hold.id, key=f"{hold.id}-all", actor=SYSTEM)
    stripe_before = await balance(session, payouts.STRIPE_ACCOUNT)
    schedule = await new_schedule(session, hold.payee_id)

    running = await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)
    assert running.status == "processing"
    done = await payouts.complete(session, schedule.id, transfer_id="tr_once", actor=SYSTEM)
    again = await payouts.complete(session, schedule.id, transfer_id="tr_once", actor=SYSTEM)

    assert (done.status, again.status) == ("completed", "completed")
    assert await balance(session, payee) == 0
    assert await balance(session, payouts.STRIPE_ACCOUNT) - stripe_before == AMOUNT
    paid = list(await session.scalars(select(Payout).where(Payout.schedule_id == schedule.id)))
    assert [(p.amount, p.stripe_transfer_id) for p in paid] == [(AMOUNT, "tr_once")]
    assert await events(session, schedule.id) == [
        "payout_schedule.created",
        "payout_schedule.triggered",
        "payout_schedule.processed",
    ]


async def test_a_payout_refused_by_stripe_runs_again_under_a_new_key(
    session: AsyncSession,
) -> None:
    schedule = await new_schedule(session, f"driver-{uuid.uuid4().hex[:8]}")
    running = await payouts.start_run(session, schedule.id, event="scheduled", actor=SYSTEM)
    first_key = payouts.idempotency_key(running)
    await payouts.record_attempt_failure(session, schedule.id, error="503", actor=SYSTEM)
    resumed = await payouts.start_run(session, schedule.id, event="resumed", actor=SYSTEM)
    assert payouts.idempotency_key(resumed) == first_key  # a retried start keeps the run
    await payouts.record_attempt_failure(session, schedule.id, error="503 again", actor=SYSTEM)

    failed = await payouts.fail(
        session, schedule.id, error="NotFound: no such destination", actor=SYSTEM, final=True
    )
    assert (failed.status, failed.retry_count, failed.last_error) == (
        "failed",
        2,
        "NotFound: no such destination",
    )

    rerun = await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)

    assert (rerun.status, rerun.run_number, rerun.retry_count) == ("processing", 1, 0)
    assert payouts.idempotency_key(rerun) != first_key
    assert rerun.last_error is None
    assert "payout_schedule.failed" in await events(session, schedule.id)


async def test_a_payout_whose_retries_ran_out_runs_again_under_the_same_key(
    session: AsyncSession,
) -> None:
    """One of the attempts that timed out may have paid: Stripe must see the same key."""
    schedule = await new_schedule(session, f"driver-{uuid.uuid4().hex[:8]}")
    running = await payouts.start_run(session, schedule.id, event="scheduled", actor=SYSTEM)
    first_key = payouts.idempotency_key(running)
    await payouts.fail(session, schedule.id, error="ProviderError: 503", actor=SYSTEM, final=False)

    rerun = await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)

    assert rerun.status == "processing" and payouts.idempotency_key(rerun) == first_key


async def test_cancelling_a_payout(session: AsyncSession) -> None:
    schedule = await new_schedule(session, f"driver-{uuid.uuid4().hex[:8]}")

    cancelled = await payouts.cancel(session, schedule.id, actor=SYSTEM, reason="ended")

    assert cancelled.status == "cancelled"
    assert await events(session, schedule.id) == [
        "payout_schedule.created",
        "payout_schedule.cancelled",
    ]
    with pytest.raises(Conflict):
        await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)


async def test_a_processing_payout_cannot_be_cancelled(session: AsyncSession) -> None:
    schedule = await new_schedule(session, f"driver-{uuid.uuid4().hex[:8]}")
    await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)

    with pytest.raises(Conflict):
        await payouts.cancel(session, schedule.id, actor=SYSTEM)

"""Payout schedules: created pending, PROCESSING while a run pays, then COMPLETED (a payout
row and the ledger entry payee → Stripe) or FAILED with the error; a later trigger runs a
failed one again under a new Stripe idempotency key. Compare-and-set on the locked row,
audited, and announced in the outbox."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import NotFound, ValidationError
from domain.escrow import PayoutStatus, TriggerEvent, check_payout_move
from domain.ledger import AccountType, transfer
from domain.money import Money
from models.escrow import Payout, PayoutSchedule
from services import ledger, outbox
from services.escrow import payee_account
from services.locking import locked
from services.pagination import newest_first

STRIPE_ACCOUNT = "stripe:transfers"
RETRY_WINDOW_SECONDS = 23 * 3600


def schedule_view(schedule: PayoutSchedule) -> dict[str, Any]:
    return {
        "status": schedule.status,
        "amount": schedule.amount,
        "currency": schedule.currency,
        "scheduled_for": schedule.scheduled_for.isoformat(),
        "retry_count": schedule.retry_count,
        "last_error": schedule.last_error,
        "run_number": schedule.run_number,
    }


def idempotency_key(schedule: PayoutSchedule) -> str:
    """Stripe's key for the transfer: derived from the schedule, never the attempt, so
    retries cannot pay twice. It changes only after Stripe *refused* a transfer (which it
    stores under the key and would replay); after retries ran out on outages the next run
    reuses it, since one of those attempts may have paid."""
    return f"payout-schedule-{schedule.id}-run-{schedule.run_number}"


async def _changed(
    session: AsyncSession,
    schedule: PayoutSchedule,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    event: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="payout_schedule",
        entity_id=schedule.id,
        action=action,
        actor=actor,
        before=before,
        after=schedule_view(schedule),
        announce=event,
        metadata=metadata,
        payload={"payee_id": schedule.payee_id},
    )


async def create_schedule(
    session: AsyncSession,
    *,
    payee_id: str,
    destination: str,
    money: Money,
    trigger_event: TriggerEvent,
    scheduled_for: datetime,
    actor: Actor,
    max_attempts: int = 3,
    backoff_seconds: int = 60,
    placement_id: str | None = None,
    hold_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> PayoutSchedule:
    if money.amount <= 0:
        raise ValidationError("a payout pays a positive amount", param="amount")
    if scheduled_for.tzinfo is None:
        raise ValidationError("scheduled_for needs a time zone", param="scheduled_for")
    if not 1 <= max_attempts <= 20:
        raise ValidationError("max_attempts is 1 to 20", param="max_attempts")
    if not 1 <= backoff_seconds <= 86_400:
        raise ValidationError("backoff_seconds is 1 to 86400", param="backoff_seconds")
    if backoff_seconds * (2 ** (max_attempts - 1) - 1) > RETRY_WINDOW_SECONDS:
        # Stripe keeps an idempotency key 24 hours: every retry must come before that.
        raise ValidationError(
            "the retries of max_attempts with backoff_seconds doubling would last past 23 hours",
            param="backoff_seconds",
        )
    schedule = PayoutSchedule(
        id=uuid.uuid4(),
        payee_id=payee_id,
        destination=destination,
        amount=money.amount,
        currency=money.currency,
        trigger_event=trigger_event.value,
        scheduled_for=scheduled_for,
        status=PayoutStatus.PENDING.value,
        retry_count=0,
        run_number=0,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        placement_id=placement_id,
        hold_id=hold_id,
        metadata_=metadata or {},
    )
    session.add(schedule)
    await _changed(session, schedule, "created", actor=actor, before=None)
    return schedule


async def get(
    session: AsyncSession, schedule_id: uuid.UUID, *, for_update: bool = False
) -> PayoutSchedule:
    query = select(PayoutSchedule).where(PayoutSchedule.id == schedule_id)
    found: PayoutSchedule | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no payout schedule {schedule_id}", param="id")
    return found


async def start_run(
    session: AsyncSession, schedule_id: uuid.UUID, *, event: str, actor: Actor
) -> PayoutSchedule:
    """PENDING or FAILED → PROCESSING. Already PROCESSING is the same run resumed (a retried
    activity): nothing changes, so its idempotency key stays the same."""
    schedule = await get(session, schedule_id, for_update=True)
    status = PayoutStatus(schedule.status)
    if status is PayoutStatus.PROCESSING:
        return schedule
    check_payout_move(status, PayoutStatus.PROCESSING)
    before = schedule_view(schedule)
    if status is PayoutStatus.FAILED:
        schedule.retry_count = 0
    schedule.status = PayoutStatus.PROCESSING.value
    schedule.triggered_at = datetime.now(UTC)
    schedule.last_error = None
    await _changed(
        session, schedule, "triggered", actor=actor, before=before, metadata={"event": event}
    )
    return schedule


async def record_attempt_failure(
    session: AsyncSession, schedule_id: uuid.UUID, *, error: str, actor: Actor
) -> PayoutSchedule:
    """A failed transfer attempt that will be retried: counted and kept, status unchanged."""
    schedule = await get(session, schedule_id, for_update=True)
    if schedule.status != PayoutStatus.PROCESSING.value:
        return schedule
    before = schedule_view(schedule)
    schedule.retry_count += 1
    schedule.last_error = error
    await _changed(session, schedule, "attempt_failed", actor=actor, before=before, event=False)
    return schedule


async def complete(
    session: AsyncSession,
    schedule_id: uuid.UUID,
    *,
    transfer_id: str,
    actor: Actor,
) -> PayoutSchedule:
    """PROCESSING → COMPLETED with the payout row and the ledger entry payee → Stripe.
    COMPLETED already (a retried activity) is left as it is."""
    schedule = await get(session, schedule_id, for_update=True)
    if schedule.status == PayoutStatus.COMPLETED.value:
        return schedule
    check_payout_move(PayoutStatus(schedule.status), PayoutStatus.COMPLETED)
    before = schedule_view(schedule)
    money = Money(schedule.amount, schedule.currency)
    for code, name, kind in (
        (
            payee_account(schedule.payee_id),
            f"payable to {schedule.payee_id}",
            AccountType.LIABILITY,
        ),
        (STRIPE_ACCOUNT, "paid out through Stripe transfers", AccountType.ASSET),
    ):
        await ledger.ensure_account(session, code=code, name=name, type=kind, actor=actor)
    txn = await ledger.post_transaction(
        session,
        postings=transfer(payee_account(schedule.payee_id), STRIPE_ACCOUNT, money),
        actor=actor,
        description=f"payout schedule {schedule.id} paid ({transfer_id})",
        external_ref=f"payout-schedule-{schedule.id}",
        metadata={"stripe_transfer_id": transfer_id},
    )
    session.add(
        Payout(
            schedule_id=schedule.id,
            payee_id=schedule.payee_id,
            amount=schedule.amount,
            currency=schedule.currency,
            stripe_transfer_id=transfer_id,
            ledger_transaction_id=txn.id,
        )
    )
    schedule.status = PayoutStatus.COMPLETED.value
    schedule.completed_at = datetime.now(UTC)
    await _changed(
        session,
        schedule,
        "processed",
        actor=actor,
        before=before,
        metadata={"stripe_transfer_id": transfer_id},
    )
    return schedule


async def fail(
    session: AsyncSession, schedule_id: uuid.UUID, *, error: str, actor: Actor, final: bool
) -> PayoutSchedule:
    """PROCESSING → FAILED with the error kept; a later trigger runs it again. ``final``: Stripe
    refused the transfer, so the next run needs a new idempotency key."""
    schedule = await get(session, schedule_id, for_update=True)
    if schedule.status == PayoutStatus.FAILED.value:
        return schedule
    check_payout_move(PayoutStatus(schedule.status), PayoutStatus.FAILED)
    before = schedule_view(schedule)
    schedule.status = PayoutStatus.FAILED.value
    schedule.last_error = error
    if final:
        schedule.run_number += 1
    await _changed(session, schedule, "failed", actor=actor, before=before)
    return schedule


async def cancel(
    session: AsyncSession, schedule_id: uuid.UUID, *, actor: Actor, reason: str = ""
) -> PayoutSchedule:
    schedule = await get(session, schedule_id, for_update=True)
    if schedule.status == PayoutStatus.CANCELLED.value:
        return schedule
    check_payout_move(PayoutStatus(schedule.status), PayoutStatus.CANCELLED)
    before = schedule_view(schedule)
    schedule.status = PayoutStatus.CANCELLED.value
    schedule.cancelled_at = datetime.now(UTC)
    await _changed(
        session, schedule, "cancelled", actor=actor, before=before, metadata={"reason": reason}
    )
    return schedule


async def reschedule(
    session: AsyncSession, schedule_id: uuid.UUID, *, scheduled_for: datetime, actor: Actor
) -> PayoutSchedule:
    schedule = await get(session, schedule_id, for_update=True)
    if schedule.status != PayoutStatus.PENDING.value:
        check_payout_move(PayoutStatus(schedule.status), PayoutStatus.PENDING)
    if scheduled_for.tzinfo is None:
        raise ValidationError("scheduled_for needs a time zone", param="scheduled_for")
    before = schedule_view(schedule)
    schedule.scheduled_for = scheduled_for
    await _changed(session, schedule, "rescheduled", actor=actor, before=before, event=False)
    return schedule


@dataclass(frozen=True)
class PayoutStats:
    count_by_status: dict[str, int]
    amount_by_status: dict[str, dict[str, int]]
    due: int


async def stats(session: AsyncSession, *, now: datetime) -> PayoutStats:
    rows = await session.execute(
        select(
            PayoutSchedule.status,
            PayoutSchedule.currency,
            func.count(),
            func.sum(PayoutSchedule.amount),
        ).group_by(PayoutSchedule.status, PayoutSchedule.currency)
    )
    counts: dict[str, int] = {}
    amounts: dict[str, dict[str, int]] = {}
    for status, currency, count, amount in rows:
        counts[status] = counts.get(status, 0) + int(count)
        amounts.setdefault(status, {})[currency] = int(amount or 0)
    due = await session.scalar(
        select(func.count()).where(
            PayoutSchedule.status == PayoutStatus.PENDING.value,
            PayoutSchedule.scheduled_for <= now,
        )
    )
    return PayoutStats(counts, amounts, int(due or 0))


async def list_schedules(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    status: str | None = None,
    payee_id: str | None = None,
    trigger_event: str | None = None,
) -> Sequence[PayoutSchedule]:
    """Newest first, ``limit + 1`` rows so callers can tell ``has_more``."""
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(select(PayoutSchedule), PayoutSchedule, after)
    if schedule_id is not None:
        query = query.where(PayoutSchedule.id == schedule_id)
    if status:
        query = query.where(PayoutSchedule.status == status)
    if payee_id:
        query = query.where(PayoutSchedule.payee_id == payee_id)
    if trigger_event:
        query = query.where(PayoutSchedule.trigger_event == trigger_event)
    return list(await session.scalars(query.limit(limit + 1)))


async def open_schedules(session: AsyncSession) -> Sequence[PayoutSchedule]:
    """Schedules whose workflow should be running (for the safety net)."""
    query = select(PayoutSchedule).where(
        PayoutSchedule.status.in_(
            [PayoutStatus.PENDING.value, PayoutStatus.PROCESSING.value, PayoutStatus.FAILED.value]
        )
    )
    return list(await session.scalars(query))

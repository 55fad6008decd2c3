"""The business figures behind ``/metrics``: one read-only pass over the database.

Counts come from the records themselves, so every API replica reports the same figures
whatever process did the work (aggregate them with ``max``, not ``sum``), and a restart loses
nothing. Each query is an aggregate over an indexed column or a small partial index, except
the escrow lateness histogram, which reads the released holds.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Float, and_, case, cast, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from domain.escrow import HoldStatus, PayoutStatus
from domain.subscriptions import AttemptStatus, SubscriptionStatus
from domain.webhooks import DeliveryStatus
from models.anchoring import AnchorBatch
from models.escrow import EscrowHold, Payout, PayoutSchedule
from models.subscriptions import InvoicePaymentAttempt, Subscription
from models.tickets import Ticket
from models.webhooks import WebhookDelivery

#: Upper bounds (seconds) of the escrow release lateness histogram.
LATENESS_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)

ANCHOR_BATCH_STATUSES = ("PENDING", "SUBMITTED", "CONFIRMED", "FAILED")
# Where a ticket not yet anchored waits: no batch yet, or in a batch not CONFIRMED.
ANCHORING_STAGES = ("unbatched", "pending", "submitted", "failed")
HOLDING = (HoldStatus.ACTIVE.value, HoldStatus.PARTIALLY_RELEASED.value)


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (``+Inf`` last), their count and their sum."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


@dataclass(frozen=True)
class BusinessSnapshot:
    taken_at: datetime
    payout_schedules: dict[str, int]
    payouts_completed: int
    payouts_completed_amount: dict[str, int]
    escrow_release_lateness: Histogram
    escrow_holds_overdue: int
    escrow_overdue_max_seconds: float
    # (attempt "first" or "retry", outcome "succeeded" or "failed") -> attempts
    dunning_attempts: dict[tuple[str, str], int]
    dunning_attempts_pending: int
    subscriptions: dict[str, int]
    anchoring_backlog: dict[str, int]
    anchoring_backlog_oldest_seconds: float
    anchor_batches: dict[str, int]
    webhook_deliveries: dict[str, int] = field(default_factory=dict)


def _zeros(names: tuple[str, ...] | list[str]) -> dict[str, int]:
    return dict.fromkeys(names, 0)


async def _by(
    session: AsyncSession, column: InstrumentedAttribute[str], names: list[str]
) -> dict[str, int]:
    """Rows per value of ``column`` (every known value present, 0 when none)."""
    counts = _zeros(names)
    for value, count in await session.execute(select(column, func.count()).group_by(column)):
        counts[str(value)] = int(count)
    return counts


async def snapshot(session: AsyncSession) -> BusinessSnapshot:
    """Every business figure, read in one transaction (the caller's)."""
    now = await session.scalar(select(func.now()))
    assert now is not None
    payouts_amount: dict[str, int] = {}
    payouts_completed = 0
    for currency, count, amount in await session.execute(
        select(Payout.currency, func.count(), func.coalesce(func.sum(Payout.amount), 0)).group_by(
            Payout.currency
        )
    ):
        payouts_completed += int(count)
        payouts_amount[str(currency)] = int(amount)
    overdue_count, oldest_due = (
        await session.execute(
            select(func.count(), func.min(EscrowHold.release_at)).where(
                EscrowHold.status.in_(HOLDING),
                EscrowHold.release_at < now,
                EscrowHold.dispute_reason.is_(None),
                func.jsonb_array_length(EscrowHold.approvals) >= EscrowHold.required_approvals,
            )
        )
    ).one()
    unbatched, oldest_unbatched = (
        await session.execute(
            select(func.count(), func.min(Ticket.created_at)).where(
                Ticket.anchor_batch_id.is_(None)
            )
        )
    ).one()
    backlog = _zeros(ANCHORING_STAGES)
    backlog["unbatched"] = int(unbatched)
    batches = _zeros(ANCHOR_BATCH_STATUSES)
    for status, count, leaves in await session.execute(
        select(
            AnchorBatch.status, func.count(), func.coalesce(func.sum(AnchorBatch.leaf_count), 0)
        ).group_by(AnchorBatch.status)
    ):
        batches[str(status)] = int(count)
        if status != "CONFIRMED":
            backlog[str(status).lower()] = int(leaves)
    return BusinessSnapshot(
        taken_at=now,
        payout_schedules=await _by(session, PayoutSchedule.status, [s.value for s in PayoutStatus]),
        payouts_completed=payouts_completed,
        payouts_completed_amount=payouts_amount,
        escrow_release_lateness=await _lateness(session),
        escrow_holds_overdue=int(overdue_count),
        escrow_overdue_max_seconds=_age(now, oldest_due),
        dunning_attempts=await _dunning(session),
        dunning_attempts_pending=int(
            await session.scalar(
                select(func.count()).where(
                    InvoicePaymentAttempt.status == AttemptStatus.PENDING.value
                )
            )
            or 0
        ),
        subscriptions=await _by(
            session, Subscription.status, [s.value for s in SubscriptionStatus]
        ),
        anchoring_backlog=backlog,
        anchoring_backlog_oldest_seconds=_age(now, oldest_unbatched),
        anchor_batches=batches,
        webhook_deliveries=await _by(
            session, WebhookDelivery.status, [s.value for s in DeliveryStatus]
        ),
    )


def _age(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


async def _lateness(session: AsyncSession) -> Histogram:
    """Seconds from ``release_at`` to the release of holds released in full at or after their
    date (an early release by an admin is not late; a hold that waited on a dispute or on
    approvals counts with its wait)."""
    late = func.extract("epoch", EscrowHold.released_at - EscrowHold.release_at)
    released = and_(
        EscrowHold.status == HoldStatus.RELEASED.value,
        EscrowHold.released_at.is_not(None),
        EscrowHold.released_at >= EscrowHold.release_at,
    )
    columns = [
        func.count(case((late <= bound, literal(1)))).label(f"le_{index}")
        for index, bound in enumerate(LATENESS_BUCKETS)
    ]
    row = (
        await session.execute(
            select(*columns, func.count(), func.coalesce(func.sum(cast(late, Float)), 0.0)).where(
                released
            )
        )
    ).one()
    *cumulative, count, total = row
    finite = [(bound, int(n)) for bound, n in zip(LATENESS_BUCKETS, cumulative, strict=True)]
    buckets = (*finite, (float("inf"), int(count)))
    return Histogram(buckets=buckets, count=int(count), sum=float(total))


async def _dunning(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Finished charge attempts of invoices: the first of an invoice, or a retry."""
    kind = case((InvoicePaymentAttempt.number == 1, literal("first")), else_=literal("retry"))
    counts = {
        (attempt, outcome): 0
        for attempt in ("first", "retry")
        for outcome in (AttemptStatus.SUCCEEDED.value, AttemptStatus.FAILED.value)
    }
    rows = await session.execute(
        select(kind, InvoicePaymentAttempt.status, func.count())
        .where(InvoicePaymentAttempt.status != AttemptStatus.PENDING.value)
        .group_by(kind, InvoicePaymentAttempt.status)
    )
    for attempt, outcome, count in rows:
        counts[(str(attempt), str(outcome))] = int(count)
    return counts


async def read_only(session: AsyncSession, timeout_seconds: float) -> None:
    """Make the current transaction read-only, each query bounded: a slow scrape never piles
    up behind itself."""
    await session.execute(text("SET TRANSACTION READ ONLY"))
    await session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_seconds * 1000)}"))

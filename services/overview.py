"""Read-only aggregates across domains for the admin console's overview: payouts completed
and failed per day, dunning outcomes and the anchoring backlog. (Escrow and payout-schedule
totals are ``escrow.stats`` and ``payouts.stats``.) Every figure is one grouped query; the
per-day and dunning figures count audit events, which record each change when it happened."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.anchoring import AnchorBatch
from models.audit import AuditEvent
from models.subscriptions import Subscription
from models.tickets import Ticket

PAYOUT_COMPLETED = "payout_schedule.processed"
PAYOUT_FAILED = "payout_schedule.failed"


@dataclass(frozen=True)
class DayOutcomes:
    day: date
    completed: int
    failed: int


async def payout_outcomes_per_day(
    session: AsyncSession, *, days: int, now: datetime
) -> list[DayOutcomes]:
    """Payout schedules completed and failed (each failed run) on each of the last ``days``
    UTC days up to ``now``'s, oldest first, days without any included."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    day = cast(func.timezone("UTC", AuditEvent.occurred_at), Date)
    rows = await session.execute(
        select(day, AuditEvent.action, func.count())
        .where(
            AuditEvent.entity_type == "payout_schedule",
            AuditEvent.action.in_((PAYOUT_COMPLETED, PAYOUT_FAILED)),
            AuditEvent.occurred_at >= datetime.combine(first, datetime.min.time(), UTC),
        )
        .group_by(day, AuditEvent.action)
    )
    counts: dict[tuple[date, str], int] = {(d, a): int(n) for d, a, n in rows}
    return [
        DayOutcomes(
            day=first + timedelta(days=i),
            completed=counts.get((first + timedelta(days=i), PAYOUT_COMPLETED), 0),
            failed=counts.get((first + timedelta(days=i), PAYOUT_FAILED), 0),
        )
        for i in range(days)
    ]


@dataclass(frozen=True)
class DunningOutcomes:
    """Over the window: subscriptions whose charge failed (entered dunning), that paid again
    (recovered), that became unpaid or were canceled after the last retry; and now: how many
    are past due (retries under way) or unpaid."""

    entered: int
    recovered: int
    unpaid: int
    canceled: int
    past_due_now: int
    unpaid_now: int


async def dunning_outcomes(session: AsyncSession, *, since: datetime) -> DunningOutcomes:
    action = AuditEvent.action
    was = AuditEvent.before["status"].astext
    rows = await session.execute(
        select(action, was, func.count())
        .where(
            AuditEvent.entity_type == "subscription",
            action.in_(
                (
                    "subscription.past_due",
                    "subscription.reactivated",
                    "subscription.unpaid",
                    "subscription.canceled",
                )
            ),
            AuditEvent.occurred_at >= since,
        )
        .group_by(action, was)
    )
    found: dict[str, int] = {}
    for name, before, count in rows:
        # A cancellation is a dunning outcome only when the subscription was past due.
        if name == "subscription.canceled" and before != "past_due":
            continue
        key = name.removeprefix("subscription.")
        found[key] = found.get(key, 0) + int(count)
    now_rows = await session.execute(
        select(Subscription.status, func.count())
        .where(Subscription.status.in_(("past_due", "unpaid")))
        .group_by(Subscription.status)
    )
    now = {status: int(count) for status, count in now_rows}
    return DunningOutcomes(
        entered=found.get("past_due", 0),
        recovered=found.get("reactivated", 0),
        unpaid=found.get("unpaid", 0),
        canceled=found.get("canceled", 0),
        past_due_now=now.get("past_due", 0),
        unpaid_now=now.get("unpaid", 0),
    )


@dataclass(frozen=True)
class AnchoringBacklog:
    """Tickets not yet in a batch (and since when), and batches by status that are not
    confirmed yet (PENDING, SUBMITTED, FAILED)."""

    waiting_tickets: int
    oldest_waiting: datetime | None
    batches_by_status: dict[str, int]


async def anchoring_backlog(session: AsyncSession) -> AnchoringBacklog:
    waiting = await session.execute(
        select(func.count(), func.min(Ticket.created_at)).where(Ticket.anchor_batch_id.is_(None))
    )
    count, oldest = waiting.one()
    batches = await session.execute(
        select(AnchorBatch.status, func.count())
        .where(AnchorBatch.status != "CONFIRMED")
        .group_by(AnchorBatch.status)
    )
    return AnchoringBacklog(
        waiting_tickets=int(count or 0),
        oldest_waiting=oldest,
        batches_by_status={status: int(n) for status, n in batches},
    )

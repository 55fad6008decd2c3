"""Liquidity: what the database knows of the rails' money (committed, sent over the volume
window), combined with the providers' balances given by the caller into positions (see
``domain/liquidity.py``), and the runway alerts of the hourly check, recorded in the outbox
once per crossing (``liquidity.runway_low``, ``liquidity.runway_recovered``).

Whether a position *became* low is decided from the last liquidity event recorded for it
(entity ``liquidity``, id ``rail:currency``): the outbox is the check's memory, so a check
that runs twice (a retried activity) records nothing twice. Checks are serialized by a
transaction-scoped advisory lock.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from domain import liquidity as rules
from domain.liquidity import Balance, Outflows, Position
from domain.rails import Rail
from models.escrow import Payout, PayoutSchedule
from models.outbox import OutboxEvent
from models.transfers import Transfer
from services import outbox

ALERT_LOCK = "liquidity-alerts"


@dataclass(frozen=True)
class LastEvent:
    event_type: str
    at: datetime


async def outflows(session: AsyncSession, *, since: datetime) -> list[Outflows]:
    """Per rail and currency: committed (transfers pending, queued or processing; Stripe
    payouts pending or processing) and sent since ``since`` (transfers that succeeded, by
    ``completed_at``; payouts, by when they were paid): one query, grouped once."""
    committed_transfer = Transfer.status.in_(rules.COMMITTED_TRANSFER_STATUSES)
    sent_transfer = (Transfer.status == rules.SENT_TRANSFER_STATUS) & (
        Transfer.completed_at >= since
    )
    transfers = select(
        Transfer.rail.label("rail"),
        Transfer.currency.label("currency"),
        func.coalesce(func.sum(Transfer.amount).filter(committed_transfer), 0).label("committed"),
        func.coalesce(func.sum(Transfer.amount).filter(sent_transfer), 0).label("sent"),
    ).where(committed_transfer | sent_transfer)
    transfers = transfers.group_by(Transfer.rail, Transfer.currency)
    open_payouts = (
        select(
            literal(Rail.STRIPE.value).label("rail"),
            PayoutSchedule.currency.label("currency"),
            func.sum(PayoutSchedule.amount).label("committed"),
            literal(0).label("sent"),
        )
        .where(PayoutSchedule.status.in_(rules.COMMITTED_PAYOUT_STATUSES))
        .group_by(PayoutSchedule.currency)
    )
    paid = (
        select(
            literal(Rail.STRIPE.value).label("rail"),
            Payout.currency.label("currency"),
            literal(0).label("committed"),
            func.sum(Payout.amount).label("sent"),
        )
        .where(Payout.created_at >= since)
        .group_by(Payout.currency)
    )
    parts = union_all(transfers, open_payouts, paid).subquery()
    rows = await session.execute(
        select(
            parts.c.rail,
            parts.c.currency,
            func.sum(parts.c.committed),
            func.sum(parts.c.sent),
        )
        .group_by(parts.c.rail, parts.c.currency)
        .order_by(parts.c.rail, parts.c.currency)
    )
    return [
        Outflows(rail=rail, currency=currency, committed=int(committed), sent=int(sent))
        for rail, currency, committed, sent in rows
    ]


async def positions(
    session: AsyncSession,
    balances: Iterable[Balance],
    *,
    rails: Collection[str],
    now: datetime,
    window_days: int,
    alert_days: float,
) -> list[Position]:
    """The positions of ``rails`` at ``now`` given the providers' ``balances``."""
    window_days = rules.check_window_days(window_days)
    flows = await outflows(session, since=now - timedelta(days=window_days))
    return rules.assess(
        balances, flows, rails=rails, window_days=window_days, alert_days=alert_days
    )


async def last_events(session: AsyncSession) -> dict[str, LastEvent]:
    """The last liquidity event recorded for each position, by entity id (``stripe:USD``)."""
    rows = await session.execute(
        select(OutboxEvent.entity_id, OutboxEvent.event_type, OutboxEvent.created_at)
        .where(
            OutboxEvent.entity_type == rules.ENTITY_TYPE,
            OutboxEvent.event_type.in_(rules.EVENT_TYPES),
        )
        .distinct(OutboxEvent.entity_id)
        .order_by(OutboxEvent.entity_id, OutboxEvent.id.desc())
    )
    return {entity: LastEvent(event_type, at) for entity, event_type, at in rows}


def event_payload(item: Position, *, as_of: datetime, alert_days: float) -> dict[str, Any]:
    return {
        "rail": item.rail,
        "currency": item.currency,
        "available": item.available,
        "committed": item.committed,
        "free": item.free,
        "daily_volume": item.daily_volume,
        "window_days": item.window_days,
        "runway_days": item.runway_days,
        "threshold_days": float(alert_days),
        "overcommitted": item.overcommitted,
        "as_of": as_of.isoformat(),
    }


async def record_alerts(
    session: AsyncSession,
    found: Sequence[Position],
    *,
    as_of: datetime,
    alert_days: float,
) -> list[tuple[Position, str]]:
    """Records ``liquidity.runway_low`` for each position that became low and
    ``liquidity.runway_recovered`` for each that is not low any more, in the caller's
    transaction; returns what it recorded. Positions as they were record nothing."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(ALERT_LOCK, 0))))
    last = {entity: event.event_type for entity, event in (await last_events(session)).items()}
    crossed = rules.alerts(found, last)
    for item, event_type in crossed:
        await outbox.emit(
            session,
            event_type,
            entity_type=rules.ENTITY_TYPE,
            entity_id=item.entity_id,
            payload={
                "id": item.entity_id,
                **event_payload(item, as_of=as_of, alert_days=alert_days),
            },
        )
    return crossed

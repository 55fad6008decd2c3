"""Liquidity on a real PostgreSQL: what is committed and what left each rail (transfers by
status and completion time, payee payouts), the positions given the providers' balances,
and runway alerts recorded in the outbox once per crossing."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from domain.escrow import TriggerEvent
from domain.liquidity import RUNWAY_LOW, RUNWAY_RECOVERED, Balance, Outflows
from domain.money import Money
from models.outbox import OutboxEvent
from models.transfers import Transfer
from services import liquidity, payouts

NOW = datetime.now(UTC)


def transfer(
    rail: str, currency: str, amount: int, status: str, *, completed: timedelta | None = None
) -> Transfer:
    transfer_id = uuid.uuid4()
    return Transfer(
        id=transfer_id,
        partner_id="liquidity-partner",
        reference=f"liq-{transfer_id.hex[:16]}",
        destination="acct_1Liquidity" if rail == "stripe" else "0x" + "ab" * 20,
        amount=amount,
        currency=currency,
        rail=rail,
        route_reason="test",
        status=status,
        attempts=0,
        key_run=0,
        idempotency_key=f"transfer-{transfer_id}",
        external_id=f"ext-{transfer_id.hex[:8]}" if status == "succeeded" else None,
        window_at=NOW + timedelta(hours=3) if status == "queued" else None,
        completed_at=NOW - completed if completed is not None else None,
    )


async def payout(session: AsyncSession, amount: int, *, paid: bool = False) -> None:
    schedule = await payouts.create_schedule(
        session,
        payee_id=f"payee-{uuid.uuid4().hex[:8]}",
        destination="acct_1LiquidityPayee",
        money=Money(amount, "USD"),
        trigger_event=TriggerEvent.MANUAL,
        scheduled_for=NOW + timedelta(days=30),
        actor=SYSTEM,
    )
    if paid:
        await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)
        await payouts.complete(
            session, schedule.id, transfer_id=f"tr_{uuid.uuid4().hex[:12]}", actor=SYSTEM
        )


async def seed(session: AsyncSession) -> None:
    session.add_all(
        [
            transfer("stripe", "USD", 100, "pending"),
            transfer("stripe", "USD", 200, "queued"),
            transfer("stripe", "USD", 300, "processing"),
            transfer("stripe", "USD", 1_000, "succeeded", completed=timedelta(days=1)),
            # Outside the 7-day window, and neither committed nor sent.
            transfer("stripe", "USD", 5_000, "succeeded", completed=timedelta(days=10)),
            transfer("stripe", "USD", 999, "failed", completed=timedelta(hours=1)),
            transfer("stripe", "USD", 998, "cancelled", completed=timedelta(hours=1)),
            transfer("stripe", "EUR", 700, "succeeded", completed=timedelta(hours=2)),
            transfer("chain", "USDC", 1_000_000, "queued"),
            transfer("chain", "USDC", 6_000_000, "succeeded", completed=timedelta(days=2)),
            transfer("chain", "USD", 250, "pending"),
            transfer("chain", "USD", 100, "succeeded", completed=timedelta(days=6)),
        ]
    )
    await session.flush()
    await payout(session, 400)
    await payout(session, 600, paid=True)


async def test_committed_and_sent_per_rail_and_currency_in_one_query(
    session: AsyncSession,
) -> None:
    await seed(session)

    flows = await liquidity.outflows(session, since=NOW - timedelta(days=7))

    assert flows == [
        Outflows("chain", "USD", committed=250, sent=100),
        Outflows("chain", "USDC", committed=1_000_000, sent=6_000_000),
        Outflows("stripe", "EUR", committed=0, sent=700),
        # Transfers pending, queued, processing and the pending payout; the transfer that
        # succeeded yesterday and the payout paid now.
        Outflows("stripe", "USD", committed=1_000, sent=1_600),
    ]


async def test_positions_combine_the_providers_balances(session: AsyncSession) -> None:
    await seed(session)

    found = await liquidity.positions(
        session,
        [
            Balance("stripe", "USD", available=2_000, pending=50),
            Balance("chain", "USDC", available=5_000_000),
        ],
        rails={"stripe", "chain"},
        now=NOW,
        window_days=7,
        alert_days=2,
    )

    assert [
        (p.entity_id, p.available, p.committed, p.free, p.daily_volume, p.runway_days, p.low)
        for p in found
    ] == [
        # 2.50 USD on the chain is 2,500,000 of the USDC float; 1.00 USD sent is 1,000,000.
        ("chain:USDC", 5_000_000, 3_500_000, 1_500_000, 1_000_000, 1.5, True),
        ("stripe:EUR", 0, 0, 0, 100, 0.0, True),
        ("stripe:USD", 2_000, 1_000, 1_000, 229, 4.37, False),
    ]


async def test_an_alert_is_recorded_once_per_crossing(session: AsyncSession) -> None:
    await seed(session)

    async def check(available: int) -> list[str]:
        found = await liquidity.positions(
            session,
            [Balance("stripe", "USD", available=available)],
            rails={"stripe"},
            now=NOW,
            window_days=7,
            alert_days=2,
        )
        usd = [p for p in found if p.currency == "USD"]
        crossed = await liquidity.record_alerts(session, usd, as_of=NOW, alert_days=2)
        return [event for _, event in crossed]

    # 1,000 committed; 1,600 sent over 7 days: 1,200 leaves 200 free, under a day.
    assert await check(1_200) == [RUNWAY_LOW]
    assert await check(1_100) == []
    assert await check(10_000) == [RUNWAY_RECOVERED]
    assert await check(20_000) == []
    assert await check(900) == [RUNWAY_LOW]

    events = list(
        await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.entity_type == "liquidity")
            .order_by(OutboxEvent.id)
        )
    )
    assert [(e.event_type, e.entity_id) for e in events] == [
        (RUNWAY_LOW, "stripe:USD"),
        (RUNWAY_RECOVERED, "stripe:USD"),
        (RUNWAY_LOW, "stripe:USD"),
    ]
    first = events[0].payload
    assert first == {
        "id": "stripe:USD",
        "rail": "stripe",
        "currency": "USD",
        "available": 1_200,
        "committed": 1_000,
        "free": 200,
        "daily_volume": 229,
        "window_days": 7,
        "runway_days": 0.87,
        "threshold_days": 2.0,
        "overcommitted": False,
        "as_of": NOW.isoformat(),
    }
    assert events[2].payload["free"] == -100 and events[2].payload["overcommitted"] is True
    last = await liquidity.last_events(session)
    assert last["stripe:USD"].event_type == RUNWAY_LOW

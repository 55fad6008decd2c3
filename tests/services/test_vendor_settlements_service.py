"""Vendor settlements on a real PostgreSQL (a fresh database per test), over payments made
through the payment and refund services as their workflows would: a payment split between two
vendors, captured, partly refunded; a partial capture; payments outside the period, in
another currency or not captured. The settlement's exact figures, once per period, the hold,
the refunds of the hold deducted, processing into a transfer request, and the summary."""

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, ValidationError
from domain.money import Money
from domain.payments import Allocation, RefundReason
from domain.rails import RoutingRules
from integrations.stripe_customers import CardDetails
from models.commissions import SettlementTransfer, VendorSettlement, VendorSettlementLine
from models.outbox import OutboxEvent
from models.payments import Payment, PaymentMethod
from services import ledger, payment_methods, payments, refunds, transfers, vendor_settlements

Db = async_sessionmaker[AsyncSession]
ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)
JAN = datetime(2025, 1, 1, tzinfo=UTC)
JAN_10 = datetime(2025, 1, 10, 12, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
FEB_10 = datetime(2025, 2, 10, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)
HELD_UNTIL = FEB + timedelta(days=7)


async def add_method(db: Db) -> PaymentMethod:
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"
    pm = f"pm_{uuid.uuid4().hex[:16]}"
    async with db() as session, session.begin():
        await payment_methods.save_stripe_customer(session, customer_id, f"cus_{customer_id}")
        return await payment_methods.add(
            session,
            customer_id=customer_id,
            stripe_customer_id=f"cus_{customer_id}",
            card=CardDetails(pm, "card", "visa", "4242", 12, 2031, "US", pm[-16:]),
            make_default=True,
            actor=SYSTEM,
        )


async def paid(
    db: Db,
    method: PaymentMethod,
    amount: int,
    allocations: Sequence[Allocation],
    *,
    currency: str = "USD",
    captured: int | None = None,
    completed_at: datetime | None = JAN_10,
) -> Payment:
    """A payment created, authorized, captured (``captured``, default all) and completed
    through the service steps its workflow takes, then dated ``completed_at``; None: left
    authorized, never captured."""
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        payment = await payments.create_payment(
            session,
            customer_id=method.customer_id,
            method=method,
            money=Money(amount, currency),
            actor=SYSTEM,
            allocations=allocations,
        )
    async with db() as session, session.begin():
        await payments.start_authorizing(session, payment.id, actor=SYSTEM)
        await payments.mark_authorized(
            session,
            payment.id,
            intent_id=f"pi_{uuid.uuid4().hex}",
            charge_id=None,
            amount=amount,
            authorized_at=now,
            expires_at=now + timedelta(days=7),
            actor=SYSTEM,
        )
    if completed_at is None:
        return payment
    async with db() as session, session.begin():
        await payments.start_capture(session, payment.id, actor=SYSTEM)
    async with db() as session, session.begin():
        await payments.complete(
            session,
            payment.id,
            amount_captured=amount if captured is None else captured,
            charge_id=f"ch_{uuid.uuid4().hex}",
            actor=SYSTEM,
        )
        # Completion is stamped with the clock; the test's periods are fixed dates.
        await session.execute(
            update(Payment).where(Payment.id == payment.id).values(completed_at=completed_at)
        )
    return payment


async def refund(db: Db, payment: Payment, amount: int) -> None:
    async with db() as session, session.begin():
        requested = await refunds.create_refund(
            session,
            payment_id=payment.id,
            amount=amount,
            reason=RefundReason.REQUESTED_BY_CUSTOMER,
            actor=SYSTEM,
            approval_threshold=None,
        )
    async with db() as session, session.begin():
        await refunds.complete(
            session, requested.id, stripe_refund_id=f"re_{uuid.uuid4().hex}", actor=SYSTEM
        )


async def compute(
    db: Db,
    vendor_id: str = "vendor-a",
    start: datetime = JAN,
    end: datetime = FEB,
    *,
    currency: str = "USD",
    now: datetime = FEB,
) -> tuple[VendorSettlement, bool]:
    async with db() as session, session.begin():
        return await vendor_settlements.compute(
            session,
            vendor_id=vendor_id,
            currency=currency,
            period_start=start,
            period_end=end,
            hold_days=7,
            actor=ADMIN,
            now=now,
        )


async def process(db: Db, settlement_id: uuid.UUID, now: datetime) -> VendorSettlement:
    async with db() as session, session.begin():
        return await vendor_settlements.process(session, settlement_id, actor=ADMIN, now=now)


def figures(settlement: VendorSettlement) -> tuple[int, int, int, int, int]:
    return (
        settlement.gross_captured,
        settlement.commission,
        settlement.refunded,
        settlement.net_amount,
        settlement.payment_count,
    )


@pytest.fixture
async def january(db: Db) -> dict[str, Payment]:
    """vendor-a's and vendor-b's payments (see each line for its split)."""
    method = await add_method(db)
    # 10,000: vendor-a 6,000 at 10 % (600 commission, 5,400 credited), vendor-b 3,000 at 0,
    # the platform 1,600. A refund of 2,000 takes back 1,080 from vendor-a, 600 from vendor-b.
    split = await paid(
        db, method, 10_000, [Allocation("vendor-a", 6_000, 1_000), Allocation("vendor-b", 3_000, 0)]
    )
    await refund(db, split, 2_000)
    # 5,000 all to vendor-a at 10 % (500; 4,500 credited), 4,000 captured: vendor-a gets
    # 3,600 and counts 400 of commission.
    partial = await paid(db, method, 5_000, [Allocation("vendor-a", 5_000, 1_000)], captured=4_000)
    # Not in the USD January settlement: February, another currency, never captured.
    february = await paid(
        db, method, 2_000, [Allocation("vendor-a", 2_000, 1_000)], completed_at=FEB_10
    )
    await paid(db, method, 1_000, [Allocation("vendor-a", 1_000, 1_000)], currency="EUR")
    await paid(db, method, 7_000, [Allocation("vendor-a", 7_000, 1_000)], completed_at=None)
    return {"split": split, "partial": partial, "february": february}


async def test_a_settlement_counts_the_periods_captures_minus_commission_and_refunds(
    db: Db, january: dict[str, Payment]
) -> None:
    settlement, created = await compute(db)

    assert created
    assert settlement.status == "pending_hold"
    assert settlement.hold_until == HELD_UNTIL
    # gross 6,000 + 4,000; commission 600 + 400; refunded 1,080; net 5,400 + 3,600 - 1,080.
    assert figures(settlement) == (10_000, 1_000, 1_080, 7_920, 2)
    other, _ = await compute(db, "vendor-b")
    assert figures(other) == (3_000, 0, 600, 2_400, 1)
    async with db() as session:
        lines = await session.scalars(
            select(VendorSettlementLine)
            .where(VendorSettlementLine.settlement_id == settlement.id)
            .order_by(VendorSettlementLine.gross_captured)
        )
        assert [
            (line.payment_id, line.gross_captured, line.commission, line.captured, line.refunded)
            for line in lines
        ] == [
            (january["partial"].id, 4_000, 400, 3_600, 0),
            (january["split"].id, 6_000, 600, 5_400, 1_080),
        ]
        events = await session.scalars(
            select(OutboxEvent.event_type).where(OutboxEvent.entity_id == str(settlement.id))
        )
        assert list(events) == ["vendor_settlement.created"]


async def test_a_period_is_settled_once(db: Db, january: dict[str, Payment]) -> None:
    first, created = await compute(db)
    again, created_again = await compute(db, now=MAR)

    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert figures(again) == figures(first)
    async with db() as session:
        count = await session.scalar(select(func.count()).select_from(VendorSettlement))
    assert count == 1

    with pytest.raises(Conflict) as overlapping:
        await compute(db, start=JAN + timedelta(days=15), end=FEB + timedelta(days=15), now=MAR)
    assert overlapping.value.code == "settlement_period_overlaps"
    assert overlapping.value.details["settlement_ids"] == [str(first.id)]
    with pytest.raises(ValidationError) as running:
        await compute(db, start=FEB, end=MAR, now=FEB_10)
    assert running.value.code == "period_not_ended"
    # Another currency or the next period are settlements of their own.
    euros, _ = await compute(db, currency="EUR")
    assert figures(euros) == (1_000, 100, 0, 900, 1)
    march, _ = await compute(db, start=FEB, end=MAR, now=MAR)
    assert figures(march) == (2_000, 200, 0, 1_800, 1)


async def test_concurrent_computes_of_a_period_make_one_settlement(
    db: Db, january: dict[str, Payment]
) -> None:
    results = await asyncio.gather(compute(db), compute(db), compute(db))

    assert len({settlement.id for settlement, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, True]


async def test_due_after_the_hold_then_processed_into_a_transfer_request(
    db: Db, january: dict[str, Payment]
) -> None:
    settlement, _ = await compute(db)
    # A refund completed during the hold is deducted when the settlement is processed:
    # 1,000 of the partial payment takes back 900 from vendor-a.
    await refund(db, january["partial"], 1_000)

    early = HELD_UNTIL - timedelta(seconds=1)
    async with db() as session:
        assert await vendor_settlements.due(session, early, limit=10) == []
    with pytest.raises(Conflict) as refused:
        await process(db, settlement.id, early)
    assert refused.value.code == "settlement_not_due"

    async with db() as session, session.begin():
        due = await vendor_settlements.due(session, HELD_UNTIL, limit=10)
        assert [row.id for row in due] == [settlement.id]
        released = await vendor_settlements.release_due(session, HELD_UNTIL, actor=SYSTEM)
        assert [row.id for row in released] == [settlement.id]
        assert released[0].status == "due"

    processed = await process(db, settlement.id, HELD_UNTIL)
    assert processed.status == "processing"
    assert processed.processed_at == HELD_UNTIL
    assert figures(processed) == (10_000, 1_000, 1_980, 7_020, 2)
    again = await process(db, settlement.id, HELD_UNTIL + timedelta(days=1))  # harmless
    assert again.status == "processing"

    async with db() as session:
        transfers = list(await session.scalars(select(SettlementTransfer)))
        assert len(transfers) == 1
        transfer = transfers[0]
        assert (transfer.settlement_id, transfer.destination, transfer.amount) == (
            settlement.id,
            "vendor-a",
            7_020,
        )
        assert (transfer.currency, transfer.status, transfer.rail) == ("USD", "requested", None)
        assert transfer.idempotency_key == f"vendor-settlement-{settlement.id}"
        waiting = await vendor_settlements.requested_transfers(session, limit=10)
        assert [row.id for row in waiting] == [transfer.id]
        assert await vendor_settlements.due(session, HELD_UNTIL, limit=10) == []
        events = await session.scalars(
            select(OutboxEvent.event_type)
            .where(OutboxEvent.entity_id == str(settlement.id))
            .order_by(OutboxEvent.id)
        )
        assert list(events) == [
            "vendor_settlement.created",
            "vendor_settlement.due",
            "vendor_settlement.processing",
        ]

    # Processed: its figures no longer move; computing the period again answers it as it is.
    await refund(db, january["split"], 1_000)
    frozen, created = await compute(db, now=MAR)
    assert (frozen.id, created, figures(frozen)) == (settlement.id, False, figures(processed))


async def test_a_settlement_with_nothing_to_pay_is_closed_as_paid(db: Db) -> None:
    empty, _ = await compute(db, "vendor-idle")
    assert figures(empty) == (0, 0, 0, 0, 0)

    # Processed straight from pending_hold once its hold has passed.
    closed = await process(db, empty.id, HELD_UNTIL)

    assert closed.status == "paid"
    assert closed.closed_at == HELD_UNTIL
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(SettlementTransfer)) == 0


async def test_the_vendor_summary(db: Db, january: dict[str, Payment]) -> None:
    settlement, _ = await compute(db)
    await process(db, settlement.id, HELD_UNTIL)
    await compute(db, start=FEB, end=MAR, now=MAR)  # February: computed, on hold

    async with db() as session:
        found = await vendor_settlements.summary(session, "vendor-a")
        nobody = await vendor_settlements.summary(session, "vendor-nobody")

    assert nobody == []
    eur, usd = found  # alphabetical
    # USD: January (10,000 gross, 1,000 commission, 1,080 refunded) and February (2,000, 200).
    assert (usd.currency, usd.gross_captured, usd.commission, usd.refunded, usd.net) == (
        "USD",
        12_000,
        1_200,
        1_080,
        9_720,
    )
    assert (usd.settled, usd.in_settlement, usd.pending, usd.payment_count) == (
        7_920,
        1_800,
        1_800,
        3,
    )
    assert (eur.currency, eur.gross_captured, eur.net, eur.settled, eur.pending) == (
        "EUR",
        1_000,
        900,
        0,
        900,
    )


async def test_a_processed_settlement_is_routed_to_the_vendors_account_and_paid_once(
    db: Db, january: dict[str, Payment]
) -> None:
    settlement, _ = await compute(db)
    processed = await process(db, settlement.id, HELD_UNTIL)
    async with db() as session:
        [request] = await vendor_settlements.requested_transfers(session, limit=10)
        assert request.failure_reason == "vendor vendor-a has no payout account"
        owed_before = (await ledger.balances(session, "payee:vendor-a"))["USD"]

    with pytest.raises(ValidationError) as refused:
        async with db() as session, session.begin():
            await vendor_settlements.set_payout_account(
                session, "vendor-a", "IBAN-DE89", rules=RoutingRules(), actor=ADMIN
            )
    assert refused.value.code == "invalid_destination"

    async with db() as session, session.begin():
        account, routed = await vendor_settlements.set_payout_account(
            session, "vendor-a", "acct_1VendorA", rules=RoutingRules(), actor=ADMIN, now=HELD_UNTIL
        )
        assert account.destination == "acct_1VendorA"
        assert [item.id for item in routed] == [request.id]
    async with db() as session:
        request = await session.get_one(SettlementTransfer, request.id)
        assert (request.status, request.rail, request.failure_reason) == ("routed", "stripe", None)
        assert request.transfer_id is not None
        sent = await transfers.get(session, request.transfer_id)
    # No windows on the rail: queued for now, which its window workflow sends at once.
    assert (sent.status, sent.window_at, sent.destination, sent.amount) == (
        "queued",
        HELD_UNTIL,
        "acct_1VendorA",
        processed.net_amount,
    )
    assert (sent.partner_id, sent.reference, sent.settles_account) == (
        vendor_settlements.VENDOR_SETTLEMENTS_PARTNER,
        f"vendor-settlement-{settlement.id}",
        "payee:vendor-a",
    )

    # What the window workflow's activities do: send it, then close the settlement.
    async with db() as session, session.begin():
        await transfers.start(session, sent.id, actor=SYSTEM)
    for _ in range(2):  # a retried activity changes nothing the second time
        async with db() as session, session.begin():
            done = await transfers.succeed(
                session, sent.id, external_id="tr_vendor_a", actor=SYSTEM
            )
            await vendor_settlements.transfer_closed(session, done, actor=SYSTEM)
    async with db() as session:
        paid = await vendor_settlements.get(session, settlement.id)
        request = await session.get_one(SettlementTransfer, request.id)
        owed_after = (await ledger.balances(session, "payee:vendor-a"))["USD"]
    assert (paid.status, request.status, request.external_id) == ("paid", "paid", "tr_vendor_a")
    # What the platform owes the vendor went down by what was paid, once.
    assert abs(owed_before - owed_after) == processed.net_amount


async def test_a_failed_settlement_transfer_fails_the_settlement(
    db: Db, january: dict[str, Payment]
) -> None:
    settlement, _ = await compute(db)
    async with db() as session, session.begin():
        await vendor_settlements.set_payout_account(
            session, "vendor-a", "acct_1VendorA", rules=RoutingRules(), actor=ADMIN
        )
    await process(db, settlement.id, HELD_UNTIL)
    async with db() as session, session.begin():
        [request] = await session.scalars(select(SettlementTransfer))
        assert request.status == "routed" and request.transfer_id is not None
        await transfers.start(session, request.transfer_id, actor=SYSTEM)
        failed = await transfers.fail(
            session,
            request.transfer_id,
            error="NotFound: no such destination",
            final=True,
            actor=SYSTEM,
        )
        await vendor_settlements.transfer_closed(session, failed, actor=SYSTEM)
    async with db() as session:
        closed = await vendor_settlements.get(session, settlement.id)
        request = await session.get_one(SettlementTransfer, request.id)
    assert (closed.status, request.status) == ("failed", "failed")
    assert request.failure_reason == "NotFound: no such destination"

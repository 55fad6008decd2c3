"""Payments, fraud checks and refunds on a real PostgreSQL (a fresh database per test): the
split and its ledger posting at capture, the closing rules, the fraud signals and what an
assessment and a review do to a payment, and refunds that together never exceed the capture,
even when requested at the same time. No Stripe: the Stripe steps' results are given."""

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, TollgateError
from domain.fraud import (
    Assessment,
    FraudRules,
    FraudSignals,
    ReviewDecision,
    RiskLevel,
    RuleHit,
    assess,
)
from domain.money import Money
from domain.payments import Allocation, PaymentStatus, RefundReason
from integrations.stripe_customers import CardDetails
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction
from models.payments import Payment, PaymentMethod, Refund
from services import fraud_checks, ledger, payment_methods, payments, refunds

Db = async_sessionmaker[AsyncSession]
ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)
# vendor-a: 6,000 at 10% -> 5,400; vendor-b: 3,000 at 0 -> 3,000; the platform: the 1,000 not
# allocated plus 600 of commission -> 1,600.
ALLOCATIONS = (Allocation("vendor-a", 6_000, 1_000), Allocation("vendor-b", 3_000, 0))
ACCOUNTS = ["payee:vendor-a", "payee:vendor-b", "platform:commission"]


def card(fingerprint: str | None = None, country: str = "US") -> CardDetails:
    return CardDetails(
        id=f"pm_{uuid.uuid4().hex}",
        type="card",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        country=country,
        fingerprint=fingerprint or uuid.uuid4().hex[:16],
    )


async def add_method(
    db: Db,
    customer_id: str | None = None,
    *,
    fingerprint: str | None = None,
    country: str = "US",
) -> PaymentMethod:
    customer_id = customer_id or f"cust-{uuid.uuid4().hex[:8]}"
    async with db() as session, session.begin():
        stripe_customer_id = await payment_methods.save_stripe_customer(
            session, customer_id, f"cus_{customer_id}"
        )
        return await payment_methods.add(
            session,
            customer_id=customer_id,
            stripe_customer_id=stripe_customer_id,
            card=card(fingerprint, country),
            make_default=False,
            actor=SYSTEM,
        )


async def create(
    db: Db,
    method: PaymentMethod,
    amount: int = 10_000,
    allocations: Sequence[Allocation] = ALLOCATIONS,
    country: str | None = None,
) -> Payment:
    async with db() as session, session.begin():
        return await payments.create_payment(
            session,
            customer_id=method.customer_id,
            method=method,
            money=Money(amount, "USD"),
            actor=SYSTEM,
            allocations=allocations,
            order_id=f"order-{uuid.uuid4().hex[:8]}",
            country=country,
        )


async def authorize(db: Db, payment: Payment) -> None:
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await payments.start_authorizing(session, payment.id, actor=SYSTEM)
    async with db() as session, session.begin():
        await payments.mark_authorized(
            session,
            payment.id,
            intent_id=f"pi_{uuid.uuid4().hex}",
            charge_id=None,
            amount=payment.amount,
            authorized_at=now,
            expires_at=now + timedelta(days=7),
            actor=SYSTEM,
        )


async def capture(db: Db, payment: Payment, amount: int | None = None) -> Payment:
    """Authorizes and captures ``amount`` (default: all) as the workflow's steps do."""
    await authorize(db, payment)
    async with db() as session, session.begin():
        await payments.start_capture(session, payment.id, actor=SYSTEM)
    async with db() as session, session.begin():
        return await payments.complete(
            session,
            payment.id,
            amount_captured=payment.amount if amount is None else amount,
            charge_id=f"ch_{uuid.uuid4().hex}",
            actor=SYSTEM,
        )


async def completed_payment(
    db: Db, amount: int = 10_000, *, captured: int | None = None
) -> Payment:
    return await capture(db, await create(db, await add_method(db), amount), captured)


async def postings(session: AsyncSession, external_ref: str) -> dict[str, int]:
    rows = await session.execute(
        select(LedgerAccount.code, LedgerPosting.amount)
        .join(LedgerPosting, LedgerPosting.account_id == LedgerAccount.id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
        .where(LedgerTransaction.external_ref == external_ref)
    )
    found: dict[str, int] = {}
    for code, amount in rows:
        assert code not in found, f"{code} posted twice in {external_ref}"
        found[code] = amount
    return found


async def balance(session: AsyncSession, code: str) -> int:
    return (await ledger.balances(session, code)).get("USD", 0)


async def load(db: Db, payment_id: uuid.UUID) -> Payment:
    async with db() as session:
        return await payments.get(session, payment_id)


async def split_state(db: Db, payment_id: uuid.UUID) -> list[tuple[int, int]]:
    async with db() as session:
        return [
            (line.captured, line.refunded) for line in await payments.splits(session, payment_id)
        ]


# Payments: creation, capture and its ledger posting


async def test_create_stores_the_split_and_a_pending_payment(db: Db) -> None:
    payment = await create(db, await add_method(db))

    assert payment.status == "pending"
    assert payment.number.startswith("PAY-")
    async with db() as session:
        lines = await payments.splits(session, payment.id)
    assert [
        (line.seq, line.vendor_id, line.account_code, line.gross, line.commission, line.amount)
        for line in lines
    ] == [
        (0, "vendor-a", "payee:vendor-a", 6_000, 600, 5_400),
        (1, "vendor-b", "payee:vendor-b", 3_000, 0, 3_000),
        (2, None, "platform:commission", 1_000, 600, 1_600),
    ]
    assert all((line.captured, line.refunded) == (0, 0) for line in lines)


async def test_create_refuses_allocations_beyond_the_amount(db: Db) -> None:
    method = await add_method(db)
    with pytest.raises(TollgateError) as refused:
        await create(db, method, 1_000, [Allocation("v", 1_001, 0)])
    assert refused.value.code == "allocations_exceed_amount"
    async with db() as session:
        assert await session.scalar(select(Payment.id)) is None


async def test_capture_posts_one_balanced_transaction_crediting_each_receiver(db: Db) -> None:
    payment = await completed_payment(db)

    assert payment.status == "completed"
    assert payment.amount_captured == 10_000
    assert payment.platform_commission == 1_600
    assert payment.completed_at is not None
    async with db() as session:
        posted = await postings(session, f"payment-{payment.id}-capture")
        assert posted == {
            "stripe:card-payments": 10_000,
            "payee:vendor-a": -5_400,
            "payee:vendor-b": -3_000,
            "platform:commission": -1_600,
        }
        assert sum(posted.values()) == 0
        assert [await balance(session, code) for code in ACCOUNTS] == [-5_400, -3_000, -1_600]
    assert await split_state(db, payment.id) == [(5_400, 0), (3_000, 0), (1_600, 0)]


async def test_a_partial_capture_is_shared_in_proportion(db: Db) -> None:
    payment = await completed_payment(db, captured=4_001)

    assert payment.amount_captured == 4_001
    # 4,001 over [5,400, 3,000, 1,600]: 2,160.54 / 1,200.3 / 640.16 -> 2,161, 1,200, 640.
    assert await split_state(db, payment.id) == [(2_161, 0), (1_200, 0), (640, 0)]
    assert payment.platform_commission == 640
    async with db() as session:
        posted = await postings(session, f"payment-{payment.id}-capture")
    assert posted == {
        "stripe:card-payments": 4_001,
        "payee:vendor-a": -2_161,
        "payee:vendor-b": -1_200,
        "platform:commission": -640,
    }


async def test_complete_twice_posts_once(db: Db) -> None:
    payment = await completed_payment(db)

    async with db() as session, session.begin():
        again = await payments.complete(
            session, payment.id, amount_captured=10_000, charge_id=None, actor=SYSTEM
        )
    assert again.status == "completed"
    async with db() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.external_ref == f"payment-{payment.id}-capture")
        )
        assert count == 1
        assert await balance(session, "stripe:card-payments") == 10_000


async def test_a_payment_without_allocations_goes_to_the_platform(db: Db) -> None:
    payment = await capture(db, await create(db, await add_method(db), 2_500, ()))
    async with db() as session:
        posted = await postings(session, f"payment-{payment.id}-capture")
    assert posted == {"stripe:card-payments": 2_500, "platform:commission": -2_500}
    assert payment.platform_commission == 2_500


# Closing rules


async def test_a_completed_payment_cannot_be_cancelled_or_failed(db: Db) -> None:
    payment = await completed_payment(db)

    for status in (PaymentStatus.CANCELLED, PaymentStatus.FAILED, PaymentStatus.VOIDED):
        async with db() as session, session.begin():
            with pytest.raises(Conflict):
                await payments.close(
                    session, payment.id, status=status, reason="too late", actor=ADMIN
                )
    assert (await load(db, payment.id)).status == "completed"


async def test_an_authorized_payment_is_cancelled_with_its_reason(db: Db) -> None:
    payment = await create(db, await add_method(db))
    await authorize(db, payment)

    async with db() as session, session.begin():
        closed = await payments.close(
            session, payment.id, status=PaymentStatus.CANCELLED, reason="order gone", actor=ADMIN
        )
    assert (closed.status, closed.cancel_reason) == ("cancelled", "order gone")
    assert closed.closed_at is not None
    # Cancelled is final: it cannot be captured.
    async with db() as session, session.begin():
        with pytest.raises(Conflict):
            await payments.start_capture(session, payment.id, actor=SYSTEM)


async def test_a_capture_under_way_cannot_be_cancelled_but_can_be_voided(db: Db) -> None:
    payment = await create(db, await add_method(db))
    await authorize(db, payment)
    async with db() as session, session.begin():
        await payments.start_capture(session, payment.id, actor=SYSTEM)

    async with db() as session, session.begin():
        with pytest.raises(Conflict):
            await payments.close(
                session, payment.id, status=PaymentStatus.CANCELLED, reason="x", actor=ADMIN
            )
    async with db() as session, session.begin():
        voided = await payments.close(
            session,
            payment.id,
            status=PaymentStatus.VOIDED,
            reason="authorization expired",
            failure_code="authorization_expired",
            actor=SYSTEM,
        )
    assert voided.status == "voided"


# Fraud signals


async def signals_of(
    db: Db, payment: Payment, method: PaymentMethod, rules: FraudRules
) -> FraudSignals:
    async with db() as session:
        return await payments.fraud_signals(session, payment, method, rules, datetime.now(UTC))


async def test_fraud_signals_count_the_customers_recent_payments(db: Db) -> None:
    method = await add_method(db, country="US")
    earlier = [await create(db, method, 1_000, ()) for _ in range(3)]
    other_customer = await add_method(db)
    await create(db, other_customer, 1_000, ())
    # One of the three is older than the velocity window.
    async with db() as session, session.begin():
        await session.execute(
            update(Payment)
            .where(Payment.id == earlier[0].id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
    payment = await create(db, method, 2_000, (), country="fr")

    signals = await signals_of(db, payment, method, FraudRules())

    assert signals.amount == 2_000
    assert signals.customer_payments_recent == 2  # not itself, not the old one, not others'
    assert signals.card_payments_recent == 2
    assert (signals.country, signals.card_country) == ("FR", "US")
    assert signals.new_payment_method is True
    assert signals.previous_declines == 0
    # A wider window sees the old one too.
    wide = await signals_of(db, payment, method, FraudRules(velocity_window_minutes=180))
    assert wide.customer_payments_recent == 3


async def test_fraud_signals_count_the_same_card_across_customers(db: Db) -> None:
    fingerprint = uuid.uuid4().hex[:16]
    mine = await add_method(db, fingerprint=fingerprint)
    theirs = await add_method(db, fingerprint=fingerprint)
    unrelated = await add_method(db)
    await create(db, theirs, 1_000, ())
    await create(db, theirs, 1_000, ())
    await create(db, unrelated, 1_000, ())
    payment = await create(db, mine, 1_000, ())

    signals = await signals_of(db, payment, mine, FraudRules())

    assert signals.customer_payments_recent == 0
    assert signals.card_payments_recent == 2


async def test_fraud_signals_count_previous_declines_and_the_age_of_the_method(db: Db) -> None:
    method = await add_method(db)
    for decline_code in ("insufficient_funds", "do_not_honor", None):
        declined = await create(db, method, 1_000, ())
        async with db() as session, session.begin():
            await payments.close(
                session,
                declined.id,
                status=PaymentStatus.FAILED,
                reason="declined",
                failure_code="card_declined",
                decline_code=decline_code,
                actor=SYSTEM,
            )
    async with db() as session, session.begin():
        await session.execute(
            update(PaymentMethod)
            .where(PaymentMethod.id == method.id)
            .values(created_at=datetime.now(UTC) - timedelta(days=2))
        )
        method = await payment_methods.get(session, method.id)
    payment = await create(db, method, 1_000, ())

    signals = await signals_of(db, payment, method, FraudRules())

    assert signals.previous_declines == 2  # the failure without a decline code is not one
    assert signals.new_payment_method is False
    assert (
        await signals_of(db, payment, method, FraudRules(new_payment_method_hours=72))
    ).new_payment_method


# Fraud checks


def assessment(level: RiskLevel, score: int) -> Assessment:
    return Assessment(score=score, level=level, hits=(RuleHit("amount", score, "test"),))


async def record(db: Db, payment: Payment, method: PaymentMethod, found: Assessment) -> None:
    async with db() as session, session.begin():
        locked = await payments.get(session, payment.id, for_update=True)
        await fraud_checks.record_assessment(session, locked, method, found, actor=SYSTEM)


async def check_of(db: Db, payment_id: uuid.UUID) -> tuple[str, int, str] | None:
    async with db() as session:
        check = await fraud_checks.for_payment(session, payment_id)
    return None if check is None else (check.status, check.score, check.risk_level)


async def test_a_low_risk_payment_stays_pending(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)

    await record(db, payment, method, assessment(RiskLevel.LOW, 10))

    assert await check_of(db, payment.id) == ("passed", 10, "LOW")
    stored = await load(db, payment.id)
    assert (stored.status, stored.risk_score, stored.risk_level) == ("pending", 10, "LOW")


async def test_a_medium_risk_payment_goes_to_review(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)

    await record(db, payment, method, assessment(RiskLevel.MEDIUM, 45))

    assert await check_of(db, payment.id) == ("pending_review", 45, "MEDIUM")
    assert (await load(db, payment.id)).status == "in_review"


async def test_a_high_risk_payment_fails_as_fraud_blocked(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)

    await record(db, payment, method, assessment(RiskLevel.HIGH, 85))

    assert await check_of(db, payment.id) == ("blocked", 85, "HIGH")
    stored = await load(db, payment.id)
    assert (stored.status, stored.failure_code) == ("failed", "fraud_blocked")
    assert stored.closed_at is not None


async def test_a_payment_keeps_its_first_assessment(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)
    await record(db, payment, method, assessment(RiskLevel.LOW, 5))

    await record(db, payment, method, assessment(RiskLevel.HIGH, 95))

    assert await check_of(db, payment.id) == ("passed", 5, "LOW")
    assert (await load(db, payment.id)).status == "pending"


async def test_the_real_rules_stored_with_their_hits(db: Db) -> None:
    method = await add_method(db, country="US")
    payment = await create(db, method, 150_000, (), country="DE")
    async with db() as session, session.begin():
        locked = await payments.get(session, payment.id, for_update=True)
        signals = await payments.fraud_signals(
            session, locked, method, FraudRules(), datetime.now(UTC)
        )
        check = await fraud_checks.record_assessment(
            session, locked, method, assess(signals, FraudRules()), actor=SYSTEM
        )
    # large amount 20 + country 20 + new method 10 = 50: MEDIUM.
    assert (check.score, check.risk_level) == (50, "MEDIUM")
    assert sorted(hit["rule"] for hit in check.rules) == [
        "amount",
        "country_mismatch",
        "new_payment_method",
    ]


async def review(db: Db, payment_id: uuid.UUID, decision: str, notes: str | None = None) -> None:
    async with db() as session, session.begin():
        await fraud_checks.review(
            session,
            payment_id,
            decision=ReviewDecision(decision),
            notes=notes,
            reviewer="rev-1",
            actor=ADMIN,
        )


async def test_an_approved_review_sends_the_payment_back_to_pending(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)
    await record(db, payment, method, assessment(RiskLevel.MEDIUM, 40))

    await review(db, payment.id, "approve", "known customer")

    async with db() as session:
        check = await fraud_checks.for_payment(session, payment.id)
    assert check is not None
    assert (check.status, check.reviewed_by, check.review_notes) == (
        "approved",
        "rev-1",
        "known customer",
    )
    assert (await load(db, payment.id)).status == "pending"
    # Approving again changes nothing; rejecting after approving is a conflict.
    await review(db, payment.id, "approve")
    with pytest.raises(Conflict):
        await review(db, payment.id, "reject")
    assert (await load(db, payment.id)).status == "pending"


async def test_a_rejected_review_fails_the_payment(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)
    await record(db, payment, method, assessment(RiskLevel.MEDIUM, 40))

    await review(db, payment.id, "reject", "stolen card")

    assert (await check_of(db, payment.id) or ("",))[0] == "rejected"
    stored = await load(db, payment.id)
    assert (stored.status, stored.failure_code) == ("failed", "fraud_review_rejected")
    assert stored.failure_reason is not None and "stolen card" in stored.failure_reason


async def test_only_a_check_pending_review_takes_a_decision(db: Db) -> None:
    method = await add_method(db)
    payment = await create(db, method)
    await record(db, payment, method, assessment(RiskLevel.LOW, 0))

    with pytest.raises(Conflict):
        await review(db, payment.id, "reject")
    assert (await load(db, payment.id)).status == "pending"


async def test_average_score_per_customer(db: Db) -> None:
    method = await add_method(db)
    for level, score in ((RiskLevel.LOW, 10), (RiskLevel.MEDIUM, 40), (RiskLevel.HIGH, 81)):
        await record(db, await create(db, method), method, assessment(level, score))
    other = await add_method(db)
    await record(db, await create(db, other), other, assessment(RiskLevel.HIGH, 99))

    async with db() as session:
        mean, count = await fraud_checks.average_score(session, method.customer_id)
        nobody = await fraud_checks.average_score(session, "cust-nobody")
    assert count == 3
    assert mean == pytest.approx(131 / 3)
    assert nobody == (None, 0)


# Refunds


async def refund(
    db: Db, payment_id: uuid.UUID, amount: int | None, *, threshold: int | None = None
) -> Refund:
    async with db() as session, session.begin():
        return await refunds.create_refund(
            session,
            payment_id=payment_id,
            amount=amount,
            reason=RefundReason.REQUESTED_BY_CUSTOMER,
            actor=ADMIN,
            approval_threshold=threshold,
        )


async def complete_refund(db: Db, refund_id: uuid.UUID) -> Refund:
    async with db() as session, session.begin():
        return await refunds.complete(
            session, refund_id, stripe_refund_id=f"re_{uuid.uuid4().hex}", actor=SYSTEM
        )


async def test_a_refund_reserves_its_amount(db: Db) -> None:
    payment = await completed_payment(db)

    created = await refund(db, payment.id, 2_500)

    assert (created.status, created.amount, created.requires_approval) == (
        "processing",
        2_500,
        False,
    )
    assert created.number.startswith("RFD-")
    assert created.order_id == payment.order_id
    stored = await load(db, payment.id)
    assert (stored.amount_refund_pending, stored.amount_refunded) == (2_500, 0)


async def test_a_refund_without_an_amount_refunds_all_that_is_left(db: Db) -> None:
    payment = await completed_payment(db)
    await refund(db, payment.id, 3_000)

    rest = await refund(db, payment.id, None)

    assert rest.amount == 7_000
    assert (await load(db, payment.id)).amount_refund_pending == 10_000


async def test_a_refund_beyond_the_capture_is_a_conflict(db: Db) -> None:
    payment = await completed_payment(db, captured=6_000)
    await refund(db, payment.id, 5_000)

    with pytest.raises(Conflict) as refused:
        await refund(db, payment.id, 1_001)

    assert refused.value.code == "refund_exceeds_captured"
    assert refused.value.details["refundable"] == 1_000
    assert (await load(db, payment.id)).amount_refund_pending == 5_000
    await refund(db, payment.id, 1_000)  # exactly what is left fits


async def test_a_payment_not_completed_cannot_be_refunded(db: Db) -> None:
    payment = await create(db, await add_method(db))
    await authorize(db, payment)
    with pytest.raises(Conflict):
        await refund(db, payment.id, 100)


async def test_concurrent_refunds_never_exceed_the_capture(db: Db) -> None:
    payment = await completed_payment(db)

    async def attempt() -> Refund | Conflict:
        try:
            return await refund(db, payment.id, 1_000)
        except Conflict as refused:
            return refused

    results = await asyncio.gather(*(attempt() for _ in range(20)))

    made = [result for result in results if isinstance(result, Refund)]
    refused = [result for result in results if isinstance(result, Conflict)]
    assert len(made) == 10
    assert len(refused) == 10
    assert {error.code for error in refused} == {"refund_exceeds_captured"}
    stored = await load(db, payment.id)
    assert (stored.amount_refund_pending, stored.amount_refunded) == (10_000, 0)
    async with db() as session:
        rows = (await session.scalars(select(Refund).where(Refund.payment_id == payment.id))).all()
    assert len(rows) == 10
    assert len({row.number for row in rows}) == 10


async def test_a_completed_refund_reverses_the_split_in_proportion(db: Db) -> None:
    payment = await completed_payment(db)
    created = await refund(db, payment.id, 1_000)

    done = await complete_refund(db, created.id)

    assert done.status == "completed"
    assert done.stripe_refund_id is not None and done.closed_at is not None
    stored = await load(db, payment.id)
    assert (stored.amount_refunded, stored.amount_refund_pending) == (1_000, 0)
    # 1,000 over [5,400, 3,000, 1,600].
    assert await split_state(db, payment.id) == [(5_400, 540), (3_000, 300), (1_600, 160)]
    async with db() as session:
        posted = await postings(session, f"refund-{created.id}")
        assert posted == {
            "stripe:card-payments": -1_000,
            "payee:vendor-a": 540,
            "payee:vendor-b": 300,
            "platform:commission": 160,
        }
        assert [await balance(session, code) for code in ACCOUNTS] == [-4_860, -2_700, -1_440]
    # Completing again posts nothing more.
    await complete_refund(db, created.id)
    assert (await load(db, payment.id)).amount_refunded == 1_000
    async with db() as session:
        assert await balance(session, "stripe:card-payments") == 9_000


async def test_partial_refunds_never_take_a_line_below_zero(db: Db) -> None:
    # A partial capture leaves odd amounts on the lines: 4,001 -> [2,161, 1,200, 640].
    payment = await completed_payment(db, captured=4_001)
    amounts = [1, 1, 3, 997, 1_333, 7, 1_000, 659]
    assert sum(amounts) == 4_001

    for amount in amounts:
        await complete_refund(db, (await refund(db, payment.id, amount)).id)
        for captured, refunded in await split_state(db, payment.id):
            assert 0 <= refunded <= captured

    assert await split_state(db, payment.id) == [(2_161, 2_161), (1_200, 1_200), (640, 640)]
    stored = await load(db, payment.id)
    assert (stored.amount_refunded, stored.amount_refund_pending) == (4_001, 0)
    async with db() as session:
        # Every account is back where it started, and the ledger is balanced.
        assert [await balance(session, code) for code in ACCOUNTS] == [0, 0, 0]
        assert await balance(session, "stripe:card-payments") == 0
        assert await ledger.totals_by_currency(session) == {"USD": 0}
    with pytest.raises(TollgateError):
        await refund(db, payment.id, 1)


async def test_a_failed_refund_releases_its_reservation(db: Db) -> None:
    payment = await completed_payment(db)
    created = await refund(db, payment.id, 10_000)

    async with db() as session, session.begin():
        failed = await refunds.fail(
            session, created.id, reason="charge disputed", code="charge_disputed", actor=SYSTEM
        )

    assert (failed.status, failed.failure_code, failed.failure_reason) == (
        "failed",
        "charge_disputed",
        "charge disputed",
    )
    stored = await load(db, payment.id)
    assert (stored.amount_refund_pending, stored.amount_refunded) == (0, 0)
    async with db() as session:
        assert (
            await session.scalar(
                select(LedgerTransaction.id).where(
                    LedgerTransaction.external_ref == f"refund-{created.id}"
                )
            )
            is None
        )
    # A failed refund cannot be completed afterwards, and its amount is refundable again.
    with pytest.raises(Conflict):
        await complete_refund(db, created.id)
    assert (await refund(db, payment.id, 10_000)).status == "processing"


async def test_a_refund_above_the_threshold_waits_for_approval(db: Db) -> None:
    payment = await completed_payment(db)

    at = await refund(db, payment.id, 5_000, threshold=5_000)
    above = await refund(db, payment.id, 5_000, threshold=4_999)

    assert (at.status, at.requires_approval) == ("processing", False)
    assert (above.status, above.requires_approval) == ("pending_approval", True)
    assert (await load(db, payment.id)).amount_refund_pending == 10_000  # both reserve
    # Waiting for approval, it cannot be completed or failed.
    with pytest.raises(Conflict):
        await complete_refund(db, above.id)

    async with db() as session, session.begin():
        approved = await refunds.approve(session, above.id, approver="boss", actor=ADMIN)
    assert (approved.status, approved.approved_by) == ("processing", "boss")
    await complete_refund(db, above.id)
    assert (await load(db, payment.id)).amount_refunded == 5_000


async def test_a_rejected_refund_releases_its_reservation(db: Db) -> None:
    payment = await completed_payment(db)
    created = await refund(db, payment.id, 8_000, threshold=1_000)

    async with db() as session, session.begin():
        rejected = await refunds.reject(session, created.id, reason="no receipt", actor=ADMIN)

    assert (rejected.status, rejected.failure_code, rejected.failure_reason) == (
        "rejected",
        "rejected",
        "no receipt",
    )
    assert (await load(db, payment.id)).amount_refund_pending == 0
    async with db() as session, session.begin():
        with pytest.raises(Conflict):
            await refunds.approve(session, created.id, approver="boss", actor=ADMIN)
    assert (await refund(db, payment.id, 10_000)).amount == 10_000


async def _wait_for_a_lock_waiter(db: Db) -> None:
    for _ in range(500):
        async with db() as session:
            waiting = await session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second transaction never waited for the lock")


async def test_a_refund_completed_meanwhile_cannot_then_be_failed(db: Db) -> None:
    """A failure that read the refund before waiting for the payment's lock must see what the
    lock holder did: the completed refund is not failed, nor its amount released twice."""
    payment = await completed_payment(db)
    first = await refund(db, payment.id, 4_000)
    other = await refund(db, payment.id, 3_000)  # keeps amount_refund_pending above zero

    async with db() as holder, holder.begin():
        await payments.get(holder, payment.id, for_update=True)

        async def fail_it() -> Refund:
            async with db() as session, session.begin():
                return await refunds.fail(
                    session, first.id, reason="late failure", code="x", actor=SYSTEM
                )

        failing = asyncio.create_task(fail_it())
        await _wait_for_a_lock_waiter(db)
        await refunds.complete(holder, first.id, stripe_refund_id="re_first", actor=SYSTEM)

    with pytest.raises(Conflict):
        await failing

    async with db() as session:
        stored = await refunds.get(session, first.id)
        again = await payments.get(session, payment.id)
        assert (await refunds.get(session, other.id)).status == "processing"
    assert stored.status == "completed"
    assert (again.amount_refunded, again.amount_refund_pending) == (4_000, 3_000)

"""Payments: creation with their split, the steps of their life as compare-and-set changes of
the locked row, the ledger posting of a capture, and the lookups. The payment's workflow calls
the steps; the API only creates and reads."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound
from domain.fraud import FraudRules, FraudSignals
from domain.ledger import AccountType, PostingLine
from domain.money import Money
from domain.payments import (
    PAYMENT_CANCELLABLE,
    Allocation,
    PaymentStatus,
    check_payment_status,
    plan_splits,
    split_proportionally,
)
from models.payments import PAYMENT_NUMBERS, Payment, PaymentMethod, PaymentSplit, StripeCustomer
from services import ledger, outbox
from services.escrow import payee_account
from services.locking import locked
from services.pagination import newest_first

# Money Stripe collected for the platform: captures add to it, refunds take from it.
CARD_PAYMENTS_ACCOUNT = "stripe:card-payments"
PLATFORM_COMMISSION_ACCOUNT = "platform:commission"


def payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "number": payment.number,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_authorized": payment.amount_authorized,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "failure_code": payment.failure_code,
        "decline_code": payment.decline_code,
        "failure_reason": payment.failure_reason,
        "cancel_reason": payment.cancel_reason,
    }


async def _changed(
    session: AsyncSession,
    payment: Payment,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="payment",
        entity_id=payment.id,
        action=action,
        actor=actor,
        before=before,
        after=payment_view(payment),
        announce=True,
        metadata=metadata,
        payload={"customer_id": payment.customer_id, "order_id": payment.order_id},
    )


def split_account(vendor_id: str | None) -> str:
    return payee_account(vendor_id) if vendor_id is not None else PLATFORM_COMMISSION_ACCOUNT


async def create_payment(
    session: AsyncSession,
    *,
    customer_id: str,
    method: PaymentMethod,
    money: Money,
    actor: Actor,
    allocations: Sequence[Allocation] = (),
    order_id: str | None = None,
    description: str | None = None,
    country: str | None = None,
    capture_delay_seconds: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Payment:
    """A PENDING payment and its split; its workflow does the rest."""
    lines = plan_splits(money.amount, allocations)
    number = await session.scalar(select(PAYMENT_NUMBERS.next_value()))
    payment = Payment(
        id=uuid.uuid4(),
        number=f"PAY-{number:08d}",
        customer_id=customer_id,
        order_id=order_id,
        payment_method_id=method.id,
        amount=money.amount,
        currency=money.currency,
        status=PaymentStatus.PENDING.value,
        description=description,
        country=country.upper() if country else None,
        capture_delay_seconds=capture_delay_seconds,
        metadata_=metadata or {},
    )
    session.add(payment)
    await session.flush()
    session.add_all(
        PaymentSplit(
            payment_id=payment.id,
            seq=seq,
            vendor_id=line.vendor_id,
            account_code=split_account(line.vendor_id),
            gross=line.gross,
            commission=line.commission,
            amount=line.amount,
        )
        for seq, line in enumerate(lines)
    )
    await _changed(session, payment, "created", actor=actor, before=None)
    return payment


async def get(session: AsyncSession, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment:
    query = select(Payment).where(Payment.id == payment_id)
    payment = await session.scalar(locked(query) if for_update else query)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", param="id")
    return payment


async def get_by_number(session: AsyncSession, number: str) -> Payment:
    payment = await session.scalar(select(Payment).where(Payment.number == number.upper()))
    if payment is None:
        raise NotFound(f"no payment numbered {number}", param="number")
    return payment


async def get_by_transaction(session: AsyncSession, transaction_id: str) -> Payment:
    """By Stripe's payment intent id or charge id."""
    payment = await session.scalar(
        select(Payment).where(
            (Payment.stripe_payment_intent_id == transaction_id)
            | (Payment.stripe_charge_id == transaction_id)
        )
    )
    if payment is None:
        raise NotFound(f"no payment with transaction {transaction_id}", param="transaction_id")
    return payment


async def splits(session: AsyncSession, payment_id: uuid.UUID) -> Sequence[PaymentSplit]:
    return (
        await session.scalars(
            select(PaymentSplit).where(PaymentSplit.payment_id == payment_id).order_by("seq")
        )
    ).all()


async def splits_of(
    session: AsyncSession, payment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PaymentSplit]]:
    """The splits of several payments in one query (a page of a list)."""
    found: dict[uuid.UUID, list[PaymentSplit]] = {payment_id: [] for payment_id in payment_ids}
    rows = await session.scalars(
        select(PaymentSplit)
        .where(PaymentSplit.payment_id.in_(payment_ids))
        .order_by(PaymentSplit.payment_id, PaymentSplit.seq)
    )
    for split in rows:
        found[split.payment_id].append(split)
    return found


async def list_payments(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    customer_id: str | None = None,
    order_id: str | None = None,
    status: str | None = None,
    vendor_id: str | None = None,
) -> Sequence[Payment]:
    """Newest first; ``limit + 1`` rows so the caller knows whether more follow."""
    query = select(Payment)
    if customer_id is not None:
        query = query.where(Payment.customer_id == customer_id)
    if order_id is not None:
        query = query.where(Payment.order_id == order_id)
    if status is not None:
        query = query.where(Payment.status == status)
    if vendor_id is not None:
        query = query.where(
            Payment.id.in_(
                select(PaymentSplit.payment_id).where(PaymentSplit.vendor_id == vendor_id)
            )
        )
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(query, Payment, after).limit(limit + 1)
    return (await session.scalars(query)).all()


async def fraud_signals(
    session: AsyncSession, payment: Payment, method: PaymentMethod, rules: FraudRules, now: datetime
) -> FraudSignals:
    """What the fraud rules look at, from this customer's and this card's other payments."""
    since = now - timedelta(minutes=rules.velocity_window_minutes)
    others = (Payment.id != payment.id) & (Payment.created_at >= since)
    customer_recent = await session.scalar(
        select(func.count()).where(others & (Payment.customer_id == payment.customer_id))
    )
    same_card = (
        PaymentMethod.fingerprint == method.fingerprint
        if method.fingerprint
        else PaymentMethod.id == method.id
    )
    card_recent = await session.scalar(
        select(func.count())
        .select_from(Payment)
        .join(PaymentMethod, PaymentMethod.id == Payment.payment_method_id)
        .where(others & same_card)
    )
    declines = await session.scalar(
        select(func.count()).where(
            (Payment.customer_id == payment.customer_id)
            & (Payment.decline_code.is_not(None))
            & (Payment.created_at >= now - timedelta(days=rules.decline_window_days))
        )
    )
    return FraudSignals(
        amount=payment.amount,
        customer_payments_recent=customer_recent or 0,
        card_payments_recent=card_recent or 0,
        country=payment.country,
        card_country=method.country,
        new_payment_method=method.created_at
        > now - timedelta(hours=rules.new_payment_method_hours),
        previous_declines=declines or 0,
    )


async def _locked(session: AsyncSession, payment_id: uuid.UUID) -> tuple[Payment, dict[str, Any]]:
    payment = await get(session, payment_id, for_update=True)
    return payment, payment_view(payment)


async def start_authorizing(
    session: AsyncSession, payment_id: uuid.UUID, *, actor: Actor
) -> Payment:
    """PENDING -> AUTHORIZING; already authorizing (a retried step) is returned as it is."""
    payment, before = await _locked(session, payment_id)
    if payment.status == PaymentStatus.AUTHORIZING.value:
        return payment
    check_payment_status(
        PaymentStatus(payment.status), frozenset({PaymentStatus.PENDING}), "authorize"
    )
    payment.status = PaymentStatus.AUTHORIZING.value
    await _changed(session, payment, "authorizing", actor=actor, before=before)
    return payment


async def mark_authorized(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    intent_id: str,
    charge_id: str | None,
    amount: int,
    authorized_at: datetime,
    expires_at: datetime,
    actor: Actor,
) -> Payment:
    payment, before = await _locked(session, payment_id)
    if (
        payment.status == PaymentStatus.AUTHORIZED.value
        and payment.stripe_payment_intent_id == intent_id
    ):
        return payment
    check_payment_status(
        PaymentStatus(payment.status),
        frozenset({PaymentStatus.AUTHORIZING}),
        "record the authorization of",
    )
    payment.status = PaymentStatus.AUTHORIZED.value
    payment.stripe_payment_intent_id = intent_id
    payment.stripe_charge_id = charge_id
    payment.amount_authorized = amount
    payment.authorized_at = authorized_at
    payment.authorization_expires_at = expires_at
    await _changed(session, payment, "authorized", actor=actor, before=before)
    return payment


async def start_capture(session: AsyncSession, payment_id: uuid.UUID, *, actor: Actor) -> Payment:
    payment, before = await _locked(session, payment_id)
    if payment.status == PaymentStatus.CAPTURING.value:
        return payment
    check_payment_status(
        PaymentStatus(payment.status), frozenset({PaymentStatus.AUTHORIZED}), "capture"
    )
    payment.status = PaymentStatus.CAPTURING.value
    await _changed(session, payment, "capturing", actor=actor, before=before)
    return payment


async def _ensure_accounts(
    session: AsyncSession, lines: Sequence[PaymentSplit], actor: Actor
) -> None:
    await ledger.ensure_account(
        session,
        code=CARD_PAYMENTS_ACCOUNT,
        name="card payments collected by Stripe",
        type=AccountType.ASSET,
        actor=actor,
    )
    for line in lines:
        if line.vendor_id is None:
            await ledger.ensure_account(
                session,
                code=PLATFORM_COMMISSION_ACCOUNT,
                name="the platform's commissions",
                type=AccountType.REVENUE,
                actor=actor,
            )
        else:
            await ledger.ensure_account(
                session,
                code=line.account_code,
                name=f"payable to {line.vendor_id}",
                type=AccountType.LIABILITY,
                actor=actor,
            )


async def complete(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    amount_captured: int,
    charge_id: str | None,
    actor: Actor,
) -> Payment:
    """CAPTURING -> COMPLETED: the capture is shared among the split's lines in proportion to
    their planned amounts and posted once (``payment-{id}-capture``)."""
    payment, before = await _locked(session, payment_id)
    if payment.status == PaymentStatus.COMPLETED.value:
        return payment
    check_payment_status(
        PaymentStatus(payment.status), frozenset({PaymentStatus.CAPTURING}), "complete"
    )
    lines = await splits(session, payment.id)
    parts = split_proportionally(amount_captured, [line.amount for line in lines])
    for line, part in zip(lines, parts, strict=True):
        line.captured = part
    await _ensure_accounts(session, lines, actor)
    postings = [PostingLine(CARD_PAYMENTS_ACCOUNT, Money(amount_captured, payment.currency))]
    postings += [
        PostingLine(line.account_code, Money(-part, payment.currency))
        for line, part in zip(lines, parts, strict=True)
        if part
    ]
    await ledger.post_transaction(
        session,
        postings=postings,
        actor=actor,
        description=f"payment {payment.number} captured",
        external_ref=f"payment-{payment.id}-capture",
        metadata={"payment_id": str(payment.id), "order_id": payment.order_id},
    )
    payment.status = PaymentStatus.COMPLETED.value
    payment.amount_captured = amount_captured
    payment.platform_commission = sum(
        part for line, part in zip(lines, parts, strict=True) if line.vendor_id is None
    )
    payment.stripe_charge_id = charge_id or payment.stripe_charge_id
    payment.completed_at = payment.closed_at = datetime.now(UTC)
    await _changed(session, payment, "completed", actor=actor, before=before)
    return payment


async def close(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    status: PaymentStatus,
    reason: str,
    actor: Actor,
    failure_code: str | None = None,
    decline_code: str | None = None,
    intent_id: str | None = None,
) -> Payment:
    """Ends a payment before capture: FAILED, CANCELLED or VOIDED, with the reason. A
    capture under way finishes first (money may be moving): closing it is a conflict."""
    payment, before = await _locked(session, payment_id)
    if payment.status == status.value:
        return payment
    closable = PAYMENT_CANCELLABLE
    if status is PaymentStatus.VOIDED:
        # A capture can find the authorization gone (expired at Stripe): nothing was taken.
        closable |= {PaymentStatus.CAPTURING}
    check_payment_status(PaymentStatus(payment.status), closable, status.value)
    payment.status = status.value
    if status is PaymentStatus.CANCELLED:
        payment.cancel_reason = reason
    else:
        payment.failure_reason = reason
    payment.failure_code = failure_code
    payment.decline_code = decline_code
    payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or intent_id
    payment.closed_at = datetime.now(UTC)
    await _changed(session, payment, status.value, actor=actor, before=before)
    return payment


async def set_status(
    session: AsyncSession, payment: Payment, status: PaymentStatus, *, actor: Actor
) -> None:
    """Moves a payment the caller has locked between the fraud review's statuses."""
    before = payment_view(payment)
    payment.status = status.value
    await _changed(session, payment, status.value, actor=actor, before=before)


async def stripe_references(session: AsyncSession, payment: Payment) -> tuple[str, str]:
    """The Stripe customer and payment method ids a payment charges."""
    row = (
        await session.execute(
            select(StripeCustomer.stripe_customer_id, PaymentMethod.stripe_payment_method_id)
            .join(PaymentMethod, PaymentMethod.customer_id == StripeCustomer.customer_id)
            .where(PaymentMethod.id == payment.payment_method_id)
        )
    ).one_or_none()
    if row is None:
        raise Conflict(
            f"payment {payment.id}: its payment method has no Stripe customer",
            code="payment_method_unusable",
        )
    return row[0], row[1]

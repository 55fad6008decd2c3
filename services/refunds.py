"""Refunds: a request reserves its amount on the locked payment, so refunds requested at the
same time can never together exceed the capture; approval, completion (the ledger reverses
the capture's split in proportion to what each line still holds) and failure (the
reservation is released) are compare-and-set changes made by the refund's workflow."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound
from domain.ledger import PostingLine
from domain.money import Money
from domain.payments import (
    PaymentStatus,
    RefundReason,
    RefundStatus,
    check_payment_status,
    check_refundable,
    split_proportionally,
)
from models.payments import REFUND_NUMBERS, Payment, Refund
from services import ledger, outbox, payments
from services.locking import locked
from services.pagination import newest_first


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "number": refund.number,
        "payment_id": str(refund.payment_id),
        "status": refund.status,
        "amount": refund.amount,
        "currency": refund.currency,
        "approved_by": refund.approved_by,
        "stripe_refund_id": refund.stripe_refund_id,
        "failure_code": refund.failure_code,
        "failure_reason": refund.failure_reason,
    }


async def _changed(
    session: AsyncSession,
    refund: Refund,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="refund",
        entity_id=refund.id,
        action=action,
        actor=actor,
        before=before,
        after=refund_view(refund),
        announce=True,
        payload={"order_id": refund.order_id},
    )


async def create_refund(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    amount: int | None,
    reason: RefundReason,
    actor: Actor,
    approval_threshold: int | None,
    note: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Refund:
    """A refund of ``amount`` (default: all that is left), reserved on the payment. Above
    ``approval_threshold`` it waits for an approval; None: never."""
    payment = await payments.get(session, payment_id, for_update=True)
    check_payment_status(
        PaymentStatus(payment.status), frozenset({PaymentStatus.COMPLETED}), "refund"
    )
    left = payment.amount_captured - payment.amount_refunded - payment.amount_refund_pending
    amount = left if amount is None else amount
    check_refundable(
        payment.amount_captured, payment.amount_refunded, payment.amount_refund_pending, amount
    )
    number = await session.scalar(select(REFUND_NUMBERS.next_value()))
    needs_approval = approval_threshold is not None and amount > approval_threshold
    refund = Refund(
        id=uuid.uuid4(),
        number=f"RFD-{number:08d}",
        payment_id=payment.id,
        order_id=payment.order_id,
        amount=amount,
        currency=payment.currency,
        reason=reason.value,
        note=note,
        status=(RefundStatus.PENDING_APPROVAL if needs_approval else RefundStatus.PROCESSING).value,
        requires_approval=needs_approval,
        requested_by=actor.id,
        metadata_=metadata or {},
    )
    session.add(refund)
    payment.amount_refund_pending += amount
    await _changed(session, refund, "created", actor=actor, before=None)
    return refund


async def get(session: AsyncSession, refund_id: uuid.UUID, *, for_update: bool = False) -> Refund:
    query = select(Refund).where(Refund.id == refund_id)
    refund = await session.scalar(locked(query) if for_update else query)
    if refund is None:
        raise NotFound(f"no refund {refund_id}", param="id")
    return refund


async def get_by_number(session: AsyncSession, number: str) -> Refund:
    refund = await session.scalar(select(Refund).where(Refund.number == number.upper()))
    if refund is None:
        raise NotFound(f"no refund numbered {number}", param="number")
    return refund


def check_status(refund: Refund, expected: RefundStatus, action: str) -> None:
    if refund.status != expected.value:
        raise Conflict(f"cannot {action} a refund that is {refund.status}", status=refund.status)


async def _locked(session: AsyncSession, refund_id: uuid.UUID) -> tuple[Payment, Refund]:
    """The refund and its payment, locked payment first (the order every writer uses)."""
    refund = await get(session, refund_id)
    payment = await payments.get(session, refund.payment_id, for_update=True)
    return payment, await get(session, refund_id, for_update=True)


async def approve(
    session: AsyncSession, refund_id: uuid.UUID, *, approver: str, actor: Actor
) -> Refund:
    _, refund = await _locked(session, refund_id)
    if refund.status == RefundStatus.PROCESSING.value and refund.approved_by == approver:
        return refund
    check_status(refund, RefundStatus.PENDING_APPROVAL, "approve")
    before = refund_view(refund)
    refund.status = RefundStatus.PROCESSING.value
    refund.approved_by = approver
    await _changed(session, refund, "approved", actor=actor, before=before)
    return refund


async def _release(
    session: AsyncSession,
    payment: Payment,
    refund: Refund,
    status: RefundStatus,
    *,
    reason: str,
    code: str | None,
    actor: Actor,
) -> Refund:
    """Ends the refund unpaid: its reservation is refundable again."""
    before = refund_view(refund)
    refund.status = status.value
    refund.failure_code = code
    refund.failure_reason = reason
    refund.closed_at = datetime.now(UTC)
    payment.amount_refund_pending -= refund.amount
    await _changed(session, refund, status.value, actor=actor, before=before)
    return refund


async def reject(
    session: AsyncSession, refund_id: uuid.UUID, *, reason: str, actor: Actor
) -> Refund:
    payment, refund = await _locked(session, refund_id)
    if refund.status == RefundStatus.REJECTED.value:
        return refund
    check_status(refund, RefundStatus.PENDING_APPROVAL, "reject")
    return await _release(
        session, payment, refund, RefundStatus.REJECTED, reason=reason, code="rejected", actor=actor
    )


async def fail(
    session: AsyncSession, refund_id: uuid.UUID, *, reason: str, code: str | None, actor: Actor
) -> Refund:
    payment, refund = await _locked(session, refund_id)
    if refund.status == RefundStatus.FAILED.value:
        return refund
    check_status(refund, RefundStatus.PROCESSING, "fail")
    return await _release(
        session, payment, refund, RefundStatus.FAILED, reason=reason, code=code, actor=actor
    )


async def complete(
    session: AsyncSession, refund_id: uuid.UUID, *, stripe_refund_id: str, actor: Actor
) -> Refund:
    """PROCESSING -> COMPLETED, posted once (``refund-{id}``): the amount comes back from the
    split's lines in proportion to what each still holds of the capture."""
    payment, refund = await _locked(session, refund_id)
    if refund.status == RefundStatus.COMPLETED.value:
        return refund
    check_status(refund, RefundStatus.PROCESSING, "complete")
    before = refund_view(refund)
    lines = await payments.splits(session, payment.id)
    parts = split_proportionally(refund.amount, [line.captured - line.refunded for line in lines])
    for line, part in zip(lines, parts, strict=True):
        line.refunded += part
    postings = [PostingLine(payments.CARD_PAYMENTS_ACCOUNT, Money(-refund.amount, refund.currency))]
    postings += [
        PostingLine(line.account_code, Money(part, refund.currency))
        for line, part in zip(lines, parts, strict=True)
        if part
    ]
    await ledger.post_transaction(
        session,
        postings=postings,
        actor=actor,
        description=f"refund {refund.number} of payment {payment.number}",
        external_ref=f"refund-{refund.id}",
        metadata={"payment_id": str(payment.id), "refund_id": str(refund.id)},
    )
    payment.amount_refund_pending -= refund.amount
    payment.amount_refunded += refund.amount
    refund.status = RefundStatus.COMPLETED.value
    refund.stripe_refund_id = stripe_refund_id
    refund.closed_at = datetime.now(UTC)
    await _changed(session, refund, "completed", actor=actor, before=before)
    return refund


async def list_refunds(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
    order_id: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
) -> Sequence[Refund]:
    """Newest first, ``limit + 1`` rows."""
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(select(Refund), Refund, after)
    if payment_id is not None:
        query = query.where(Refund.payment_id == payment_id)
    if order_id is not None:
        query = query.where(Refund.order_id == order_id)
    if status is not None:
        query = query.where(Refund.status == status)
    if customer_id is not None:
        query = query.where(
            Refund.payment_id.in_(select(Payment.id).where(Payment.customer_id == customer_id))
        )
    return list(await session.scalars(query.limit(limit + 1)))

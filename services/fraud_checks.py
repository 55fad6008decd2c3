"""Fraud checks: the assessment of a payment, stored once, with what it does to the payment
(LOW goes on, MEDIUM waits for a review, HIGH fails it), the review decisions, and lookups."""

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import NotFound
from domain.fraud import (
    Assessment,
    FraudCheckStatus,
    FraudRules,
    ReviewDecision,
    RiskLevel,
    assess,
    check_reviewable,
    initial_status,
    review_status,
)
from domain.payments import PaymentStatus
from models.payments import FraudCheck, Payment, PaymentMethod
from services import outbox, payment_methods, payments
from services.locking import locked
from services.pagination import newest_first


def check_view(check: FraudCheck) -> dict[str, Any]:
    return {
        "payment_id": str(check.payment_id),
        "score": check.score,
        "risk_level": check.risk_level,
        "status": check.status,
        "reviewed_by": check.reviewed_by,
        "review_notes": check.review_notes,
    }


async def _changed(
    session: AsyncSession,
    check: FraudCheck,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="fraud_check",
        entity_id=check.id,
        action=action,
        actor=actor,
        before=before,
        after=check_view(check),
        announce=True,
    )


async def for_payment(session: AsyncSession, payment_id: uuid.UUID) -> FraudCheck | None:
    result: FraudCheck | None = await session.scalar(
        select(FraudCheck).where(FraudCheck.payment_id == payment_id)
    )
    return result


async def record_assessment(
    session: AsyncSession,
    payment: Payment,
    method: PaymentMethod,
    assessment: Assessment,
    *,
    actor: Actor,
) -> FraudCheck:
    """Stores the check and moves the (locked) PENDING payment: MEDIUM to IN_REVIEW, HIGH to
    FAILED. A payment already checked keeps its first check (a retried step)."""
    existing = await for_payment(session, payment.id)
    if existing is not None:
        return existing
    return await _record(session, payment, method, assessment, actor=actor)


async def check_payment(
    session: AsyncSession, payment: Payment, rules: FraudRules, *, now: datetime, actor: Actor
) -> FraudCheck:
    """Scores the (locked) PENDING payment against ``rules`` and records it, once: a payment
    already checked keeps its first check, and its signals are not gathered again."""
    existing = await for_payment(session, payment.id)
    if existing is not None:
        return existing
    method = await payment_methods.get(session, payment.payment_method_id)
    signals = await payments.fraud_signals(session, payment, method, rules, now)
    return await _record(session, payment, method, assess(signals, rules), actor=actor)


async def _record(
    session: AsyncSession,
    payment: Payment,
    method: PaymentMethod,
    assessment: Assessment,
    *,
    actor: Actor,
) -> FraudCheck:
    status = initial_status(assessment.level)
    check = FraudCheck(
        id=uuid.uuid4(),
        payment_id=payment.id,
        customer_id=payment.customer_id,
        payment_method_id=method.id,
        score=assessment.score,
        risk_level=assessment.level.value,
        status=status.value,
        rules=[asdict(hit) for hit in assessment.hits],
    )
    session.add(check)
    await _changed(session, check, "created", actor=actor, before=None)
    payment.risk_score = assessment.score
    payment.risk_level = assessment.level.value
    if assessment.level is RiskLevel.MEDIUM:
        await payments.set_status(session, payment, PaymentStatus.IN_REVIEW, actor=actor)
    elif assessment.level is RiskLevel.HIGH:
        await payments.close(
            session,
            payment.id,
            status=PaymentStatus.FAILED,
            reason=f"refused by the fraud check: risk score {assessment.score}",
            failure_code="fraud_blocked",
            actor=actor,
        )
    return check


async def get(
    session: AsyncSession, check_id: uuid.UUID, *, for_update: bool = False
) -> FraudCheck:
    query = select(FraudCheck).where(FraudCheck.id == check_id)
    check = await session.scalar(locked(query) if for_update else query)
    if check is None:
        raise NotFound(f"no fraud check {check_id}", param="id")
    return check


async def pending_review(session: AsyncSession, check_id: uuid.UUID) -> FraudCheck:
    """The check, if it waits for a decision (what the API checks before signalling)."""
    check = await get(session, check_id)
    check_reviewable(FraudCheckStatus(check.status))
    return check


async def review(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    decision: ReviewDecision,
    notes: str | None,
    reviewer: str,
    actor: Actor,
) -> FraudCheck:
    """Records the decision; an approved payment goes back to PENDING (its workflow then
    authorizes it), a rejected one FAILS. The same decision again is returned as it is."""
    payment = await payments.get(session, payment_id, for_update=True)
    check = await for_payment(session, payment_id)
    if check is None:
        raise NotFound(f"payment {payment_id} has no fraud check", param="payment_id")
    status = review_status(decision)
    if check.status == status.value:
        return check
    check_reviewable(FraudCheckStatus(check.status))
    before = check_view(check)
    check.status = status.value
    check.reviewed_by = reviewer
    check.review_notes = notes
    check.reviewed_at = datetime.now(UTC)
    await _changed(session, check, decision.value + "d", actor=actor, before=before)
    if decision is ReviewDecision.APPROVE:
        await payments.set_status(session, payment, PaymentStatus.PENDING, actor=actor)
    else:
        await payments.close(
            session,
            payment.id,
            status=PaymentStatus.FAILED,
            reason=f"refused by fraud review: {notes}" if notes else "refused by fraud review",
            failure_code="fraud_review_rejected",
            actor=actor,
        )
    return check


async def list_checks(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
    customer_id: str | None = None,
    risk_level: str | None = None,
    status: str | None = None,
) -> Sequence[FraudCheck]:
    """Newest first, ``limit + 1`` rows."""
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(select(FraudCheck), FraudCheck, after)
    if payment_id is not None:
        query = query.where(FraudCheck.payment_id == payment_id)
    if customer_id is not None:
        query = query.where(FraudCheck.customer_id == customer_id)
    if risk_level is not None:
        query = query.where(FraudCheck.risk_level == risk_level)
    if status is not None:
        query = query.where(FraudCheck.status == status)
    return list(await session.scalars(query.limit(limit + 1)))


async def average_score(session: AsyncSession, customer_id: str) -> tuple[float | None, int]:
    """The customer's mean risk score over all checks, and how many there are."""
    row = (
        await session.execute(
            select(func.avg(FraudCheck.score), func.count()).where(
                FraudCheck.customer_id == customer_id
            )
        )
    ).one()
    return (float(row[0]) if row[0] is not None else None), row[1]

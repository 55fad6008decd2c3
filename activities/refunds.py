"""Refund activities: the database steps on the main task queue, the Stripe refund on the
rate-limited Stripe task queue under the key ``refund-{id}``."""

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import Conflict, ValidationError
from domain.payments import RefundReason, RefundStatus
from integrations import stripe_payments
from models.payments import Refund
from services import payments, refunds
from workflows.types import (
    RefundCompleteInput,
    RefundFailInput,
    RefundRejectInput,
    RefundState,
    RefundStepInput,
    StripeRefundInput,
    StripeRefundResult,
)


def state_of(refund: Refund) -> RefundState:
    return RefundState(
        status=refund.status,
        amount=refund.amount,
        stripe_refund_id=refund.stripe_refund_id,
        failure_reason=refund.failure_reason,
    )


def system(actor: str) -> Actor:
    return Actor(actor, Role.SYSTEM)


class RefundActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="refund_load")
    async def load(self, request: RefundStepInput) -> RefundState:
        with business_errors():
            async with self.sessionmaker() as session:
                return state_of(await refunds.get(session, request.refund_id))

    @activity.defn(name="refund_approve")
    async def approve(self, request: RefundStepInput) -> RefundState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                refund = await refunds.approve(
                    session, request.refund_id, approver=request.actor, actor=system(request.actor)
                )
                return state_of(refund)

    @activity.defn(name="refund_reject")
    async def reject(self, request: RefundRejectInput) -> RefundState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                refund = await refunds.reject(
                    session, request.refund_id, reason=request.reason, actor=system(request.actor)
                )
                return state_of(refund)

    @activity.defn(name="refund_complete")
    async def complete(self, request: RefundCompleteInput) -> RefundState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                refund = await refunds.complete(
                    session,
                    request.refund_id,
                    stripe_refund_id=request.stripe_refund_id,
                    actor=system(request.actor),
                )
                return state_of(refund)

    @activity.defn(name="refund_fail")
    async def fail(self, request: RefundFailInput) -> RefundState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                refund = await refunds.fail(
                    session,
                    request.refund_id,
                    reason=request.reason,
                    code=request.code,
                    actor=system(request.actor),
                )
                return state_of(refund)


class StripeRefundActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stripe_client = stripe_client

    @activity.defn(name="stripe_refund")
    async def refund(self, request: StripeRefundInput) -> StripeRefundResult:
        """Refunds at Stripe once per refund. Stripe's refusal (e.g. the charge was disputed
        or refunded elsewhere) is an outcome the workflow records, not an error to retry."""
        with business_errors():
            async with self.sessionmaker() as session:
                refund = await refunds.get(session, request.refund_id)
                payment = await payments.get(session, refund.payment_id)
            if refund.status != RefundStatus.PROCESSING.value:
                raise Conflict(f"refund {refund.id} is {refund.status}", status=refund.status)
            if payment.stripe_payment_intent_id is None:
                raise Conflict(f"payment {payment.id} has no payment intent")
            reason = None if refund.reason == RefundReason.OTHER.value else refund.reason
            try:
                result = await heartbeating(
                    stripe_payments.refund(
                        self.stripe_client,
                        refund_id=str(refund.id),
                        payment_id=str(payment.id),
                        intent_id=payment.stripe_payment_intent_id,
                        amount=refund.amount,
                        reason=reason,
                    )
                )
            except ValidationError as refused:
                return StripeRefundResult(
                    stripe_refund_id=None,
                    status="failed",
                    failure_code=refused.details.get("stripe_code") or refused.code,
                    failure_reason=refused.message,
                )
            return StripeRefundResult(
                stripe_refund_id=result.refund_id,
                status=result.status,
                failure_reason=result.failure_reason,
            )

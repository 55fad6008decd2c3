"""Payment activities. The database steps (fraud check, status changes, the capture's ledger
posting) run on the main task queue; the Stripe calls on the rate-limited Stripe task queue."""

from datetime import UTC, datetime

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import CardDeclined, Conflict
from domain.fraud import FraudRules, ReviewDecision
from domain.payments import PaymentStatus
from integrations import stripe_payments
from models.payments import Payment
from services import fraud_checks, payments
from workflows.types import (
    PaymentAuthorizedInput,
    PaymentCloseInput,
    PaymentCompleteInput,
    PaymentReviewInput,
    PaymentState,
    PaymentStepInput,
    StripeIntentInput,
    StripeIntentResult,
)


def state_of(payment: Payment) -> PaymentState:
    return PaymentState(
        status=payment.status,
        amount=payment.amount,
        amount_authorized=payment.amount_authorized,
        amount_captured=payment.amount_captured,
        intent_id=payment.stripe_payment_intent_id,
        charge_id=payment.stripe_charge_id,
        authorization_expires_at=payment.authorization_expires_at,
        risk_level=payment.risk_level,
        failure_code=payment.failure_code,
        decline_code=payment.decline_code,
    )


def system(actor: str) -> Actor:
    return Actor(actor, Role.SYSTEM)


class PaymentActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], fraud_rules: FraudRules
    ) -> None:
        self.sessionmaker = sessionmaker
        self.fraud_rules = fraud_rules

    @activity.defn(name="payment_load")
    async def load(self, request: PaymentStepInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session:
                return state_of(await payments.get(session, request.payment_id))

    @activity.defn(name="payment_check_fraud")
    async def check_fraud(self, request: PaymentStepInput) -> PaymentState:
        """Scores a PENDING payment once; the level decides what the workflow does next."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.get(session, request.payment_id, for_update=True)
                await fraud_checks.check_payment(
                    session,
                    payment,
                    self.fraud_rules,
                    now=datetime.now(UTC),
                    actor=system(request.actor),
                )
                return state_of(payment)

    @activity.defn(name="payment_review")
    async def review(self, request: PaymentReviewInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                await fraud_checks.review(
                    session,
                    request.payment_id,
                    decision=ReviewDecision(request.decision),
                    notes=request.notes,
                    reviewer=request.reviewer,
                    actor=Actor(request.reviewer, Role.SYSTEM),
                )
                return state_of(await payments.get(session, request.payment_id))

    @activity.defn(name="payment_start_authorizing")
    async def start_authorizing(self, request: PaymentStepInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.start_authorizing(
                    session, request.payment_id, actor=system(request.actor)
                )
                return state_of(payment)

    @activity.defn(name="payment_authorized")
    async def authorized(self, request: PaymentAuthorizedInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.mark_authorized(
                    session,
                    request.payment_id,
                    intent_id=request.intent_id,
                    charge_id=request.charge_id,
                    amount=request.amount,
                    authorized_at=request.authorized_at,
                    expires_at=request.expires_at,
                    actor=system(request.actor),
                )
                return state_of(payment)

    @activity.defn(name="payment_start_capture")
    async def start_capture(self, request: PaymentStepInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.start_capture(
                    session, request.payment_id, actor=system(request.actor)
                )
                return state_of(payment)

    @activity.defn(name="payment_complete")
    async def complete(self, request: PaymentCompleteInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.complete(
                    session,
                    request.payment_id,
                    amount_captured=request.amount_captured,
                    charge_id=request.charge_id,
                    actor=system(request.actor),
                )
                return state_of(payment)

    @activity.defn(name="payment_close")
    async def close(self, request: PaymentCloseInput) -> PaymentState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                payment = await payments.close(
                    session,
                    request.payment_id,
                    status=PaymentStatus(request.status),
                    reason=request.reason,
                    failure_code=request.failure_code,
                    decline_code=request.decline_code,
                    intent_id=request.intent_id,
                    actor=system(request.actor),
                )
                return state_of(payment)


class StripePaymentActivities:
    """Authorize, capture and cancel at Stripe, each under a key derived from the payment and
    the step: every attempt of a step sends the same key, so Stripe acts once."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stripe_client = stripe_client

    async def _payment(self, request: StripeIntentInput) -> Payment:
        async with self.sessionmaker() as session:
            return await payments.get(session, request.payment_id)

    @activity.defn(name="stripe_authorize_payment")
    async def authorize(self, request: StripeIntentInput) -> StripeIntentResult:
        with business_errors():
            async with self.sessionmaker() as session:
                payment = await payments.get(session, request.payment_id)
                customer, method = await payments.stripe_references(session, payment)
            try:
                intent = await heartbeating(
                    stripe_payments.authorize(
                        self.stripe_client,
                        payment_id=str(payment.id),
                        number=payment.number,
                        amount=payment.amount,
                        currency=payment.currency,
                        stripe_customer_id=customer,
                        stripe_payment_method_id=method,
                        description=payment.description,
                    )
                )
            except CardDeclined as declined:
                return StripeIntentResult(
                    intent_id=declined.details.get("payment_intent"),
                    status="declined",
                    failure_code=declined.details.get("stripe_code") or declined.code,
                    decline_code=declined.details.get("decline_code"),
                    failure_message=declined.message,
                )
            return _result(intent)

    @activity.defn(name="stripe_capture_payment")
    async def capture(self, request: StripeIntentInput) -> StripeIntentResult:
        with business_errors():
            payment = await self._payment(request)
            if payment.stripe_payment_intent_id is None:
                raise Conflict(f"payment {payment.id} was never authorized", status=payment.status)
            intent = await heartbeating(
                stripe_payments.capture(
                    self.stripe_client,
                    payment_id=str(payment.id),
                    intent_id=payment.stripe_payment_intent_id,
                    amount=request.amount or payment.amount_authorized,
                )
            )
            return _result(intent)

    @activity.defn(name="stripe_cancel_payment")
    async def cancel(self, request: StripeIntentInput) -> StripeIntentResult:
        with business_errors():
            payment = await self._payment(request)
            if payment.stripe_payment_intent_id is None:
                return StripeIntentResult(intent_id=None, status="canceled")
            intent = await heartbeating(
                stripe_payments.cancel(
                    self.stripe_client,
                    payment_id=str(payment.id),
                    intent_id=payment.stripe_payment_intent_id,
                    reason=request.reason or "requested_by_customer",
                )
            )
            return _result(intent)


def _result(intent: stripe_payments.IntentState) -> StripeIntentResult:
    return StripeIntentResult(
        intent_id=intent.intent_id,
        status=intent.status,
        charge_id=intent.charge_id,
        amount_capturable=intent.amount_capturable,
        amount_received=intent.amount_received,
    )

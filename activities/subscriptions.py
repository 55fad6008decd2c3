"""Subscription activities: each database step is one transaction over the services, with
the time of the workflow's clock; the Stripe charge of an invoice runs on the Stripe task
queue."""

import uuid
from collections.abc import Awaitable, Callable

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import CardDeclined, Conflict
from domain.subscriptions import DunningOutcome, SubscriptionStatus
from integrations import stripe_invoices
from models.payments import PaymentMethod
from models.subscriptions import Invoice
from services import invoices, payment_methods, subscriptions
from workflows.types import (
    ChargeInvoiceInput,
    ChargeInvoiceResult,
    DunningExhaustedInput,
    InvoiceAttempt,
    InvoiceAttemptInput,
    InvoiceAttemptOutcome,
    InvoiceState,
    SubscriptionCancelInput,
    SubscriptionChangePlanInput,
    SubscriptionPauseInput,
    SubscriptionState,
    SubscriptionStepInput,
)


def invoice_state(invoice: Invoice) -> InvoiceState:
    return InvoiceState(
        invoice_id=invoice.id,
        number=invoice.number,
        status=invoice.status,
        total=invoice.total,
        attempt_count=invoice.attempt_count,
        next_payment_attempt=invoice.next_payment_attempt,
    )


async def state_of(session: AsyncSession, subscription_id: uuid.UUID) -> SubscriptionState:
    subscription = await subscriptions.get(session, subscription_id)
    open_invoice = await invoices.oldest_open(session, subscription.id)
    return SubscriptionState(
        status=subscription.status,
        plan_id=subscription.plan_id,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        period_index=subscription.period_index,
        trial_end=subscription.trial_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        period_billed=await subscriptions.period_billed(session, subscription),
        open_invoice=invoice_state(open_invoice) if open_invoice else None,
    )


def system(actor: str) -> Actor:
    return Actor(actor, Role.SYSTEM)


Step = Callable[[AsyncSession], Awaitable[object]]


class SubscriptionActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def _step(self, subscription_id: uuid.UUID, step: Step) -> SubscriptionState:
        """Runs ``step`` in one transaction and answers the subscription's state after it."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                await step(session)
                return await state_of(session, subscription_id)

    @activity.defn(name="subscription_load")
    async def load(self, request: SubscriptionStepInput) -> SubscriptionState:
        with business_errors():
            async with self.sessionmaker() as session:
                return await state_of(session, request.subscription_id)

    @activity.defn(name="subscription_begin")
    async def begin(self, request: SubscriptionStepInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.begin(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_convert_trial")
    async def convert_trial(self, request: SubscriptionStepInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.convert_trial(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_advance")
    async def advance(self, request: SubscriptionStepInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.advance_period(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_bill")
    async def bill(self, request: SubscriptionStepInput) -> SubscriptionState:
        """The current period's invoice, created and finalized (once)."""
        return await self._step(
            request.subscription_id,
            lambda session: invoices.bill_period(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_pause")
    async def pause(self, request: SubscriptionPauseInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.pause(
                session,
                request.subscription_id,
                at=request.at,
                reason=request.reason,
                actor=system(request.actor),
            ),
        )

    @activity.defn(name="subscription_resume")
    async def resume(self, request: SubscriptionStepInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.resume(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_cancel")
    async def cancel(self, request: SubscriptionCancelInput) -> SubscriptionState:
        async def step(session: AsyncSession) -> None:
            actor = system(request.actor)
            await subscriptions.cancel(
                session,
                request.subscription_id,
                at=request.at,
                at_period_end=request.at_period_end,
                reason=request.reason,
                actor=actor,
            )
            if not request.at_period_end:
                await invoices.close_for_cancellation(
                    session, request.subscription_id, at=request.at, actor=actor
                )

        return await self._step(request.subscription_id, step)

    @activity.defn(name="subscription_change_plan")
    async def change_plan(self, request: SubscriptionChangePlanInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.change_plan(
                session,
                request.subscription_id,
                request.plan_id,
                at=request.at,
                actor=system(request.actor),
            ),
        )

    @activity.defn(name="subscription_renew")
    async def renew(self, request: SubscriptionStepInput) -> SubscriptionState:
        return await self._step(
            request.subscription_id,
            lambda session: subscriptions.renew_now(
                session, request.subscription_id, at=request.at, actor=system(request.actor)
            ),
        )

    @activity.defn(name="subscription_dunning_exhausted")
    async def dunning_exhausted(self, request: DunningExhaustedInput) -> SubscriptionState:
        async def step(session: AsyncSession) -> None:
            actor = system(request.actor)
            subscription = await subscriptions.dunning_exhausted(
                session,
                request.subscription_id,
                DunningOutcome(request.outcome),
                at=request.at,
                actor=actor,
            )
            if subscriptions.status_of(subscription) is SubscriptionStatus.CANCELED:
                await invoices.close_for_cancellation(
                    session, request.subscription_id, at=request.at, actor=actor
                )

        return await self._step(request.subscription_id, step)

    @activity.defn(name="invoice_start_attempt")
    async def start_attempt(self, request: InvoiceAttemptInput) -> InvoiceAttempt:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                started = await invoices.start_attempt(
                    session,
                    request.invoice_id,
                    trigger=request.trigger,
                    at=request.at,
                    actor=system(request.actor),
                )
                attempt = started.attempt
                return InvoiceAttempt(
                    invoice=invoice_state(started.invoice),
                    attempt_id=attempt.id if attempt else None,
                    attempt_number=attempt.number if attempt else 0,
                    has_payment_method=attempt is not None
                    and attempt.payment_method_id is not None,
                )

    @activity.defn(name="invoice_finish_attempt")
    async def finish_attempt(self, request: InvoiceAttemptOutcome) -> SubscriptionState:
        charge = request.charge
        actor = system(request.actor)

        async def step(session: AsyncSession) -> Invoice:
            if charge.status == "succeeded" and charge.intent_id is not None:
                return await invoices.attempt_succeeded(
                    session,
                    request.attempt_id,
                    intent_id=charge.intent_id,
                    charge_id=charge.charge_id,
                    at=request.at,
                    actor=actor,
                )
            return await invoices.attempt_failed(
                session,
                request.attempt_id,
                failure_code=charge.failure_code or charge.status,
                decline_code=charge.decline_code,
                message=charge.failure_message or f"the charge ended {charge.status}",
                intent_id=charge.intent_id,
                retry_days=request.retry_days,
                at=request.at,
                actor=actor,
            )

        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                invoice = await step(session)
                return await state_of(session, invoice.subscription_id)


class StripeSubscriptionActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stripe_client = stripe_client

    @activity.defn(name="stripe_charge_invoice")
    async def charge_invoice(self, request: ChargeInvoiceInput) -> ChargeInvoiceResult:
        with business_errors():
            async with self.sessionmaker() as session:
                attempt = await invoices.get_attempt(session, request.attempt_id)
                invoice = await invoices.get(session, attempt.invoice_id)
                method = (
                    await session.get(PaymentMethod, attempt.payment_method_id)
                    if attempt.payment_method_id
                    else None
                )
                customer = await payment_methods.stripe_customer(session, invoice.customer_id)
            if method is None or customer is None or invoice.number is None:
                raise Conflict(
                    f"attempt {attempt.id} has no payment method to charge",
                    code="payment_method_unusable",
                )
            try:
                intent = await heartbeating(
                    stripe_invoices.charge(
                        self.stripe_client,
                        invoice_id=str(invoice.id),
                        invoice_number=invoice.number,
                        attempt=attempt.number,
                        amount=attempt.amount,
                        currency=invoice.currency,
                        stripe_customer_id=customer,
                        stripe_payment_method_id=method.stripe_payment_method_id,
                    )
                )
            except CardDeclined as declined:
                return ChargeInvoiceResult(
                    status="declined",
                    intent_id=declined.details.get("payment_intent"),
                    failure_code=declined.details.get("stripe_code") or declined.code,
                    decline_code=declined.details.get("decline_code"),
                    failure_message=declined.message,
                )
            if intent.status != "succeeded":
                # e.g. requires_action (3-D Secure): an off-session charge cannot complete it.
                return ChargeInvoiceResult(
                    status="incomplete",
                    intent_id=intent.intent_id,
                    failure_code="authentication_required",
                    failure_message=f"the charge ended {intent.status}",
                )
            return ChargeInvoiceResult(
                status="succeeded", intent_id=intent.intent_id, charge_id=intent.charge_id
            )

"""Stripe calls of a payment's life: authorize (a payment intent with manual capture), capture,
cancel, and refund. Each call carries an idempotency key derived from the entity and the step,
so a retried activity replays Stripe's first answer instead of charging or refunding twice.
Capture and cancel look at the intent first: a step that already happened (before a crash, or
by someone in Stripe's dashboard) is reported as done rather than refused."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import stripe

from domain.errors import Conflict
from integrations.stripe_client import stripe_errors

if TYPE_CHECKING:
    from stripe.params import RefundCreateParams


@dataclass(frozen=True)
class IntentState:
    intent_id: str
    status: str
    charge_id: str | None
    amount_capturable: int
    amount_received: int


def intent_state(intent: stripe.PaymentIntent) -> IntentState:
    charge = intent.latest_charge
    return IntentState(
        intent_id=intent.id,
        status=intent.status,
        charge_id=charge if isinstance(charge, str) or charge is None else charge.id,
        amount_capturable=intent.amount_capturable,
        amount_received=intent.amount_received,
    )


async def authorize(
    client: stripe.StripeClient,
    *,
    payment_id: str,
    number: str,
    amount: int,
    currency: str,
    stripe_customer_id: str,
    stripe_payment_method_id: str,
    description: str | None,
) -> IntentState:
    """Confirms a manual-capture payment intent: the amount is held on the card. A declined
    card raises ``CardDeclined`` with Stripe's decline code."""
    with stripe_errors():
        intent = await client.v1.payment_intents.create_async(
            {
                "amount": amount,
                "currency": currency.lower(),
                "customer": stripe_customer_id,
                "payment_method": stripe_payment_method_id,
                "capture_method": "manual",
                "confirm": True,
                "off_session": True,
                "description": description or f"Tollgate payment {number}",
                "metadata": {"tollgate_payment_id": payment_id, "payment_number": number},
            },
            options={"idempotency_key": f"payment-{payment_id}-authorize"},
        )
    return intent_state(intent)


async def capture(
    client: stripe.StripeClient, *, payment_id: str, intent_id: str, amount: int
) -> IntentState:
    """Captures ``amount`` of the authorization; an intent already captured is returned as it
    is, one cancelled (expired) is a ``Conflict``."""
    with stripe_errors():
        intent = await client.v1.payment_intents.retrieve_async(intent_id)
        if intent.status == "requires_capture":
            intent = await client.v1.payment_intents.capture_async(
                intent_id,
                {"amount_to_capture": amount},
                options={"idempotency_key": f"payment-{payment_id}-capture"},
            )
    if intent.status != "succeeded":
        raise Conflict(
            f"payment intent {intent_id} is {intent.status}: nothing to capture",
            code="authorization_gone",
            stripe_status=intent.status,
        )
    return intent_state(intent)


async def cancel(
    client: stripe.StripeClient, *, payment_id: str, intent_id: str, reason: str
) -> IntentState:
    """Releases the authorization. Already cancelled is done; captured is a ``Conflict``."""
    with stripe_errors():
        intent = await client.v1.payment_intents.retrieve_async(intent_id)
        if intent.status not in ("canceled", "succeeded"):
            intent = await client.v1.payment_intents.cancel_async(
                intent_id,
                {"cancellation_reason": reason},
                options={"idempotency_key": f"payment-{payment_id}-cancel"},
            )
    if intent.status != "canceled":
        raise Conflict(
            f"payment intent {intent_id} is {intent.status}: it cannot be cancelled",
            code="already_captured",
            stripe_status=intent.status,
        )
    return intent_state(intent)


@dataclass(frozen=True)
class RefundState:
    refund_id: str
    status: str
    failure_reason: str | None


async def refund(
    client: stripe.StripeClient,
    *,
    refund_id: str,
    payment_id: str,
    intent_id: str,
    amount: int,
    reason: str | None,
) -> RefundState:
    """Refunds ``amount`` of the captured payment, once per refund (``refund-{id}``)."""
    params: RefundCreateParams = {
        "payment_intent": intent_id,
        "amount": amount,
        "metadata": {"tollgate_payment_id": payment_id, "tollgate_refund_id": refund_id},
    }
    if reason is not None:
        params["reason"] = reason
    with stripe_errors():
        created = await client.v1.refunds.create_async(
            params, options={"idempotency_key": f"refund-{refund_id}"}
        )
    return RefundState(
        refund_id=created.id,
        status=created.status or "pending",
        failure_reason=getattr(created, "failure_reason", None),
    )

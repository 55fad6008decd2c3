"""Stripe customers and the cards attached to them.

Tollgate never sees a card number: the client tokenizes the card with Stripe (``tok_...`` or
``pm_...``) and Tollgate keeps the PaymentMethod's id and the display details Stripe returns.
Every SDK error comes out as the project's own (``stripe_errors``).
"""

import hashlib
from dataclasses import dataclass

import stripe

from domain.errors import NotFound, ValidationError
from integrations.stripe_client import stripe_errors


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What Stripe shows of an attached card: enough to display and to tell cards apart."""

    id: str
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    country: str | None
    fingerprint: str | None


async def ensure_customer(client: stripe.StripeClient, customer_id: str) -> str:
    """The id of the Stripe customer of ``customer_id``. The idempotency key comes from the
    customer, so a retry, or two first cards added at once, make one Stripe customer."""
    with stripe_errors():
        customer = await client.v1.customers.create_async(
            {"metadata": {"tollgate_customer_id": customer_id}},
            options={"idempotency_key": customer_idempotency_key(customer_id)},
        )
    return customer.id


def customer_idempotency_key(customer_id: str) -> str:
    """``customer-{customer_id}``, or of its SHA-256 when the id is not printable ASCII: the
    key travels in an HTTP header, which cannot carry other characters."""
    if customer_id.isascii() and customer_id.isprintable():
        return f"customer-{customer_id}"
    return f"customer-sha256-{hashlib.sha256(customer_id.encode()).hexdigest()}"


async def attach_payment_method(
    client: stripe.StripeClient, stripe_customer_id: str, token: str
) -> CardDetails:
    """Attach the card behind ``token`` (a ``tok_...`` is made a PaymentMethod first) to the
    Stripe customer. A token Stripe does not know is the caller's mistake, a 4xx."""
    try:
        with stripe_errors():
            if token.startswith("tok_"):
                created = await client.v1.payment_methods.create_async(
                    {"type": "card", "card": {"token": token}}
                )
                token = created.id
            method = await client.v1.payment_methods.attach_async(
                token, {"customer": stripe_customer_id}
            )
    except NotFound as exc:
        # Stripe answers 404 for an unknown token; here that is bad input, not a missing route.
        raise ValidationError(exc.message, code="payment_token_invalid", param="token") from exc
    card = method.card
    if method.type != "card" or card is None:
        raise ValidationError(
            f"only cards are accepted, not {method.type}", code="payment_method_unsupported"
        )
    return CardDetails(
        id=method.id,
        type=method.type,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        country=card.country,
        fingerprint=card.fingerprint,
    )


async def detach_payment_method(client: stripe.StripeClient, pm_id: str) -> None:
    """Detach the card from its customer. Already detached (or gone) counts as done, so a
    removal retried after its first detach succeeded does not fail."""
    try:
        with stripe_errors():
            await client.v1.payment_methods.detach_async(pm_id)
    except NotFound:
        return
    except ValidationError as exc:
        if exc.details.get("stripe_code") != "payment_method_unexpected_state":
            raise

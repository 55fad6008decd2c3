"""The Stripe charge of an invoice: a payment intent confirmed off-session and captured at
once, under the key ``invoice-{id}-attempt-{number}``. A retried activity sends the same
key and gets Stripe's first answer; the next dunning attempt is a new number, a new key."""

import stripe

from integrations.stripe_client import stripe_errors
from integrations.stripe_payments import IntentState, intent_state


async def charge(
    client: stripe.StripeClient,
    *,
    invoice_id: str,
    invoice_number: str,
    attempt: int,
    amount: int,
    currency: str,
    stripe_customer_id: str,
    stripe_payment_method_id: str,
) -> IntentState:
    """Charges the invoice's total. A declined card raises ``CardDeclined``."""
    with stripe_errors():
        intent = await client.v1.payment_intents.create_async(
            {
                "amount": amount,
                "currency": currency.lower(),
                "customer": stripe_customer_id,
                "payment_method": stripe_payment_method_id,
                "confirm": True,
                "off_session": True,
                "description": f"Tollgate invoice {invoice_number}",
                "metadata": {
                    "tollgate_invoice_id": invoice_id,
                    "invoice_number": invoice_number,
                    "attempt": str(attempt),
                },
            },
            options={"idempotency_key": f"invoice-{invoice_id}-attempt-{attempt}"},
        )
    return intent_state(intent)

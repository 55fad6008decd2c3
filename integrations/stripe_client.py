"""Thin client of Stripe: builds the SDK's ``StripeClient`` and turns its errors into ours.

The same code talks to Stripe (``api_base=None``) and to the embedded sandbox. Callers make the
SDK calls themselves inside ``stripe_errors()``, passing an ``idempotency_key`` derived from the
entity on every call that moves money:

    with stripe_errors():
        intent = await client.v1.payment_intents.create_async(
            params, options={"idempotency_key": f"payment-{payment_id}"}
        )

``CardDeclined``, ``ValidationError``, ``NotFound`` and ``IdempotencyError`` are refusals that a
retry would repeat; ``ProviderError`` (timeouts, connection failures, 429, 5xx, 409 key
conflicts, a rejected API key) may succeed on a retry with the same key.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe

from domain.errors import (
    CardDeclined,
    IdempotencyError,
    NotFound,
    ProviderError,
    TollgateError,
    ValidationError,
)

DEFAULT_TIMEOUT_SECONDS = 30.0
# The SDK retries connection errors, 409s and 5xx itself, reusing the request's key.
DEFAULT_MAX_NETWORK_RETRIES = 2
PING_TIMEOUT_SECONDS = 3.0


def build_client(
    api_key: str,
    api_base: str | None = None,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
) -> stripe.StripeClient:
    """A client of Stripe, or of the sandbox at ``api_base``; sync and ``*_async`` calls work."""
    # httpx serves both the sync and the async methods, with one timeout for both.
    http_client = stripe.HTTPXClient(timeout=timeout_seconds, allow_sync_methods=True)
    return _client(api_key, api_base, http_client, max_network_retries)


def _client(
    api_key: str, api_base: str | None, http_client: stripe.HTTPClient, max_network_retries: int
) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=http_client,
    )


def map_error(exc: stripe.StripeError) -> TollgateError:
    """The project's error for an SDK error; details keep what an operator needs to look up."""
    message = exc.user_message or str(exc)
    details: dict[str, Any] = {"http_status": exc.http_status, "request_id": exc.request_id}
    if exc.code:
        details["stripe_code"] = exc.code
    if isinstance(exc, stripe.CardError):
        error = exc.error
        return CardDeclined(
            message,
            param=exc.param,
            decline_code=error.decline_code if error else None,
            payment_intent=error.payment_intent.id if error and error.payment_intent else None,
            charge=error.charge if error else None,
            **details,
        )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyError(message, **details)
    if isinstance(exc, stripe.InvalidRequestError):
        if exc.http_status == 404 or exc.code == "resource_missing":
            return NotFound(message, param=exc.param, **details)
        return ValidationError(message, param=exc.param, **details)
    if isinstance(exc, stripe.RateLimitError):
        return ProviderError(message, code="provider_rate_limited", **details)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Our configuration, not the caller's input: retried until an operator fixes the key.
        return ProviderError(message, code="provider_auth_failed", **details)
    return ProviderError(message, **details)


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Raises the project's error for any SDK error inside the block (sync or async code)."""
    try:
        yield
    except stripe.StripeError as exc:
        raise map_error(exc) from exc


async def create_transfer(
    client: stripe.StripeClient,
    *,
    amount: int,
    currency: str,
    destination: str,
    idempotency_key: str,
    metadata: dict[str, str],
) -> str:
    """Sends ``amount`` to the connected account ``destination``; the transfer's id.

    The same ``idempotency_key`` replays the first answer, so a retry cannot pay twice. An
    unknown destination is a refusal (``NotFound``: Stripe answers ``resource_missing``), a
    too low balance a ``ValidationError``; both are final.
    """
    with stripe_errors():
        transfer = await client.v1.transfers.create_async(
            {
                "amount": amount,
                # Stripe's currencies are lower case; ours are ISO 4217 upper case.
                "currency": currency.lower(),
                "destination": destination,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    return transfer.id


def verify_webhook(payload: bytes, sig_header: str | None, secret: str) -> stripe.Event:
    """The event of a webhook whose ``Stripe-Signature`` is valid; ``ValidationError`` if not."""
    if sig_header is not None and not sig_header.isascii():
        # The SDK compares with hmac.compare_digest, which raises TypeError on non-ASCII text:
        # such a header (anyone can send one) would otherwise be a 500.
        raise ValidationError("invalid Stripe webhook signature", code="webhook_signature_invalid")
    try:
        return stripe.Webhook.construct_event(payload, sig_header, secret)
    except stripe.SignatureVerificationError as exc:
        raise ValidationError(
            "invalid Stripe webhook signature", code="webhook_signature_invalid"
        ) from exc
    except ValueError as exc:
        raise ValidationError("invalid Stripe webhook payload", code="webhook_invalid") from exc


def _balance_summary(balance: stripe.Balance) -> dict[str, Any]:
    return {
        "livemode": balance.livemode,
        "available": {funds.currency: funds.amount for funds in balance.available},
    }


async def ping(
    api_key: str, api_base: str | None, *, timeout_seconds: float = PING_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Retrieves the balance, for the API's health check; ``ProviderError`` if Stripe fails."""
    http_client = stripe.HTTPXClient(timeout=timeout_seconds)
    try:
        with stripe_errors():
            client = _client(api_key, api_base, http_client, max_network_retries=0)
            return _balance_summary(await client.v1.balance.retrieve_async())
    finally:
        await http_client.close_async()


def ping_sync(
    api_key: str, api_base: str | None, *, timeout_seconds: float = PING_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """``ping`` for synchronous callers (the CLI)."""
    http_client = stripe.HTTPXClient(timeout=timeout_seconds, allow_sync_methods=True)
    try:
        with stripe_errors():
            client = _client(api_key, api_base, http_client, max_network_retries=0)
            return _balance_summary(client.v1.balance.retrieve())
    finally:
        http_client.close()

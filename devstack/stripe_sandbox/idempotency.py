"""``Idempotency-Key`` as Stripe implements it.

The first request with a key stores its status and body for 24 hours together with a
fingerprint of the request; the same key with the same request replays the stored bytes, with
other parameters it is a 400 ``idempotency_error``, and while the first is still running a
409. Only results of requests that executed are kept (successes and card declines); a failed
validation or an injected fault leaves the key free, as on Stripe.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import StripeError
from .store import Store

TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """A key this request holds while it runs: ``scope`` is the API key it belongs to."""

    scope: str
    key: str


@dataclass(frozen=True)
class Replay:
    status: int
    body: bytes
    original_request_id: str


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([method.upper(), path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def begin(
    store: Store, scope: str, key: str, print_: str, request_id: str, now: float
) -> Replay | None:
    """Claims the key for this request, or returns the stored result to replay."""
    if len(key) > MAX_KEY_LENGTH:
        raise StripeError(
            400,
            "invalid_request_error",
            f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters long.",
        )
    with store.transaction():
        record = store.idempotency_get(scope, key, not_before=now - TTL_SECONDS)
        if record is None:
            store.idempotency_start(scope, key, print_, request_id, now)
            return None
    if record.fingerprint != print_:
        raise StripeError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were"
            f" first used with. Try using a key other than '{key}' if you meant to execute a"
            " different request.",
        )
    if record.running:
        raise StripeError(
            409,
            "idempotency_error",
            "There is currently another in-progress request using this Stripe API"
            " Idempotency-Key. Please try again later.",
            code="idempotency_key_in_use",
        )
    assert record.status is not None and record.body is not None
    return Replay(record.status, record.body, record.request_id)


def complete(store: Store, scope: str, key: str, status: int, body: bytes) -> None:
    """Stores the result for replays; call it in the request's own transaction, so the key's
    result is saved if and only if the request's effects are."""
    if status < 300 or status == 402:
        store.idempotency_finish(scope, key, status, body)
    else:
        store.idempotency_forget(scope, key)


def abandon(store: Store, scope: str, key: str) -> None:
    with store.transaction():
        store.idempotency_forget(scope, key)


def purge_expired(store: Store, now: float) -> None:
    with store.transaction():
        store.idempotency_purge(now - TTL_SECONDS)

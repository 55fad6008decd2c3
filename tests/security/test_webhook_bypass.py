"""Attempts to get an event past ``POST /api/v1/webhooks/stripe`` without Stripe's signature
(``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, 5 minutes'
tolerance): each is a 400 in the error envelope and nothing is stored, no event and no audit
entry. As Stripe's own libraries, the check accepts a header with several ``v1`` signatures
when one of them is valid (that is how Stripe rolls a secret), and ignores other schemes."""

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.audit import AuditEvent
from models.payments import StripeEvent
from settings import Settings

WEBHOOK = "/api/v1/webhooks/stripe"
TOLERANCE = 300  # stripe.Webhook.DEFAULT_TOLERANCE


def event(event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_bypass", "object": "payment_intent", "metadata": {}}},
    }


def digest(body: bytes, secret: str, at: int) -> str:
    return hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    return f"t={at},v1={digest(body, secret, at)}"


# A case: (body, Stripe-Signature header as bytes or None) from the real secret.
Case = Callable[[str], tuple[bytes, bytes | None]]


def _body() -> bytes:
    return json.dumps(event()).encode()


def _with(header: Callable[[bytes, str], str]) -> Case:
    def case(secret: str) -> tuple[bytes, bytes | None]:
        body = _body()
        return body, header(body, secret).encode("latin-1")

    return case


def _altered(change: Callable[[bytes], bytes]) -> Case:
    def case(secret: str) -> tuple[bytes, bytes | None]:
        body = _body()
        return change(body), sign(body, secret).encode()

    return case


def _duplicate_keys(secret: str) -> tuple[bytes, bytes | None]:
    """Two ``type`` keys, signed with the real secret: which one counts depends on the
    parser, so the body is refused before anything reads it."""
    fields = json.dumps(event())[1:-1]
    body = ('{"type": "charge.refunded", ' + fields + "}").encode()
    return body, sign(body, secret).encode()


def _not_utf8(secret: str) -> tuple[bytes, bytes | None]:
    body = _body().replace(b"pi_bypass", b"pi_\xff\xfe")
    return body, sign(body, secret).encode()


CASES: dict[str, Case] = {
    "missing header": lambda secret: (_body(), None),
    "empty header": lambda secret: (_body(), b""),
    "wrong secret": _with(lambda body, secret: sign(body, "whsec_attacker")),
    "empty secret": _with(lambda body, secret: sign(body, "")),
    "replayed beyond the tolerance": _with(
        lambda body, secret: sign(body, secret, int(time.time()) - TOLERANCE - 5)
    ),
    "fresh timestamp over an old signature": _with(
        lambda body, secret: (
            f"t={int(time.time())},v1={digest(body, secret, int(time.time()) - 3600)}"
        )
    ),
    "v0 scheme only, correctly computed": _with(
        lambda body, secret: f"t={int(time.time())},v0={digest(body, secret, int(time.time()))}"
    ),
    "several v1, none valid": _with(
        lambda body, secret: f"t={int(time.time())},v1={'0' * 64},v1={'f' * 64}"
    ),
    "v1 in capitals": _with(
        lambda body, secret: (
            f"t={int(time.time())},v1={digest(body, secret, int(time.time())).upper()}"
        )
    ),
    "no timestamp": _with(lambda body, secret: f"v1={digest(body, secret, 0)}"),
    "timestamp not a number": _with(
        lambda body, secret: f"t=now,v1={digest(body, secret, int(time.time()))}"
    ),
    "garbage header": _with(lambda body, secret: "t=,v1=,,=,==="),
    "non-ASCII header": _with(lambda body, secret: f"t={int(time.time())},v1={'é' * 64}"),
    "body with a field changed after signing": _altered(
        lambda body: body.replace(b"payment_intent.succeeded", b"payment_intent.canceled")
    ),
    "body with whitespace added after signing": _altered(lambda body: body + b" "),
    "body truncated after signing": _altered(lambda body: body[:-1]),
    "JSON with duplicate keys, signed": _duplicate_keys,
    "body not UTF-8, signed": _not_utf8,
}


async def stored(db: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with db() as session:
        events = await session.scalar(select(func.count()).select_from(StripeEvent))
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.entity_type == "stripe_event")
        )
    return int(events or 0), int(audited or 0)


async def post(api: AsyncClient, body: bytes, header: bytes | None) -> Response:
    headers = [(b"content-type", b"application/json")]
    if header is not None:
        headers.append((b"stripe-signature", header))
    return await api.post(WEBHOOK, content=body, headers=headers)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_webhook_without_a_valid_signature_is_refused_and_nothing_stored(
    security_api: AsyncClient,
    api_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
    case: str,
) -> None:
    before = await stored(security_db)
    body, header = CASES[case](api_settings.stripe_webhook_secret)
    response = await post(security_api, body, header)
    assert response.status_code == 400, (case, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] in {"webhook_signature_invalid", "webhook_invalid"}, (case, error)
    assert await stored(security_db) == before, case


async def test_several_v1_signatures_pass_when_one_is_valid_as_stripe_does(
    security_api: AsyncClient,
    api_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
) -> None:
    """Stripe sends one v1 per active secret while a secret rolls; any valid one will do.
    The valid one may come first or last; a v0 beside it changes nothing."""
    secret = api_settings.stripe_webhook_secret
    for position in ("first", "last"):
        body = _body()
        at = int(time.time())
        valid, forged = digest(body, secret, at), digest(body, "whsec_old", at)
        signatures = [valid, forged] if position == "first" else [forged, valid]
        header = f"t={at},v0={'a' * 64}," + ",".join(f"v1={s}" for s in signatures)
        before = await stored(security_db)
        response = await post(security_api, body, header.encode())
        assert response.status_code == 200, (position, response.text)
        assert response.json() == {"received": True, "duplicate": False}
        assert (await stored(security_db))[0] == before[0] + 1


async def test_a_signature_just_inside_the_tolerance_passes(
    security_api: AsyncClient, api_settings: Settings
) -> None:
    body = _body()
    header = sign(body, api_settings.stripe_webhook_secret, int(time.time()) - TOLERANCE + 30)
    response = await post(security_api, body, header.encode())
    assert response.status_code == 200, response.text

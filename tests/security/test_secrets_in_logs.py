"""Secrets never reach the logs. Requests and activity runs that carry secrets (card numbers
in a payment method's fields and a payment's text, bearer tokens valid, forged and in a query
string, the Stripe key on every Stripe call, the Stripe webhook secret, outbound webhook
endpoint secrets, the chain key behind the liquidity check, the Temporal API key) are driven
with every logger at DEBUG. Both what the records say (``caplog``: the messages as the code
wrote them, their extras and tracebacks) and what the JSON formatter writes (the lines that
leave the process) are searched for every secret and for any card number (13 to 19 digits
that pass the Luhn check): none is found.

The raw records are checked too, not only the masked output: masking is the safety net, the
code itself must not log secrets."""

import io
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.payments import StripePaymentActivities
from activities.webhooks import WebhookDeliveryActivities
from devstack.net import free_port
from domain.actors import Role
from domain.tokens import mint
from integrations.stripe_client import build_client
from integrations.webhook_http import WebhookSender
from observability.logs import ContextFilter, JsonFormatter, logging_config
from settings import Settings
from tests.fixtures.stripe_sandbox import StripeSandbox
from tests.security.conftest import bearer, fast_failing_api
from tests.security.test_webhook_bypass import sign
from workflows.types import StripeIntentInput, WebhookSendInput

CARDS = ["4242424242424242", "4000056655665556", "5555555555554444", "378282246310005"]
# 13 to 19 digits, maybe grouped by spaces or dashes, not inside a longer word (a UUID, an
# id): the shape observability.logs masks.
_CARD_CANDIDATE = re.compile(r"(?<![\w.-])(?:\d[ -]?){12,18}\d(?![\w-])")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_numbers(text: str) -> list[str]:
    found = []
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn(digits):
            found.append(match.group(0))
    return found


@pytest.fixture(scope="module")
def secret_settings(api_settings: Settings, stripe_sandbox: StripeSandbox) -> Settings:
    """Secrets of their own, recognisable anywhere; Stripe is the sandbox."""
    return api_settings.model_copy(
        update={
            "stripe_api_key": f"sk_test_{secrets.token_hex(16)}",
            "stripe_api_base": stripe_sandbox.url,
            "stripe_webhook_secret": f"whsec_{secrets.token_hex(16)}",
            "jwt_secret": f"jwt-{secrets.token_hex(24)}",
            "temporal_api_key": f"tmprl-{secrets.token_hex(16)}",
            "chain_private_key": SecretStr("0x" + secrets.token_hex(32)),
        }
    )


@pytest.fixture(scope="module")
async def secret_api(secret_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with fast_failing_api(secret_settings) as client:
        yield client


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def formatted(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    """The logging of ``TOLLGATE_LOG_LEVEL=DEBUG``: every logger at DEBUG except the few the
    production configuration keeps higher (``observability.logs.logging_config``), into
    caplog and through the JSON formatter."""
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter(service="tollgate-api"))
    handler.addFilter(ContextFilter())
    handler.setLevel(logging.DEBUG)
    pinned = {
        name: config["level"]
        for name, config in logging_config(level="DEBUG")["loggers"].items()
        if "level" in config
    }
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(pinned.get(logger.name, logging.NOTSET))
    for name, level in pinned.items():
        levels.setdefault(logging.getLogger(name), logging.NOTSET)
        logging.getLogger(name).setLevel(level)
    logging.getLogger().addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield captured
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


def raw_text(caplog: pytest.LogCaptureFixture) -> str:
    """The records as written: messages, extras, exception text."""
    standard = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for name, value in vars(record).items() if name not in standard)
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def drive(
    api: AsyncClient,
    settings: Settings,
    db: async_sessionmaker[AsyncSession],
) -> list[str]:
    """Requests and activity runs that carry secrets; the secrets they used."""
    customer = bearer(settings, Role.CUSTOMER, "cus_logs")
    admin = bearer(settings, Role.PLATFORM_ADMIN, "ops_logs")
    used = [customer["Authorization"].removeprefix("Bearer "), admin["Authorization"][7:]]

    # Card numbers where a token belongs, and in fields a payment method never has.
    for fields in (
        {"token": CARDS[0]},
        {"token": "4000 0566 5566 5556"},
        {"token": int(CARDS[2])},
        {"token": "tok_visa", "number": CARDS[3], "cvc": "123", "exp_month": 12},
        {"token": "tok_visa", "card": {"number": CARDS[0], "cvc": "123"}},
    ):
        answer = await api.post("/api/v1/payment-methods", json=fields, headers=customer)
        assert answer.status_code == 400, answer.text
        assert not card_numbers(answer.text), answer.text
    # A real card through Stripe (the sandbox): the Stripe key is on every call.
    method = await api.post(
        "/api/v1/payment-methods", json={"token": "pm_card_visa"}, headers=customer
    )
    assert method.status_code == 201, method.text
    # Card numbers a client put in free text: stored as sent, never logged.
    payment = await api.post(
        "/api/v1/payments",
        json={
            "amount": 1_500,
            "currency": "USD",
            "description": f"paid with {CARDS[1]}",
            "metadata": {"note": "card 5555-5555-5555-4444"},
        },
        headers=customer,
    )
    assert payment.status_code == 201, payment.text

    # Tokens: forged, in a query string, in a cookie, expired.
    forged = mint(
        subject="x",
        role=Role.PLATFORM_ADMIN,
        secret="forged-secret-0123456789-0123456789-0123456789",
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=5),
    )
    expired = mint(
        subject="x",
        role=Role.PLATFORM_ADMIN,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    used += [forged, expired]
    for headers, params in (
        ({"Authorization": f"Bearer {forged}"}, {}),
        ({"Authorization": f"Bearer {expired}"}, {}),
        ({}, {"access_token": used[1]}),
        ({"Cookie": f"token={used[1]}"}, {}),
    ):
        answer = await api.get("/api/v1/ledger/accounts", headers=headers, params=params)
        assert answer.status_code == 401
    # The console's sign-in form, with a token in the form body.
    await api.post("/admin/login", data={"token": used[1], "csrf_token": "x"})

    # Stripe's webhooks: signed (with a card number in the event) and forged.
    event = {
        "id": f"evt_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "type": "payment_intent.created",
        "livemode": False,
        "created": int(time.time()),
        "data": {"object": {"id": "pi_logs", "metadata": {"card": CARDS[0]}}},
    }
    body = json.dumps(event).encode()
    for header in (sign(body, settings.stripe_webhook_secret), sign(body, "whsec_forged")):
        await api.post(
            "/api/v1/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    # Outbound webhooks: an endpoint's secret, shown once, rotated, then a signed attempt.
    closed = f"http://127.0.0.1:{free_port()}"
    endpoint = await api.post(
        "/api/v1/webhook-endpoints",
        json={"url": f"{closed}/hook?api_key=hook-query-secret", "event_types": ["*"]},
        headers=admin,
    )
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = endpoint.json()["id"]
    rotated = await api.post(
        f"/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret", headers=admin
    )
    used += [endpoint.json()["secret"], rotated.json()["secret"]]
    delivery = await api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/test", headers=admin)
    assert delivery.status_code == 202, delivery.text
    sent = await ActivityEnvironment().run(
        WebhookDeliveryActivities(db, WebhookSender()).send,
        WebhookSendInput(delivery_id=delivery.json()["id"], attempt=1, timeout_seconds=2),
    )
    assert sent.error, sent  # nothing listens there

    # Stripe from a worker's activity, with the key, and the chain key behind liquidity.
    stripe = build_client(settings.stripe_api_key, settings.stripe_api_base)
    await ActivityEnvironment().run(
        StripePaymentActivities(db, stripe).authorize,
        StripeIntentInput(payment_id=payment.json()["id"]),
    )
    await api.get("/api/v1/liquidity", headers=admin)
    return used


async def test_no_secret_and_no_card_number_is_ever_logged(
    secret_api: AsyncClient,
    secret_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
    every_log: Captured,
    caplog: pytest.LogCaptureFixture,
) -> None:
    used = await drive(secret_api, secret_settings, security_db)
    chain_key = secret_settings.chain_sender_key()
    forbidden = {
        "Stripe key": secret_settings.stripe_api_key,
        "Stripe webhook secret": secret_settings.stripe_webhook_secret,
        "JWT secret": secret_settings.jwt_secret,
        "Temporal API key": str(secret_settings.temporal_api_key),
        "chain key": chain_key,
        "chain key without 0x": chain_key.removeprefix("0x"),
        "webhook URL's query secret": "hook-query-secret",
        **{f"token or endpoint secret {n}": value for n, value in enumerate(used)},
        **{f"card {card}": card for card in CARDS},
    }
    raw, formatted = raw_text(caplog), every_log.formatted
    assert len(caplog.records) > 20 and formatted.count("\n") > 20  # the capture worked
    for name, text in (("the records", raw), ("the JSON lines", formatted)):
        found = [what for what, value in forbidden.items() if value and value in text]
        assert not found, f"{name} show {found}"
        assert not card_numbers(text), f"{name} show card numbers {card_numbers(text)}"
    for line in formatted.splitlines():
        json.loads(line)  # every line is one JSON object


def test_card_numbers_are_found_by_the_check() -> None:
    """The control of the grep above: it does see a card number when there is one."""
    assert card_numbers(f"x {CARDS[0]} y 4000 0566 5566 5556 z") == [
        CARDS[0],
        "4000 0566 5566 5556",
    ]
    assert card_numbers("order 1234567890123 at 1700000000") == []
    assert card_numbers("request 2c47c856-58e9-4a42-1062-4790910f8c8 done") == []

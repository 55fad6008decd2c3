"""Structured log lines: the fields, the ids Temporal's loggers carry, and what is masked."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from observability import logs
from observability.logs import ContextFilter, JsonFormatter, TextFormatter, redact

VISA = "4242 4242 4242 4242"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyXzEiLCJyb2xlIjoiY3VzdG9tZXIifQ"
    ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
)
PRIVATE_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture(autouse=True)
def no_configured_secrets() -> Iterator[None]:
    """Every app an earlier test built registered its settings' secrets, process-wide (the
    default Stripe key among them): these tests start from none and leave them as found."""
    saved, pattern = set(logs._SECRETS), logs._SECRET_PATTERN
    logs._SECRETS.clear()
    logs._SECRET_PATTERN = None
    yield
    logs._SECRETS.clear()
    logs._SECRETS.update(saved)
    logs._SECRET_PATTERN = pattern


@pytest.fixture
def emitted() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="tollgate-test"))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"tollgate.test.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_request_id(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    token = logs.request_id_var.set("req-123")
    try:
        logger.info("payout %s completed", "ps_1", extra={"amount": 1200})
    finally:
        logs.request_id_var.reset(token)
    logger.warning("outside a request")

    first, second = lines(stream)
    assert first["message"] == "payout ps_1 completed"
    assert (first["level"], first["logger"], first["service"]) == (
        "info",
        logger.name,
        "tollgate-test",
    )
    assert first["request_id"] == "req-123"
    assert first["amount"] == 1200
    assert first["ts"].endswith("+00:00")
    assert "request_id" not in second


def test_temporal_extras_are_flattened_into_workflow_and_activity_ids(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    logger.info(
        "charging",
        extra={
            "temporal_activity": {
                "activity_id": "7",
                "activity_type": "charge_invoice",
                "attempt": 2,
                "namespace": "default",
                "task_queue": "tollgate-stripe",
                "workflow_id": "subscription-1",
                "workflow_run_id": "run-1",
                "workflow_type": "Subscription",
            }
        },
    )
    logger.warning(
        "refused",
        extra={
            "temporal_workflow": {
                "attempt": 1,
                "namespace": "default",
                "run_id": "run-2",
                "task_queue": "tollgate",
                "workflow_id": "escrow-hold-1",
                "workflow_type": "EscrowHold",
            }
        },
    )

    activity_line, workflow_line = lines(stream)
    assert {k: activity_line[k] for k in ("workflow_id", "run_id", "activity_id")} == {
        "workflow_id": "subscription-1",
        "run_id": "run-1",
        "activity_id": "7",
    }
    assert activity_line["activity_type"] == "charge_invoice"
    assert activity_line["attempt"] == 2
    assert "temporal_activity" not in activity_line
    assert workflow_line["workflow_id"] == "escrow-hold-1"
    assert workflow_line["run_id"] == "run-2"
    assert workflow_line["workflow_type"] == "EscrowHold"
    assert "activity_id" not in workflow_line


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization:", "abc.def-ghi_jkl"),
        ("calling with token " + JWT, "calling with token", "eyJhbGciOiJIUzI1NiIs"),
        ("key sk_live_51HxYzABCdefGHIjkl in use", "sk_live_", "51HxYzABCdefGHIjkl"),
        ("sk_test_tollgate_sandbox", "sk_test_", "tollgate_sandbox"),
        ("rk_live_abcdefghijklmnop", "rk_live_", "abcdefghijklmnop"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "MfKQ9r8GKYqrTwjUPD8IL"),
        (f"private_key={PRIVATE_KEY}", "private_key=", PRIVATE_KEY[2:]),
        (f'{{"private_key": "{PRIVATE_KEY}"}}', "private_key", PRIVATE_KEY[2:]),
        ("TOLLGATE_JWT_SECRET=hunter2hunter2", "TOLLGATE_JWT_SECRET=", "hunter2"),
        ("card " + VISA + " declined", "****4242", "4242 4242 4242 4242"),
        ("pan 5555555555554444", "****4444", "5555555555554444"),
        ("cvc: 314 refused", "cvc:", "314"),
        ('{"cvc": "314"}', "cvc", "314"),
        ("postgresql+psycopg://app:s3cr3t-pw@db:5432/tollgate", "app:", "s3cr3t-pw"),
        (
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIO\n-----END EC PRIVATE KEY-----",
            "[REDACTED PRIVATE KEY]",
            "MHcCAQEEIO",
        ),
    ],
)
def test_secrets_and_card_data_are_masked(text: str, kept: str, gone: str) -> None:
    masked = redact(text)
    assert kept in masked
    assert gone not in masked


@pytest.mark.parametrize(
    "text",
    [
        # Not Luhn-valid: an order number, not a card.
        "order 4242424242424241 shipped",
        # Hashes operators look up stay readable (a key is masked by name or as a secret).
        "anchored in 0x" + "ab" * 32,
        "ticket 1b4e28ba-2fa1-11d2-883f-0016d3cca427 verified",
        "idempotency_key=payout-schedule-42-run-0",
        "amount 125000 minor units",
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    bare_key = "9f3a0c77e1d24b6a8c5e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
    logs.register_secrets(["0x" + bare_key, "a-jwt-signing-secret-for-tests"])

    masked = redact(f"signer {bare_key} and 0x{bare_key}; jwt a-jwt-signing-secret-for-tests")

    assert bare_key not in masked
    assert "a-jwt-signing-secret-for-tests" not in masked


def test_sensitive_extras_exceptions_and_nested_values_are_masked(
    emitted: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = emitted
    try:
        raise ValueError(f"Stripe refused card {VISA} with sk_live_abcdefghijklmnop")
    except ValueError:
        logger.exception(
            "charge failed",
            extra={
                "headers": {"Authorization": "Bearer abcdefghijkl", "Accept": "json"},
                "card_number": "4000056655665556",
                "cvc": "123",
                "client_secret": "pi_123_secret_456",
                "note": "paid with 4000 0566 5566 5556",
            },
        )

    [line] = lines(stream)
    text = json.dumps(line)
    for secret in ("abcdefghijkl", "4000056655665556", "5566 5556", "pi_123_secret_456"):
        assert secret not in text
    assert line["headers"] == {"Authorization": "[REDACTED]", "Accept": "json"}
    assert line["cvc"] == "[REDACTED]"
    assert line["note"] == "paid with [REDACTED CARD ****5556]"
    assert "ValueError: Stripe refused card [REDACTED CARD ****4242]" in line["exception"]


def test_the_text_format_carries_the_ids_and_masks_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tollgate.test.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "declined %s", VISA, extra={"temporal_workflow": {"workflow_id": "payment-1"}}
        )
    finally:
        logger.removeHandler(handler)

    line = stream.getvalue()
    assert "WARNING tollgate.test.text declined [REDACTED CARD ****4242]" in line
    assert "workflow_id=payment-1" in line

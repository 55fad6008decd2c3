"""Our Standard Webhooks signatures, checked by the reference library (``standardwebhooks``)
as a receiver would; and the pure rules of endpoints and retries."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.errors import ValidationError
from domain.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    check_event_types,
    check_retry_schedule,
    check_url,
    mask_secret,
    new_secret,
    retry_delay,
    subscribes,
)
from integrations.webhook_http import retry_after_seconds
from integrations.webhook_signing import sign

BODY = b'{"id":"msg_1","type":"invoice.paid","data":{"amount":100}}'


def test_a_signature_is_verified_by_the_standardwebhooks_library() -> None:
    secret = new_secret()
    headers = sign([secret], "msg_1", int(time.time()), BODY)

    assert Webhook(secret).verify(BODY, headers) == {
        "id": "msg_1",
        "type": "invoice.paid",
        "data": {"amount": 100},
    }
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize(
    "tamper",
    ["body", "timestamp", "message id", "other secret", "stale"],
)
def test_a_tampered_or_stale_message_is_refused(tamper: str) -> None:
    secret = new_secret()
    now = int(time.time())
    signed_at = now - 3600 if tamper == "stale" else now
    headers = sign([secret], "msg_1", signed_at, BODY)
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"100", b"999")
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(now + 1)
    elif tamper == "message id":
        headers["webhook-id"] = "msg_2"

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret() if tamper == "other secret" else secret).verify(body, headers)


def test_during_a_rotation_both_secrets_verify() -> None:
    old, new = new_secret(), new_secret()
    headers = sign([new, old], "msg_1", int(time.time()), BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)


def test_secrets_are_whsec_base64_of_32_bytes_and_masked() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    assert secret != new_secret()
    assert mask_secret(secret) == secret[:10] + "…"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "https://user:pass@example.com/hook",
        "https:///nohost",
        "not a url",
        "https://example.com:99999/",
        "",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        check_url(url)


def test_good_urls_pass() -> None:
    assert check_url(" https://hooks.example.com:8443/tollgate?x=1 ") == (
        "https://hooks.example.com:8443/tollgate?x=1"
    )
    assert check_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000/"


def test_event_types_and_matching() -> None:
    assert check_event_types(["invoice.*", "payment.captured", "invoice.*"]) == [
        "invoice.*",
        "payment.captured",
    ]
    for bad in (["nope.created"], [], ["invoice"], ["Invoice.paid"], ["*.paid"]):
        with pytest.raises(ValidationError):
            check_event_types(bad)
    assert subscribes(["*"], "invoice.paid")
    assert subscribes(["invoice.*"], "invoice.paid")
    assert not subscribes(["invoice.*"], "invoice_line.paid")
    assert subscribes(["payment.captured"], "payment.captured")
    assert not subscribes(["payment.captured"], "payment.failed")


def test_retry_schedules() -> None:
    assert check_retry_schedule([5, 5, 60]) == [5, 5, 60]
    for bad in ([], [0], [60, 5], [1] * 21, [10**7]):
        with pytest.raises(ValidationError):
            check_retry_schedule(bad)


def test_retry_delays_follow_the_schedule_and_retry_after_only_lengthens() -> None:
    schedule = DEFAULT_RETRY_SCHEDULE
    waits = [retry_delay(schedule, failures, None, 86_400) for failures in range(1, 9)]
    assert waits == [timedelta(seconds=s) for s in schedule] + [None]
    assert retry_delay(schedule, 1, 3600, 86_400) == timedelta(hours=1)
    assert retry_delay(schedule, 2, 1, 86_400) == timedelta(seconds=300)
    assert retry_delay(schedule, 1, 10**9, 86_400) == timedelta(days=1)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 12:05:00 GMT", now) == 300
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None

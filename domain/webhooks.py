"""Outbound webhooks, the pure part: endpoint secrets, what an endpoint subscribes to, which
answers succeed, and when a failed delivery is tried again.

A delivery is tried once, then once after each interval of its endpoint's retry schedule;
an answer that asks for more time (``Retry-After``) only ever makes a wait longer. A 410
Gone means the receiver is gone for good: no retry, and the endpoint is disabled.
"""

import base64
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from domain.errors import ValidationError

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_RETRIES = 20
MAX_RETRY_INTERVAL = timedelta(days=7)
MAX_URL_LENGTH = 2048
MAX_EVENT_TYPES = 100
TEST_EVENT = "webhook.test"
GONE = 410
# The old secret of a rotation still signs (a second signature) for this long, so receivers
# can switch without refusing deliveries in between.
ROTATION_OVERLAP = timedelta(hours=24)
# Entity types whose changes the services announce in the outbox (``<entity>.<action>``).
# A service that starts announcing a new entity type adds it here.
EVENT_PREFIXES = frozenset(
    {
        "commission_rule",
        "escrow_hold",
        "fraud_check",
        "invoice",
        "liquidity",
        "market",
        "market_commitment",
        "market_resolution",
        "payment",
        "payment_method",
        "payout_schedule",
        "plan",
        "reconciliation",
        "settlement_window",
        "refund",
        "subscription",
        "token_grant",
        "transfer",
        "transfer_batch",
        "vendor_settlement",
        "webhook",
    }
)
_EVENT_TYPE = re.compile(r"^([a-z][a-z0-9_]*)\.(\*|[a-z][a-z0-9_.]*)$")


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not attempted yet
    RETRYING = "retrying"  # failed, waiting for its next attempt
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"  # the retry schedule ran out
    CANCELLED = "cancelled"  # the endpoint was disabled (or answered 410), or by an operator


OPEN_STATUSES = frozenset({DeliveryStatus.PENDING, DeliveryStatus.RETRYING})
FINAL_STATUSES = frozenset(DeliveryStatus) - OPEN_STATUSES


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes, as Standard Webhooks secrets are."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValidationError("a webhook secret starts with whsec_", param="secret")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise ValidationError("a webhook secret is base64 after whsec_", param="secret") from exc


def mask_secret(secret: str) -> str:
    """Enough to recognise a secret, not to use it."""
    return f"{SECRET_PREFIX}{secret.removeprefix(SECRET_PREFIX)[:4]}…"


def check_url(url: str) -> str:
    """An http(s) URL with a host and without credentials (they would sit in logs)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url must be 1 to {MAX_URL_LENGTH} characters", param="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValidationError(f"url is malformed: {exc}", param="url") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("url must be http or https", param="url")
    if not parts.hostname:
        raise ValidationError("url must name a host", param="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("url must not carry credentials", param="url")
    if any(char.isspace() for char in url):
        raise ValidationError("url must not contain spaces", param="url")
    return url


def check_event_types(event_types: Iterable[str]) -> list[str]:
    """``*``, ``<entity>.*`` or ``<entity>.<action>`` of a known entity type; no repeats."""
    found = list(dict.fromkeys(event_types))
    if not 1 <= len(found) <= MAX_EVENT_TYPES:
        raise ValidationError(
            f"event_types needs 1 to {MAX_EVENT_TYPES} entries", param="event_types"
        )
    for event_type in found:
        if event_type == "*":
            continue
        match = _EVENT_TYPE.match(event_type)
        if match is None or match.group(1) not in EVENT_PREFIXES:
            raise ValidationError(
                f"unknown event type {event_type!r}: use '*', '<entity>.*' or "
                f"'<entity>.<action>' with an entity among {', '.join(sorted(EVENT_PREFIXES))}",
                param="event_types",
            )
    return found


def check_retry_schedule(seconds: Sequence[int]) -> list[int]:
    """1 to 20 waits in seconds, each at least the one before, none above 7 days."""
    schedule = list(seconds)
    if not 1 <= len(schedule) <= MAX_RETRIES:
        raise ValidationError(
            f"retry_schedule_seconds needs 1 to {MAX_RETRIES} waits", param="retry_schedule_seconds"
        )
    longest = int(MAX_RETRY_INTERVAL.total_seconds())
    for wait in schedule:
        if isinstance(wait, bool) or not isinstance(wait, int) or not 1 <= wait <= longest:
            raise ValidationError(
                f"each wait of retry_schedule_seconds is 1 to {longest} seconds",
                param="retry_schedule_seconds",
            )
    if any(later < earlier for earlier, later in pairwise(schedule)):
        raise ValidationError(
            "retry_schedule_seconds must not decrease", param="retry_schedule_seconds"
        )
    return schedule


def subscribes(event_types: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint with these patterns wants ``event_type``."""
    for pattern in event_types:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def succeeded(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def retry_delay(
    schedule: Sequence[int], failures: int, retry_after: int | None, max_retry_after: int
) -> timedelta | None:
    """The wait after the ``failures``-th failed attempt, or None when the schedule is spent.
    ``Retry-After`` (capped at ``max_retry_after``) lengthens the wait, never shortens it."""
    if not 1 <= failures <= len(schedule):
        return None
    wait = schedule[failures - 1]
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_retry_after))
    return timedelta(seconds=wait)


def message_id(event_id: int) -> str:
    """The ``webhook-id`` of an outbox event: every delivery of it (replays too) carries it."""
    return f"msg_{event_id}"


def render_body(
    *,
    message_id: str,
    event_type: str,
    occurred_at: datetime,
    entity_type: str,
    entity_id: str,
    data: dict[str, Any],
) -> bytes:
    """The JSON a receiver gets, in Standard Webhooks' shape (``type``, ``timestamp``,
    ``data``) with the message id and the entity the event concerns."""
    return json.dumps(
        {
            "id": message_id,
            "type": event_type,
            "timestamp": occurred_at.isoformat(),
            "entity": {"type": entity_type, "id": entity_id},
            "data": data,
        },
        separators=(",", ":"),
        default=str,
    ).encode()

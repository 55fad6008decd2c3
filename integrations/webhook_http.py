"""POSTing one webhook to a receiver. Whatever happens is an answer, not an exception: a
status code (with ``Retry-After`` when given), or the error that kept the request from
getting one (timeout, refused connection, bad TLS). Redirects are not followed: a receiver
that moved must be updated, as with Stripe's webhooks."""

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

EXCERPT_BYTES = 1024
USER_AGENT = "Tollgate-Webhooks/1.0"


@dataclass(frozen=True)
class WebhookResponse:
    status_code: int | None
    duration_ms: int
    retry_after_seconds: int | None = None
    error: str | None = None
    excerpt: str | None = None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> int | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent
    or unreadable, 0 for a date already past."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, math.ceil((when - (now or datetime.now(UTC))).total_seconds()))


class WebhookSender:
    """One pooled HTTP client for every delivery; a timeout bounds a whole request."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, seconds: float
    ) -> WebhookResponse:
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(seconds):
                async with self.client.stream(
                    "POST",
                    url,
                    content=body,
                    headers={**headers, "content-type": "application/json"},
                    timeout=seconds,
                ) as response:
                    excerpt = await _excerpt(response)
        except (TimeoutError, httpx.TimeoutException):
            return WebhookResponse(None, elapsed(), error=f"timed out after {seconds:g}s")
        except httpx.HTTPError as exc:
            return WebhookResponse(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:500])
        return WebhookResponse(
            response.status_code,
            elapsed(),
            retry_after_seconds=retry_after_seconds(response.headers.get("retry-after")),
            excerpt=excerpt,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _excerpt(response: httpx.Response) -> str:
    """The first kilobyte of the body, at most; the rest is not read."""
    read = b""
    async for chunk in response.aiter_bytes():
        read += chunk
        if len(read) >= EXCERPT_BYTES:
            break
    return read[:EXCERPT_BYTES].decode("utf-8", errors="replace")

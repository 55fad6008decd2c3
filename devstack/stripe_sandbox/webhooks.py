"""Signed webhook delivery, with Stripe's ``Stripe-Signature`` scheme.

The header is ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed by the
endpoint secret>``, which ``stripe.Webhook.construct_event`` verifies. Each delivery runs in
the background and is retried with exponential backoff until the endpoint answers 2xx.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .store import new_id

log = logging.getLogger(__name__)


def new_secret() -> str:
    return new_id("whsec_", 32)


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Target:
    url: str
    secret: str


class WebhookDispatcher:
    def __init__(
        self, *, attempts: int = 5, first_delay: float = 0.5, timeout: float = 5.0
    ) -> None:
        self._attempts = attempts
        self._first_delay = first_delay
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def deliver(self, event: dict[str, Any], targets: list[Target]) -> None:
        """Schedules the event's delivery to each target; must run on the server's loop."""
        payload = json.dumps(event, indent=2).encode()
        for target in targets:
            task = asyncio.get_running_loop().create_task(self._send(event["id"], payload, target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, event_id: str, payload: bytes, target: Target) -> None:
        assert self._client is not None, "dispatcher not started"
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._first_delay * 2 ** (attempt - 1))
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": signature_header(payload, target.secret, int(time.time())),
            }
            try:
                response = await self._client.post(target.url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                log.info("webhook %s to %s failed: %s", event_id, target.url, exc)
                continue
            if response.is_success:
                return
            log.info("webhook %s to %s got %s", event_id, target.url, response.status_code)
        log.warning(
            "webhook %s to %s abandoned after %d attempts", event_id, target.url, self._attempts
        )

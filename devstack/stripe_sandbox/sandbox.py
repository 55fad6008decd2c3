"""The sandbox's running state and how one ``/v1/`` request is executed against it."""

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from . import idempotency
from .config import SandboxConfig
from .context import Context
from .errors import StripeError
from .faults import FaultInjector
from .params import Params
from .resources import build_router
from .resources.events import add_endpoint
from .resources.transfers import settle_due_payouts
from .routing import Handler
from .store import Store
from .webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

CLOCK_SECONDS = 0.1
PURGE_SECONDS = 60.0


def encode(body: dict[str, Any]) -> bytes:
    # Stripe answers pretty-printed JSON.
    return json.dumps(body, indent=2).encode()


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_file)
        self.faults = FaultInjector(config.faults)
        self.router = build_router()
        self.webhooks = WebhookDispatcher()
        self._clock: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.webhooks.start()
        self.run_job(self._ensure_configured_endpoints)
        self._clock = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        await self.webhooks.stop()
        self.store.close()

    def reset(self) -> None:
        with self.store.transaction():
            self.store.reset()
        self.faults = FaultInjector(self.config.faults)
        self.run_job(self._ensure_configured_endpoints)

    def execute(
        self,
        handler: Handler,
        ctx: Context,
        params: Params,
        path_args: dict[str, str],
        claim: idempotency.Claim | None,
    ) -> tuple[int, bytes]:
        """Runs a handler in one transaction, with the result of its Idempotency-Key if any,
        and delivers the events of what it committed."""
        try:
            with self.store.transaction():
                try:
                    status, body = 200, handler(ctx, params, **path_args)
                except StripeError as exc:
                    if not exc.keep_changes:
                        raise
                    status, body = exc.status, exc.to_json()
                payload = encode(body)
                if claim is not None:
                    idempotency.complete(self.store, claim.scope, claim.key, status, payload)
        except StripeError as exc:
            if claim is not None:
                idempotency.abandon(self.store, claim.scope, claim.key)
            return exc.status, encode(exc.to_json())
        self._deliver(ctx)
        return status, payload

    def run_job(self, job: Callable[[Context], None]) -> None:
        """Runs background work (not a request) the same way: one transaction, then events."""
        ctx = Context(self.store, self.config)
        with self.store.transaction():
            job(ctx)
        self._deliver(ctx)

    def _deliver(self, ctx: Context) -> None:
        for event, targets in ctx.deliveries:
            self.webhooks.deliver(event, targets)

    def _ensure_configured_endpoints(self, ctx: Context) -> None:
        known = {endpoint["url"] for endpoint in self.store.find("webhook_endpoint")}
        for url in self.config.webhook_urls:
            if url not in known:
                add_endpoint(ctx, url, ["*"], description="configured at start")

    async def _tick(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(CLOCK_SECONDS)
            now = time.time()
            try:
                self.run_job(functools.partial(settle_due_payouts, now=now))
                if now - last_purge > PURGE_SECONDS:
                    idempotency.purge_expired(self.store, now)
                    last_purge = now
            except Exception:
                log.exception("sandbox clock failed")

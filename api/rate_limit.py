"""Per-client rate limits of ticket issuing and ticket verification.

Each limited route has a token bucket per client: it holds at most ``per_minute`` requests and
refills at ``per_minute / 60`` a second, so a client may burst up to its minute's allowance and
then goes at the steady rate. A request that finds its bucket empty is answered 429 in the
error envelope (``rate_limit_error`` / ``rate_limited``) with ``Retry-After``, the whole seconds
until a request would pass, and nothing else runs: no database, no idempotency key stored (a
retry with the same ``Idempotency-Key`` after the wait goes through).

The client is the bearer token's subject (``role:sub``) when the token verifies, else the
connection's address (``ip:...``): requests with a bad or missing token from one address share
one bucket. Limits are per route group, not shared: issuing does not use up verifying.

The buckets live in the API process: with N replicas behind a load balancer a client gets up
to N times the limit. Buckets that have refilled are forgotten, so memory follows the clients
active in the last minute.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from domain.errors import AuthenticationError, RateLimited
from domain.tokens import verify
from settings import Settings

Clock = Callable[[], float]
_EPSILON = 1e-9

TICKET_ISSUE = "ticket_issue"
TICKET_VERIFY = "ticket_verify"

#: The limited routes, (method, path) -> the limit they count against.
LIMITED_ROUTES: Mapping[tuple[str, str], str] = {
    ("POST", "/api/v1/tickets"): TICKET_ISSUE,
    ("POST", "/api/v1/tickets/verify"): TICKET_VERIFY,
    ("POST", "/api/v1/tickets/scans"): TICKET_VERIFY,
}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per client key, ``per_minute`` deep, refilled continuously."""

    def __init__(self, per_minute: int, *, clock: Clock = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit needs at least one request a minute")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._prune_at = 1024

    def take(self, key: str) -> float:
        """Spend one request of ``key``: 0.0 if it may go, else the seconds until it may."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        # Within a rounding error of a whole token is a whole token.
        if bucket.tokens >= 1.0 - _EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again: they say nothing a new bucket would not."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.capacity
        ]
        for key in full:
            del self._buckets[key]
        self._prune_at = max(1024, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)


def limits_from(settings: Settings, *, clock: Clock = time.monotonic) -> dict[str, TokenBuckets]:
    """The buckets of each limit the settings turn on (0 turns a limit off)."""
    per_minute = {
        TICKET_ISSUE: settings.rate_limit_ticket_issue_per_minute,
        TICKET_VERIFY: settings.rate_limit_ticket_verify_per_minute,
    }
    return {name: TokenBuckets(n, clock=clock) for name, n in per_minute.items() if n > 0}


def client_key(scope: Scope, settings: Settings) -> str:
    """``role:sub`` of a bearer token that verifies, else ``ip:<address>``."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            actor = verify(token.strip(), secret=settings.jwt_secret, issuer=settings.jwt_issuer)
        except AuthenticationError:
            pass
        else:
            return f"{actor.role.value}:{actor.id}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` to a client past its limit on a limited route. It sits
    outside the idempotency middleware, so a refused request stores no Idempotency-Key."""

    def __init__(self, app: ASGIApp, *, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits_from(settings, clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limits:
            # The exact path: another spelling (a trailing slash) is only redirected to it.
            name = LIMITED_ROUTES.get((scope["method"], scope["path"]))
            buckets = self.limits.get(name) if name is not None else None
            if buckets is not None:
                wait = buckets.take(client_key(scope, self.settings))
                if wait > 0:
                    retry_after = max(1, math.ceil(wait - _EPSILON))
                    refused = RateLimited(
                        f"Too many requests: retry in {retry_after} s", retry_after=retry_after
                    )
                    await error_response(refused)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

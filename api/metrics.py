"""Prometheus metrics of the API: request counts and latencies per route and status, and the
business figures read from the database (``services.metrics``); names in the README."""

import asyncio
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.metrics import BusinessSnapshot, read_only, snapshot

log = logging.getLogger(__name__)

REQUESTS = Counter("tollgate_http_requests_total", "API requests", ["method", "route", "status"])
LATENCY = Histogram(
    "tollgate_http_request_duration_seconds", "API request latency", ["method", "route"]
)

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body = generate_latest()
    business: BusinessMetrics | None = getattr(request.app.state, "business_metrics", None)
    if business is not None:
        await business.refresh()
        body += generate_latest(business.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class BusinessMetrics:
    """The business figures as Prometheus metrics, from a snapshot of the database taken at
    most every ``max_age`` seconds (scrapes in between, and concurrent ones, share it). A
    scrape never fails: when the database does not answer within ``timeout``, the figures are
    left out and ``tollgate_business_metrics_up`` is 0."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_age: float = 15.0,
        timeout: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.max_age = max_age
        self.timeout = timeout
        self.snapshot: BusinessSnapshot | None = None
        self.up = False
        self.read_seconds = 0.0
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        # Its own registry: an app's figures come from its own database.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def _fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self.max_age

    async def refresh(self) -> None:
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    async with self.sessionmaker() as session, session.begin():
                        await read_only(session, self.timeout)
                        self.snapshot = await snapshot(session)
                self.up = True
            except Exception as exc:  # a scrape must not fail: the gauge says it
                if self.up or self._read_at is None:
                    log.warning("business metrics unavailable: %s", exc or type(exc).__name__)
                self.up = False
                self.snapshot = None
            finally:
                self.read_seconds = time.perf_counter() - started
                self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tollgate_business_metrics_up",
            "1 if the last read of the business figures from the database succeeded",
            value=1 if self.up else 0,
        )
        yield GaugeMetricFamily(
            "tollgate_business_metrics_read_seconds",
            "How long the last read of the business figures took",
            value=self.read_seconds,
        )
        if self.snapshot is not None:
            yield from business_families(self.snapshot)


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily, values: dict[str, int]
) -> GaugeMetricFamily | CounterMetricFamily:
    for label, value in values.items():
        family.add_metric([label], value)
    return family


def business_families(s: BusinessSnapshot) -> Iterator[Metric]:
    yield _labelled(
        GaugeMetricFamily(
            "tollgate_payout_schedules", "Payout schedules by status", labels=["status"]
        ),
        s.payout_schedules,
    )
    yield CounterMetricFamily(
        "tollgate_payouts_completed",
        "Payouts completed (a Stripe transfer made and recorded)",
        value=s.payouts_completed,
    )
    yield _labelled(
        CounterMetricFamily(
            "tollgate_payouts_completed_amount",
            "Money paid out by completed payouts, in minor units",
            labels=["currency"],
        ),
        s.payouts_completed_amount,
    )
    lateness = s.escrow_release_lateness
    yield HistogramMetricFamily(
        "tollgate_escrow_release_lateness_seconds",
        "Seconds from an escrow hold's release date to its release (holds released in full)",
        buckets=[(floatToGoString(bound), count) for bound, count in lateness.buckets],
        sum_value=lateness.sum,
    )
    yield GaugeMetricFamily(
        "tollgate_escrow_holds_overdue",
        "Holds past their release date, releasable (no dispute, approvals given), still held",
        value=s.escrow_holds_overdue,
    )
    yield GaugeMetricFamily(
        "tollgate_escrow_overdue_max_seconds",
        "How long the most overdue releasable hold is past its release date",
        value=s.escrow_overdue_max_seconds,
    )
    dunning = CounterMetricFamily(
        "tollgate_dunning_attempts",
        "Finished charge attempts of subscription invoices: first attempt or retry, outcome",
        labels=["attempt", "outcome"],
    )
    for (attempt, outcome), count in s.dunning_attempts.items():
        dunning.add_metric([attempt, outcome], count)
    yield dunning
    yield GaugeMetricFamily(
        "tollgate_dunning_attempts_pending",
        "Charge attempts of invoices under way",
        value=s.dunning_attempts_pending,
    )
    yield _labelled(
        GaugeMetricFamily("tollgate_subscriptions", "Subscriptions by status", labels=["status"]),
        s.subscriptions,
    )
    yield _labelled(
        GaugeMetricFamily(
            "tollgate_anchoring_backlog_tickets",
            "Tickets not anchored yet: without a batch, or in a batch pending, submitted, failed",
            labels=["stage"],
        ),
        s.anchoring_backlog,
    )
    yield GaugeMetricFamily(
        "tollgate_anchoring_backlog_oldest_seconds",
        "Age of the oldest ticket waiting for an anchor batch",
        value=s.anchoring_backlog_oldest_seconds,
    )
    yield _labelled(
        GaugeMetricFamily("tollgate_anchor_batches", "Anchor batches by status", labels=["status"]),
        s.anchor_batches,
    )
    yield _labelled(
        GaugeMetricFamily(
            "tollgate_webhook_deliveries",
            "Outbound webhook deliveries kept in the log, by status",
            labels=["status"],
        ),
        s.webhook_deliveries,
    )


def route_template(scope: Scope) -> str | None:
    """The matched route's path template with its router's prefix (``/api/v1/...``), or None
    when no route matched."""
    effective = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(effective, "path", None)
    if isinstance(path, str):
        return path
    route_path = getattr(scope.get("route"), "path", None)
    return route_path if isinstance(route_path, str) else None


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The route template, not the raw path, keeps label cardinality bounded.
            route = route_template(scope) or "unmatched"
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)

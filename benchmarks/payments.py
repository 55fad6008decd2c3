"""Payment figures, measured in one run on a fresh embedded stack (`tollgate dev`), all through
the HTTP API as a marketplace would drive it:

``TOLLGATE_BENCH_PAYMENTS`` (500) payments of a Visa test card (``pm_card_visa``), four per
customer, each allocated to one of a few vendors, created ``CONCURRENCY`` at a time
(``POST /api/v1/payments`` with an ``Idempotency-Key``); each one's workflow checks fraud and
authorizes at the Stripe sandbox (manual capture). Once all are authorized, each is captured
(``POST /api/v1/payments/{id}/capture``) and its workflow completes it.

- created and authorized per second: payments over first POST -> last ``authorized_at``;
- captured per second: payments over first capture POST -> last ``completed_at``;
- end to end per second: payments over first POST -> last ``completed_at``;
- create -> authorized latency p50/p99: ``payments.authorized_at - payments.created_at`` (the
  API transaction's start to the moment the workflow saw Stripe's authorization);
- fraud-check latency p50/p99, from each payment's workflow history: the payment row's
  ``created_at`` to the completion of its ``payment_check_fraud`` activity (the risk decision
  recorded), and the activity alone (scheduled -> completed);
- correctness: payments completed, failed, left elsewhere, and Stripe charges captured more
  than once (sandbox capture movements per payment intent: goal 0).

Every Visa test card has the same Stripe fingerprint, so with the default rules every payment
after the third on the whole stack would count as the same card used again and wait for a
review; the stack runs with ``card_velocity_limit`` raised past the run (the other rules as
configured by default: four payments per customer stay under the customer velocity limit).
Stripe calls are rate-limited by Temporal (``TOLLGATE_STRIPE_REQUESTS_PER_SECOND``, shared by
authorizations and captures), which bounds both rates.
"""

import asyncio
import json
import math
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from devstack.ephemeral import ephemeral_stack
from domain.actors import Role
from domain.payments import PaymentStatus
from integrations.temporal import connect
from models.engine import make_engine, make_sessionmaker
from models.payments import Payment
from settings import Settings

PAYMENTS = int(os.environ.get("TOLLGATE_BENCH_PAYMENTS", "500"))
PER_CUSTOMER = 4  # under the default customer velocity limit (5 others in an hour)
VENDORS = 10
CONCURRENCY = 32  # API requests in flight at once
HISTORY_LANES = 16  # workflow histories fetched at once
STALL_SECONDS = 60.0  # give up waiting when nothing moved for this long
FRAUD_ACTIVITY = "payment_check_fraud"
IN_FLIGHT_BEFORE_CAPTURE = frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZING})
IN_FLIGHT_CAPTURE = frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING})


def percentile(ordered: Sequence[float], share: float) -> float:
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def p50_p99_ms(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    if not ordered:
        return math.nan, math.nan
    return statistics.median(ordered) * 1000, percentile(ordered, 0.99) * 1000


def spread(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    p50, p99 = p50_p99_ms(values)
    return f"p50 {p50:,.0f} ms, p99 {p99:,.0f} ms"


def latency_figures(name: str, values: Sequence[float]) -> tuple[Figure, Figure]:
    p50, p99 = p50_p99_ms(values)
    return Figure(f"{name} p50", p50, "ms"), Figure(f"{name} p99", p99, "ms")


def shown(counts: Counter[PaymentStatus]) -> str:
    return ", ".join(f"{status.value} {count:,}" for status, count in sorted(counts.items()))


async def lanes(count: int, one: Callable[[int], Awaitable[None]], concurrency: int) -> None:
    """``one(i)`` for i in range(count), ``concurrency`` at a time."""
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await one(index)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def call(
    http: aiohttp.ClientSession, path: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    async with http.post(
        path, json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
    ) as response:
        answer: dict[str, Any] = await response.json()
        if response.status >= 400:
            raise RuntimeError(f"POST {path} -> {response.status}: {answer}")
        return answer


async def statuses(
    sessions: async_sessionmaker[AsyncSession], prefix: str
) -> Counter[PaymentStatus]:
    async with sessions() as session:
        rows = await session.execute(
            select(Payment.status, func.count())
            .where(Payment.customer_id.like(f"{prefix}%"))
            .group_by(Payment.status)
        )
        return Counter({PaymentStatus(status): count for status, count in rows})


async def wait_while(
    sessions: async_sessionmaker[AsyncSession], prefix: str, moving: frozenset[PaymentStatus]
) -> Counter[PaymentStatus]:
    """Until no payment is in a ``moving`` status, or none moved for ``STALL_SECONDS``."""
    last: Counter[PaymentStatus] | None = None
    last_change = time.monotonic()
    while True:
        counts = await statuses(sessions, prefix)
        if counts != last:
            last, last_change = counts, time.monotonic()
        if not any(counts[status] for status in moving):
            return counts
        if time.monotonic() - last_change > STALL_SECONDS:
            print(f"payments: stalled for {STALL_SECONDS:.0f} s at {dict(counts)}", flush=True)
            return counts
        await asyncio.sleep(0.25)


async def fraud_latencies(
    temporal: Client, created: dict[uuid.UUID, datetime]
) -> tuple[list[float], list[float]]:
    """Per payment, from its workflow history: row created -> fraud-check activity completed,
    and the activity's own scheduled -> completed."""
    to_decision: list[float] = []
    activity_only: list[float] = []
    ids = list(created)

    async def one(index: int) -> None:
        payment_id = ids[index]
        history = await temporal.get_workflow_handle(f"payment-{payment_id}").fetch_history()
        scheduled: dict[int, datetime] = {}
        for event in history.events:
            when = event.event_time.ToDatetime(tzinfo=UTC)
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == FRAUD_ACTIVITY:
                    scheduled[event.event_id] = when
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                began = scheduled.get(
                    event.activity_task_completed_event_attributes.scheduled_event_id
                )
                if began is not None:
                    to_decision.append((when - created[payment_id]).total_seconds())
                    activity_only.append((when - began).total_seconds())
                    return

    await lanes(len(ids), one, HISTORY_LANES)
    return to_decision, activity_only


async def double_captures(settings: Settings, intents: set[str]) -> tuple[int, int]:
    """Capture movements at the sandbox for these intents, and intents captured twice or more."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{settings.stripe_api_base}/_sandbox/movements", params={"kind": "capture"}
        ) as response,
    ):
        response.raise_for_status()
        rows = (await response.json())["data"]
    per_intent = Counter(
        row["related"].get("payment_intent")
        for row in rows
        if row["related"].get("payment_intent") in intents
    )
    return sum(per_intent.values()), sum(1 for count in per_intent.values() if count > 1)


async def measure(settings: Settings) -> None:
    api = f"http://127.0.0.1:{settings.api_port}"
    admin = bearer(settings, Role.BILLING_ADMIN, "bench-payments")
    temporal = await connect(settings.temporal_address, settings.temporal_namespace)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-{run}-customer-"
    customers = math.ceil(PAYMENTS / PER_CUSTOMER)
    methods: dict[int, str] = {}
    payment_ids: list[uuid.UUID] = []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(api, connector=connector, timeout=timeout) as http:

            async def add_card(index: int) -> None:
                method = await call(
                    http,
                    "/api/v1/payment-methods",
                    {
                        "customer_id": f"{prefix}{index}",
                        "token": "pm_card_visa",
                        "set_default": True,
                    },
                    admin,
                )
                methods[index] = method["id"]

            started = time.perf_counter()
            await lanes(customers, add_card, CONCURRENCY)
            seconds = time.perf_counter() - started
            print(
                f"payments: {customers:,} customers with a Visa test card added in {seconds:.1f} s"
                f" ({customers / seconds:,.0f} per second)",
                flush=True,
            )

            async def create(index: int) -> None:
                customer = index % customers
                amount = 1_000 + index % 5_000
                payment = await call(
                    http,
                    "/api/v1/payments",
                    {
                        "customer_id": f"{prefix}{customer}",
                        "payment_method_id": methods[customer],
                        "amount": amount,
                        "currency": "USD",
                        "order_id": f"bench-{run}-order-{index}",
                        "allocations": [
                            {"vendor_id": f"bench-{run}-vendor-{index % VENDORS}", "amount": amount}
                        ],
                    },
                    admin,
                )
                payment_ids.append(uuid.UUID(payment["id"]))

            first_post = datetime.now(UTC)
            await lanes(PAYMENTS, create, CONCURRENCY)
            posted = (datetime.now(UTC) - first_post).total_seconds()
            emit(
                f"payments: {PAYMENTS:,} payments POSTed in {posted:.1f} s"
                f" ({PAYMENTS / posted:,.0f} per second), {CONCURRENCY} at a time",
                Figure("POSTed", PAYMENTS / posted, "/s", better="higher"),
            )
            before_capture = await wait_while(sessions, prefix, IN_FLIGHT_BEFORE_CAPTURE)

            async with sessions() as session:
                rows = (
                    await session.execute(
                        select(
                            Payment.id, Payment.status, Payment.created_at, Payment.authorized_at
                        ).where(Payment.customer_id.like(f"{prefix}%"))
                    )
                ).all()
            authorized_at = [row.authorized_at for row in rows if row.authorized_at is not None]
            to_capture = [row.id for row in rows if row.status == PaymentStatus.AUTHORIZED]
            authorize_latency = [
                (row.authorized_at - row.created_at).total_seconds()
                for row in rows
                if row.authorized_at is not None
            ]

            async def capture(index: int) -> None:
                await call(http, f"/api/v1/payments/{to_capture[index]}/capture", {}, admin)

            first_capture = datetime.now(UTC)
            await lanes(len(to_capture), capture, CONCURRENCY)
            after_capture = await wait_while(sessions, prefix, IN_FLIGHT_CAPTURE)

        async with sessions() as session:
            done = (
                await session.execute(
                    select(
                        Payment.id,
                        Payment.created_at,
                        Payment.completed_at,
                        Payment.stripe_payment_intent_id,
                        Payment.risk_level,
                    ).where(Payment.customer_id.like(f"{prefix}%"))
                )
            ).all()
        created = {row.id: row.created_at for row in done}
        completed_at = [row.completed_at for row in done if row.completed_at is not None]
        intents = {row.stripe_payment_intent_id for row in done if row.stripe_payment_intent_id}
        levels = Counter(row.risk_level for row in done)
        to_decision, activity_only = await fraud_latencies(temporal, created)
        captures, twice = await double_captures(settings, intents)

        print(
            f"payments: before capture: {shown(before_capture)};"
            f" risk levels: {', '.join(f'{k} {v:,}' for k, v in sorted(levels.items(), key=str))}"
        )
        if authorized_at:
            window = (max(authorized_at) - first_post).total_seconds()
            emit(
                f"payments: created and authorized through the API: {len(authorized_at):,} in"
                f" {window:.1f} s, {len(authorized_at) / window:,.1f} per second"
                f" (first POST -> last authorized)",
                Figure(
                    "created and authorized", len(authorized_at) / window, "/s", better="higher"
                ),
            )
            emit(
                f"payments: create -> authorized latency {spread(authorize_latency)}",
                *latency_figures("create -> authorized", authorize_latency),
            )
        if completed_at:
            capture_window = (max(completed_at) - first_capture).total_seconds()
            whole = (max(completed_at) - first_post).total_seconds()
            emit(
                f"payments: captured through the API: {len(completed_at):,} in"
                f" {capture_window:.1f} s, {len(completed_at) / capture_window:,.1f} per second"
                f" (first capture POST -> last completed)",
                Figure("captured", len(completed_at) / capture_window, "/s", better="higher"),
            )
            emit(
                f"payments: end to end (create, authorize, capture, complete):"
                f" {len(completed_at) / whole:,.1f} per second over {whole:.1f} s",
                Figure("end to end", len(completed_at) / whole, "/s", better="higher"),
            )
        emit(
            f"payments: fraud-check latency, payment created -> risk decision recorded:"
            f" {spread(to_decision)}; the check activity alone (scheduled -> completed):"
            f" {spread(activity_only)} ({len(to_decision):,} checks)",
            *latency_figures("created -> risk decision", to_decision),
        )
        print(
            f"payments: fraud rules as configured but card_velocity_limit {PAYMENTS + 1:,}"
            f" (every Visa test card has one fingerprint)"
        )
        print(
            f"payments: Stripe rate limit {settings.stripe_requests_per_second:g} activities"
            f" per second, shared by authorizations and captures"
        )
        failed = after_capture[PaymentStatus.FAILED]
        other = len(done) - after_capture[PaymentStatus.COMPLETED] - failed
        emit(
            f"payments: {after_capture[PaymentStatus.COMPLETED]:,} of {len(done):,} completed,"
            f" {failed} failed, {other} elsewhere ({shown(after_capture)})",
            Figure("not completed (failed or elsewhere)", failed + other, "payments"),
        )
        emit(
            f"payments: Stripe captures {captures:,}; charges captured twice: {twice} (goal 0)",
            Figure("charges captured twice", twice, "charges", goal=0),
        )
    finally:
        await engine.dispose()


@contextmanager
def fraud_rules_for_the_run() -> Iterator[None]:
    """The stack's child processes take ``TOLLGATE_FRAUD_RULES`` from this environment; it is
    put back as it was afterwards, for the benchmarks that follow."""
    rules = json.loads(os.environ.get("TOLLGATE_FRAUD_RULES") or "{}")
    previous = os.environ.get("TOLLGATE_FRAUD_RULES")
    os.environ["TOLLGATE_FRAUD_RULES"] = json.dumps({**rules, "card_velocity_limit": PAYMENTS + 1})
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TOLLGATE_FRAUD_RULES"]
        else:
            os.environ["TOLLGATE_FRAUD_RULES"] = previous


def main() -> None:
    with (
        fraud_rules_for_the_run(),
        tempfile.TemporaryDirectory() as scratch,
        ephemeral_stack(Path(scratch)) as stack,
    ):
        asyncio.run(measure(stack.settings))


if __name__ == "__main__":
    main()

"""Subscription billing figures, measured in one run on a fresh embedded stack (`tollgate dev`),
all through the HTTP API as a marketplace would drive it:

``TOLLGATE_BENCH_SUBSCRIPTIONS`` (5,000) customers, each with its own Visa test card
(``POST /api/v1/payment-methods``, ``pm_card_visa``, made the default), are subscribed to one
monthly plan with no trial (``POST /api/v1/subscriptions``), ``CONCURRENCY`` requests at a
time. Each subscription's workflow (``subscription-{id}``) starts once the row is committed,
creates and finalizes its first period's invoice and charges it at the Stripe sandbox on the
rate-limited Stripe task queue (key ``invoice-{id}-attempt-1``). Setting up the cards is not
timed (its rate is printed on its own line), and the Stripe webhooks it causes (a customer
created, a card attached) are all handled before the timed part starts.

- billed per second: first-period invoices paid over first subscription POST -> last
  ``invoices.paid_at``, the whole path (API, workflow start, invoice created and finalized,
  Stripe charge, invoice paid);
- create -> paid latency p50/p99: ``invoices.paid_at - subscriptions.created_at`` (the API
  transaction's start to the workflow's clock when it recorded the charge's success), split
  at ``invoices.finalized_at`` (before: the workflow started and the invoice made; after:
  the charge);
- double-billed periods (goal 0), counted three ways: (subscription, period) pairs with more
  than one cycle invoice in the database; invoices with more than one succeeded charge
  attempt; and invoices with more than one ``charge`` movement at the Stripe sandbox (its
  record of every money movement, matched by the key prefix ``invoice-{id}-``).

Stripe calls are rate-limited by Temporal (``TOLLGATE_STRIPE_REQUESTS_PER_SECOND``, 25 by
default, Stripe's test-mode limit): an upper bound on the billing rate. On a small machine
the CPU bounds it first: besides its own workflow, each charge makes the sandbox send three
webhooks (``payment_intent.created``, ``charge.succeeded``, ``payment_intent.succeeded``),
each stored by the API and handled by its own ``StripeEventDelivery`` workflow. Only counts
and three timestamps per invoice are held in memory.
"""

import asyncio
import os
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from benchmarks.payments import call, lanes, latency_figures, spread
from devstack.ephemeral import ephemeral_stack
from domain.actors import Role
from models.engine import make_engine, make_sessionmaker
from models.payments import StripeEvent
from models.subscriptions import Invoice, InvoicePaymentAttempt, Subscription
from settings import Settings

SUBSCRIPTIONS = int(os.environ.get("TOLLGATE_BENCH_SUBSCRIPTIONS", "5000"))
CONCURRENCY = 32  # API requests in flight at once
PLAN_AMOUNT = 1_900  # minor units a month
STALL_SECONDS = 90.0  # give up waiting when nothing moved for this long
PROGRESS_SECONDS = 30.0  # a progress line this often while waiting
QUIET_POLLS = 3  # polls a second apart with no new webhook and none unhandled
KEY_PREFIX = "invoice-"
KEY_ATTEMPT = "-attempt-"


def shown(counts: Counter[str]) -> str:
    return ", ".join(f"{status} {count:,}" for status, count in sorted(counts.items())) or "none"


async def invoice_statuses(sessions: async_sessionmaker[AsyncSession], prefix: str) -> Counter[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(Invoice.status, func.count())
            .where(Invoice.customer_id.like(f"{prefix}%"), Invoice.kind == "cycle")
            .group_by(Invoice.status)
        )
        return Counter({status: count for status, count in rows})


async def wait_paid(sessions: async_sessionmaker[AsyncSession], prefix: str) -> Counter[str]:
    """Until every subscription's first invoice is paid, or none moved for ``STALL_SECONDS``."""
    last: Counter[str] | None = None
    last_change = last_shown = time.monotonic()
    while True:
        counts = await invoice_statuses(sessions, prefix)
        now = time.monotonic()
        if counts != last:
            last, last_change = counts, now
        if counts["paid"] >= SUBSCRIPTIONS:
            return counts
        if now - last_change > STALL_SECONDS:
            print(
                f"subscriptions: stalled for {STALL_SECONDS:.0f} s at {shown(counts)}", flush=True
            )
            return counts
        if now - last_shown > PROGRESS_SECONDS:
            print(f"subscriptions: invoices so far: {shown(counts)}", flush=True)
            last_shown = now
        await asyncio.sleep(0.5)


async def drain_events(sessions: async_sessionmaker[AsyncSession]) -> float:
    """Until the Stripe webhooks sent so far (the customers and cards just made) are all
    handled, so their work is not counted in the timed run, or until none was handled for
    ``STALL_SECONDS``; the seconds it took."""
    started = last_change = time.monotonic()
    last: tuple[int, int] | None = None
    steady = 0
    while steady < QUIET_POLLS:
        async with sessions() as session:
            total = await session.scalar(select(func.count()).select_from(StripeEvent)) or 0
            waiting = (
                await session.scalar(
                    select(func.count())
                    .select_from(StripeEvent)
                    .where(StripeEvent.status == "received")
                )
                or 0
            )
        now = time.monotonic()
        steady = steady + 1 if (total, waiting) == last and not waiting else 0
        if (total, waiting) != last:
            last, last_change = (total, waiting), now
        if now - last_change > STALL_SECONDS:
            print(
                f"subscriptions: {waiting:,} Stripe webhooks still unhandled after"
                f" {STALL_SECONDS:.0f} s without progress",
                flush=True,
            )
            break
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def sandbox_charges(settings: Settings, invoice_ids: set[uuid.UUID]) -> tuple[int, int]:
    """Charge movements at the sandbox of these invoices, and invoices charged twice or more."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{settings.stripe_api_base}/_sandbox/movements", params={"kind": "charge"}
        ) as response,
    ):
        response.raise_for_status()
        rows = (await response.json())["data"]
    per_invoice: Counter[uuid.UUID] = Counter()
    for row in rows:
        key = row.get("idempotency_key") or ""
        if not key.startswith(KEY_PREFIX) or KEY_ATTEMPT not in key:
            continue
        try:
            invoice_id = uuid.UUID(key.removeprefix(KEY_PREFIX).split(KEY_ATTEMPT)[0])
        except ValueError:
            continue
        if invoice_id in invoice_ids:
            per_invoice[invoice_id] += 1
    del rows
    return sum(per_invoice.values()), sum(1 for count in per_invoice.values() if count > 1)


async def figures(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    first_post: datetime,
    final: Counter[str],
) -> None:
    ours = Invoice.customer_id.like(f"{prefix}%")
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Invoice.id, Invoice.finalized_at, Invoice.paid_at, Subscription.created_at)
                .join(Subscription, Subscription.id == Invoice.subscription_id)
                .where(ours, Invoice.kind == "cycle")
            )
        ).all()
        subscription_statuses = Counter(
            {
                status: count
                for status, count in await session.execute(
                    select(Subscription.status, func.count())
                    .where(Subscription.customer_id.like(f"{prefix}%"))
                    .group_by(Subscription.status)
                )
            }
        )
        periods_twice = await session.scalar(
            select(func.count()).select_from(
                select(Invoice.subscription_id, Invoice.period_start)
                .where(ours, Invoice.kind == "cycle")
                .group_by(Invoice.subscription_id, Invoice.period_start)
                .having(func.count() > 1)
                .subquery()
            )
        )
        attempts = Counter(
            {
                status: count
                for status, count in await session.execute(
                    select(InvoicePaymentAttempt.status, func.count())
                    .join(Invoice, Invoice.id == InvoicePaymentAttempt.invoice_id)
                    .where(ours)
                    .group_by(InvoicePaymentAttempt.status)
                )
            }
        )
        succeeded_twice = await session.scalar(
            select(func.count()).select_from(
                select(InvoicePaymentAttempt.invoice_id)
                .join(Invoice, Invoice.id == InvoicePaymentAttempt.invoice_id)
                .where(ours, InvoicePaymentAttempt.status == "succeeded")
                .group_by(InvoicePaymentAttempt.invoice_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
    invoice_ids = {row.id for row in rows}
    paid_at = [row.paid_at for row in rows if row.paid_at is not None]
    latency = [(row.paid_at - row.created_at).total_seconds() for row in rows if row.paid_at]
    to_invoice = [
        (row.finalized_at - row.created_at).total_seconds() for row in rows if row.finalized_at
    ]
    to_charge = [
        (row.paid_at - row.finalized_at).total_seconds()
        for row in rows
        if row.paid_at and row.finalized_at
    ]
    del rows
    charges, charged_twice = await sandbox_charges(settings, invoice_ids)

    if paid_at:
        window = (max(paid_at) - first_post).total_seconds()
        emit(
            f"subscriptions: first-period invoices billed and paid: {len(paid_at):,} in"
            f" {window:.1f} s, {len(paid_at) / window:,.1f} per second"
            f" (first subscription POST -> last invoice paid)",
            Figure("first-period invoices paid", len(paid_at) / window, "/s", better="higher"),
        )
        emit(
            f"subscriptions: create -> paid latency {spread(latency)}; of which create ->"
            f" invoice finalized {spread(to_invoice)}, finalized -> paid (the charge)"
            f" {spread(to_charge)}",
            *latency_figures("create -> paid", latency),
        )
    print(
        f"subscriptions: Stripe rate limit {settings.stripe_requests_per_second:g} activities"
        f" per second (one charge per invoice)"
    )
    emit(
        f"subscriptions: {final['paid']:,} of {SUBSCRIPTIONS:,} first invoices paid"
        f" (invoices: {shown(final)}); subscriptions: {shown(subscription_statuses)};"
        f" charge attempts: {shown(attempts)}; Stripe charge movements {charges:,}",
        Figure("first invoices not paid", SUBSCRIPTIONS - final["paid"], "invoices"),
    )
    twice = (periods_twice or 0) + (succeeded_twice or 0) + charged_twice
    emit(
        f"subscriptions: double-billed periods: {twice} (goal 0):"
        f" {periods_twice or 0} periods with two invoices, {succeeded_twice or 0} invoices"
        f" with two succeeded attempts, {charged_twice} invoices charged twice at Stripe",
        Figure("double-billed periods", twice, "periods", goal=0),
    )


async def measure(settings: Settings) -> None:
    api = f"http://127.0.0.1:{settings.api_port}"
    admin = bearer(settings, Role.BILLING_ADMIN, "bench-subscriptions")
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-{run}-customer-"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(api, connector=connector, timeout=timeout) as http:
            plan = await call(
                http,
                "/api/v1/plans",
                {
                    "name": f"bench {run} monthly",
                    "amount": PLAN_AMOUNT,
                    "currency": "USD",
                    "interval": "month",
                },
                admin,
            )

            async def add_card(index: int) -> None:
                await call(
                    http,
                    "/api/v1/payment-methods",
                    {
                        "customer_id": f"{prefix}{index}",
                        "token": "pm_card_visa",
                        "set_default": True,
                    },
                    admin,
                )

            started = time.perf_counter()
            await lanes(SUBSCRIPTIONS, add_card, CONCURRENCY)
            seconds = time.perf_counter() - started
            print(
                f"subscriptions: {SUBSCRIPTIONS:,} customers with a Visa test card added in"
                f" {seconds:.1f} s ({SUBSCRIPTIONS / seconds:,.0f} per second; not timed below)",
                flush=True,
            )

            drained = await drain_events(sessions)
            print(
                f"subscriptions: their Stripe webhooks handled {drained:.0f} s later",
                flush=True,
            )

            async def subscribe(index: int) -> None:
                await call(
                    http,
                    "/api/v1/subscriptions",
                    {"customer_id": f"{prefix}{index}", "plan_id": plan["id"]},
                    admin,
                )

            first_post = datetime.now(UTC)
            await lanes(SUBSCRIPTIONS, subscribe, CONCURRENCY)
            posted = (datetime.now(UTC) - first_post).total_seconds()
            print(
                f"subscriptions: {SUBSCRIPTIONS:,} subscriptions POSTed in {posted:.1f} s"
                f" ({SUBSCRIPTIONS / posted:,.0f} per second), {CONCURRENCY} at a time",
                flush=True,
            )
        final = await wait_paid(sessions, prefix)
        await figures(settings, sessions, prefix, first_post, final)
    finally:
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, ephemeral_stack(Path(scratch)) as stack:
        asyncio.run(measure(stack.settings))


if __name__ == "__main__":
    main()

"""A month of subscription billing and dunning with the worker SIGKILLed at random moments.

Dunning waits days (retries 1, 3, 5 and 7 days after the first failure, whole days by
design), so real time cannot run it: this test runs the real worker process (``tollgate
worker``, as the stack runs it) against Temporal's time-skipping test server instead of the
dev server, with the fault stack's PostgreSQL and Stripe sandbox. The workflows, activities,
database and Stripe calls are the production ones; only the clock is Temporal's test clock,
moved a day at a time (``WorkflowEnvironment.sleep``). The server holds that clock while a
workflow task or an activity is outstanding, so a killed worker's work is retried in real
time (its heartbeat and start-to-close timeouts) before the next day comes. The worker runs
without a workflow cache, hence without a sticky task queue: the test server never moves a
workflow task off a dead worker's sticky queue, as the dev server does after 5 s.

Each kill falls on a day with charges (a dunning retry, or the second month's first charge),
at a random moment while one of them is under way.

Each subscription's card declines its first ``k`` charges (the sandbox's scripted declines),
``k`` from 0 to 5: with 0 to 4 the invoice is paid at attempt ``k + 1`` (the first charge or
a dunning retry); with 5 every attempt fails and the subscription ends ``unpaid``. Over a
month (the full size) each paying subscription is billed its second period too.
"""

import asyncio
import dataclasses
import random
import signal
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.testing import WorkflowEnvironment

from devstack.binaries import find
from devstack.net import free_port, port_open
from devstack.supervisor import Part
from domain.actors import SYSTEM, Role
from domain.money import Money
from domain.subscriptions import Interval
from domain.tokens import mint
from integrations.temporal import data_converter
from models.payments import PaymentMethod
from models.subscriptions import Plan
from services import plans, subscriptions
from services.invoices import receivable_account
from tests.faults.audit import MovementAudit, ledger_postings, report, sandbox_movements
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.fixtures.waiting import until
from workflows.subscriptions import SubscriptionWorkflow
from workflows.types import SubscriptionInput

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PRICE = 2_900
RETRY_DAYS = [1, 3, 5, 7]
WORKER = "dunning-worker"
# Declines before a charge goes through: 0-4 paid at attempt k + 1, 5 never paid.
DECLINES = [0, 1, 2, 3, 4, 5]


def customer_headers(stack: FaultStack, customer: str) -> dict[str, str]:
    token = mint(
        subject=customer,
        role=Role.CUSTOMER,
        secret=stack.settings.jwt_secret,
        issuer=stack.settings.jwt_issuer,
        ttl=timedelta(hours=2),
    )
    return {"Authorization": f"Bearer {token}"}


def worker_part(stack: FaultStack, address: str, queue: str, stripe_queue: str) -> Part:
    """The stack's worker command, on the time-skipping server and this test's queues."""
    metrics = free_port()
    base = stack.parts["worker"]
    return dataclasses.replace(
        base,
        name=WORKER,
        env={
            **base.env,
            "TOLLGATE_TEMPORAL_ADDRESS": address,
            "TOLLGATE_TASK_QUEUE": queue,
            "TOLLGATE_STRIPE_TASK_QUEUE": stripe_queue,
            "TOLLGATE_CHAIN_TASK_QUEUE": f"{queue}-chain",
            "TOLLGATE_WORKER_METRICS_PORT": str(metrics),
            # The Schedules are the dev server's business (the test server has none).
            "TOLLGATE_WORKER_SYNC_SCHEDULES": "false",
            # No workflow cache, so no sticky task queue: the test server never moves a
            # workflow task off a dead worker's sticky queue (the dev server does after 5 s),
            # so the restarted worker would never see it. Each task replays its history.
            "TOLLGATE_WORKER_MAX_CACHED_WORKFLOWS": "0",
        },
        ready=lambda: port_open(metrics),
        port=metrics,
    )


async def skip(env: WorkflowEnvironment, duration: timedelta) -> None:
    """``WorkflowEnvironment.sleep``, with room for a killed worker's work to time out and
    be retried first: the server holds its clock while a workflow task or an activity is
    outstanding, which the SDK's own call (30 s) does not wait for."""
    request = SleepRequest()
    request.duration.FromTimedelta(duration)
    await env.client.test_service.unlock_time_skipping_with_sleep(
        request, timeout=timedelta(minutes=10)
    )


async def restart(stack: FaultStack, rng: random.Random) -> None:
    stack.supervisor.stop_part(WORKER, signal.SIGKILL)
    await asyncio.sleep(rng.uniform(0, 2))
    await stack.supervisor.start(stack.parts[WORKER])
    await until(lambda: stack.worker_polling(WORKER), "the restarted worker", 60, every=0.2)


async def test_dunning_survives_worker_kills(
    stack: FaultStack, scale: Scale, rng: random.Random
) -> None:
    binary = find("temporal-test-server")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary,
        data_converter=data_converter(stack.settings.payload_codec()),
    )
    queue = f"dunning-{uuid.uuid4().hex[:8]}"
    part = worker_part(stack, env.client.service_client.config.target_host, queue, f"{queue}-s")
    try:
        await stack.add_part(part)
        await until(lambda: stack.worker_polling(WORKER), "the dunning worker", 60, every=0.2)
        await run_dunning(stack, env, scale, rng, queue)
    finally:
        if WORKER in stack.parts:
            stack.remove_part(WORKER)
        await env.shutdown()


async def run_dunning(
    stack: FaultStack, env: WorkflowEnvironment, scale: Scale, rng: random.Random, queue: str
) -> None:
    sessions = stack.sessions()
    tag = f"dun-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    now = await env.get_current_time()
    async with sessions() as session, session.begin():
        plan = await plans.create_plan(
            session,
            name=f"{tag} monthly",
            price=Money(PRICE, "USD"),
            interval=Interval.MONTH,
            interval_count=1,
            trial_days=0,
            actor=SYSTEM,
        )
    declines: dict[str, int] = {}
    customers: dict[str, str] = {}
    async with stack.api() as api, stack.sandbox() as sandbox:
        for i in range(scale.dunning_subscriptions):
            customer = f"{tag}-customer-{i}"
            added = await api.post(
                "/api/v1/payment-methods",
                json={"token": "pm_card_visa"},
                headers=customer_headers(stack, customer),
            )
            assert added.status_code == 201, added.text
            method = added.json()
            k = DECLINES[i % len(DECLINES)]
            scripted = await sandbox.post(
                f"/_sandbox/payment_methods/{method['stripe_payment_method_id']}/declines",
                json={"count": k},
            )
            assert scripted.status_code == 200, scripted.text
            subscription_id = await subscribe(stack, plan, customer, method["id"], now)
            declines[subscription_id] = k
            customers[subscription_id] = customer
            await env.client.start_workflow(
                SubscriptionWorkflow.run,
                SubscriptionInput(
                    subscription_id=uuid.UUID(subscription_id),
                    retry_days=RETRY_DAYS,
                    dunning_outcome="unpaid",
                    stripe_task_queue=f"{queue}-s",
                ),
                id=f"subscription-{subscription_id}",
                task_queue=queue,
            )

        # The kills fall on days with charges (the retries, the second period's first
        # charge), each at a random moment while one of them is under way.
        period_days = (await period_end(stack, next(iter(declines))) - now).days
        busy_days = [d - 1 for d in [*RETRY_DAYS, period_days] if d <= scale.dunning_days]
        kill_days = rng.sample(busy_days, min(scale.dunning_kills, len(busy_days)))
        moments = []
        for day in range(scale.dunning_days):
            skipping = asyncio.create_task(skip(env, timedelta(days=1)))
            if day in kill_days:
                charging = await charge_under_way(stack, list(declines), skipping)
                await asyncio.sleep(rng.uniform(0, 0.3))
                moments.append(
                    f"day {day + 1}{'' if charging else ' (no charge seen)'}"
                    f" ({time.monotonic() - started:.0f}s)"
                )
                await restart(stack, rng)
            await skipping
            await settled(stack, [uuid.UUID(s) for s in declines])
        try:
            await until(
                lambda: outcomes_reached(stack, declines, scale.dunning_days),
                "every subscription's outcome",
                60,
            )
        except AssertionError as late:
            raise AssertionError(f"{late}:\n{await states(stack, declines)}") from None

        figures_notes = (
            f"{len(declines)} subscriptions, {scale.dunning_days} days,"
            f" kills: {', '.join(moments)}; {time.monotonic() - started:.0f}s"
        )
        audit = MovementAudit(f"worker SIGKILL: {scale.dunning_days} days of billing and dunning")
        await audit_dunning(audit, stack, sandbox, declines, customers, scale.dunning_days)
    figures = audit.figures(figures_notes)
    report(figures)
    figures.check()
    await check_outcomes(stack, declines)


async def subscribe(
    stack: FaultStack, plan: Plan, customer: str, method_id: str, at: datetime
) -> str:
    """The row as the API stores it, at the test server's time (its clock runs the
    workflow); the workflow is started on the test server by the caller."""
    async with stack.sessions()() as session, session.begin():
        method = await session.get(PaymentMethod, uuid.UUID(method_id))
        assert method is not None
        row = await subscriptions.create_subscription(
            session, customer_id=customer, plan=plan, at=at, actor=SYSTEM, payment_method=method
        )
        return str(row.id)


async def period_end(stack: FaultStack, subscription_id: str) -> datetime:
    async with stack.sessions()() as session:
        end = await session.scalar(
            text("SELECT current_period_end FROM subscriptions WHERE id = :id"),
            {"id": uuid.UUID(subscription_id)},
        )
    assert isinstance(end, datetime)
    return end


async def pending_charges(stack: FaultStack, ids: list[uuid.UUID]) -> int:
    async with stack.sessions()() as session:
        busy = await session.scalar(
            text(
                "SELECT count(*) FROM invoice_payment_attempts a"
                " JOIN invoices i ON i.id = a.invoice_id"
                " WHERE i.subscription_id = ANY(:ids) AND a.status = 'pending'"
            ),
            {"ids": ids},
        )
    return int(busy or 0)


async def charge_under_way(
    stack: FaultStack, subscription_ids: list[str], skipping: "asyncio.Task[None]"
) -> bool:
    """Waits (5 s at most) until a charge attempt of the day is under way."""
    ids = [uuid.UUID(s) for s in subscription_ids]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if await pending_charges(stack, ids):
            return True
        await asyncio.sleep(0.02)
    return False


async def outcomes_reached(stack: FaultStack, declines: dict[str, int], days: int) -> bool:
    """Every subscription as its card allows: paid invoices for each period billed, or
    unpaid after the last retry."""
    async with stack.sessions()() as session:
        for subscription_id, k in declines.items():
            status = await session.scalar(
                text("SELECT status FROM subscriptions WHERE id = :id"),
                {"id": uuid.UUID(subscription_id)},
            )
            paid = await session.scalar(
                text(
                    "SELECT count(*) FROM invoices WHERE subscription_id = :id AND status = 'paid'"
                ),
                {"id": uuid.UUID(subscription_id)},
            )
            expected = expected_charges(k, days)
            if (status, paid) != ("active" if expected else "unpaid", len(expected)):
                return False
    return True


async def states(stack: FaultStack, declines: dict[str, int]) -> str:
    """Each subscription with its invoices and their attempts, to read a failure."""
    lines = []
    async with stack.sessions()() as session:
        for subscription_id, k in declines.items():
            status = await session.scalar(
                text("SELECT status FROM subscriptions WHERE id = :id"),
                {"id": uuid.UUID(subscription_id)},
            )
            rows = await session.execute(
                text(
                    "SELECT i.id, i.status, i.next_payment_attempt, a.number, a.status AS attempt,"
                    " a.created_at FROM invoices i"
                    " LEFT JOIN invoice_payment_attempts a ON a.invoice_id = i.id"
                    " WHERE i.subscription_id = :id ORDER BY i.period_start, a.number"
                ),
                {"id": uuid.UUID(subscription_id)},
            )
            lines.append(f"{subscription_id} declines {k}: {status}")
            lines += [f"    {tuple(row)}" for row in rows]
    return "\n".join(lines)


async def settled(stack: FaultStack, ids: list[uuid.UUID]) -> None:
    """Waits until no charge of these subscriptions is under way (the day's work is done)."""

    async def quiet() -> bool:
        return not await pending_charges(stack, ids)

    await until(quiet, "the charges under way", 120, every=0.2)


def expected_charges(k: int, days: int) -> list[int]:
    """The periods whose invoice is paid within ``days`` days: the first at attempt
    ``k + 1`` unless every attempt declines; the second a month on (attempt 1)."""
    if k > len(RETRY_DAYS):
        return []
    return [0, 1] if days >= 32 else [0]


async def audit_dunning(
    audit: MovementAudit,
    stack: FaultStack,
    sandbox: Any,
    declines: dict[str, int],
    customers: dict[str, str],
    days: int,
) -> None:
    """``charge:<subscription>:<period>``: the sandbox's charges under the invoice's attempt
    keys, and the payments posted to the customer's receivable."""
    for subscription_id, k in declines.items():
        for period in expected_charges(k, days):
            audit.expect(f"charge:{subscription_id}:{period}", PRICE, ("stripe", "ledger"))
    async with stack.sessions()() as session:
        rows = await session.execute(
            text(
                "SELECT i.id, i.subscription_id, s.period_index, i.period_start, s.customer_id"
                " FROM invoices i JOIN subscriptions s ON s.id = i.subscription_id"
                " WHERE i.subscription_id = ANY(:ids) ORDER BY i.period_start"
            ),
            {"ids": [uuid.UUID(s) for s in declines]},
        )
        invoices = list(rows)
    period_of: dict[str, str] = {}
    seen: dict[str, int] = {}
    for invoice in invoices:
        subscription = str(invoice.subscription_id)
        period = seen.get(subscription, 0)
        seen[subscription] = period + 1
        period_of[str(invoice.id)] = f"charge:{subscription}:{period}"
    for row in await sandbox_movements(sandbox, "charge"):
        key = row["idempotency_key"] or ""
        invoice_id = key.removeprefix("invoice-").split("-attempt-")[0]
        if key.startswith("invoice-") and invoice_id in period_of:
            audit.record("stripe", period_of[invoice_id], int(row["amount"]), key)
    accounts = {receivable_account(c): s for s, c in customers.items()}
    for postings in (await ledger_postings(stack.sessions(), accounts)).values():
        for amount, ref in postings:
            if amount < 0:  # a payment credits the receivable (finalizing debits it)
                invoice_id = ref.removeprefix("invoice-").removesuffix("-paid")
                audit.record("ledger", period_of.get(invoice_id), -amount, ref)


async def check_outcomes(stack: FaultStack, declines: dict[str, int]) -> None:
    """Each first invoice was paid by the attempt its card allowed, or the subscription is
    unpaid after the last retry."""
    async with stack.sessions()() as session:
        for subscription_id, k in declines.items():
            status = await session.scalar(
                text("SELECT status FROM subscriptions WHERE id = :id"),
                {"id": uuid.UUID(subscription_id)},
            )
            attempts = (
                await session.execute(
                    text(
                        "SELECT a.number, a.status FROM invoice_payment_attempts a"
                        " JOIN invoices i ON i.id = a.invoice_id WHERE i.subscription_id = :id"
                        " ORDER BY i.period_start, a.number"
                    ),
                    {"id": uuid.UUID(subscription_id)},
                )
            ).all()
            first = [(n, s) for n, s in attempts][: min(k + 1, len(RETRY_DAYS) + 1)]
            if k > len(RETRY_DAYS):
                assert status == "unpaid", (subscription_id, status, attempts)
                assert first == [(n + 1, "failed") for n in range(len(RETRY_DAYS) + 1)]
            else:
                assert status == "active", (subscription_id, status, attempts)
                assert first == [(n + 1, "failed") for n in range(k)] + [(k + 1, "succeeded")]

"""The subscription workflow on the time-skipping server over simulated months, with the real
activities: a test database and the Stripe sandbox. The test drives the clock period by
period and waits, in real time, for each period's activities to finish."""

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.subscriptions import StripeSubscriptionActivities, SubscriptionActivities
from domain.subscriptions import Interval
from models.ledger import LedgerTransaction
from models.outbox import OutboxEvent
from models.payments import PaymentMethod
from models.subscriptions import Invoice, InvoiceLine, InvoicePaymentAttempt, Plan
from services import subscriptions
from tests.fixtures.payments import add_card
from tests.fixtures.stripe_sandbox import StripeSandbox
from tests.fixtures.subscriptions import new_plan, new_subscription
from tests.fixtures.waiting import until
from worker import WORKFLOW_RUNNER, subscription_activities
from workflows.subscriptions import SubscriptionWorkflow
from workflows.types import (
    CancelSubscription,
    ChangePlan,
    PauseSubscription,
    ResumeSubscription,
    SubscriptionInput,
    SubscriptionStatusView,
)

Handle = WorkflowHandle[SubscriptionWorkflow, SubscriptionStatusView]


@dataclass
class Run:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    sandbox: StripeSandbox
    client: stripe.StripeClient
    task_queue: str

    async def start(self, subscription_id: uuid.UUID, dunning_outcome: str = "unpaid") -> Handle:
        return await self.env.client.start_workflow(
            SubscriptionWorkflow.run,
            SubscriptionInput(
                subscription_id=subscription_id,
                dunning_outcome=dunning_outcome,
                stripe_task_queue=self.task_queue,
            ),
            id=f"subscription-{subscription_id}",
            task_queue=self.task_queue,
        )


@pytest.fixture
async def run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    client = stripe_sandbox.client()
    task_queue = f"subscriptions-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[SubscriptionWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            *subscription_activities(SubscriptionActivities(db)),
            StripeSubscriptionActivities(db, client).charge_invoice,
        ],
    ):
        yield Run(time_skipping_env, db, stripe_sandbox, client, task_queue)


async def start(
    run: Run,
    plan: Plan,
    *,
    token: str | None = "pm_card_visa",
    trial_days: int | None = None,
    dunning_outcome: str = "unpaid",
) -> tuple[uuid.UUID, Handle, PaymentMethod | None]:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    method = await add_card(run.db, run.client, customer, token) if token else None
    subscription = await new_subscription(
        run.db, plan, customer_id=customer, method=method, trial_days=trial_days
    )
    return subscription.id, await run.start(subscription.id, dunning_outcome), method


async def invoices_of(run: Run, subscription_id: uuid.UUID) -> list[Invoice]:
    async with run.db() as session:
        rows = await session.scalars(
            select(Invoice)
            .where(Invoice.subscription_id == subscription_id)
            .order_by(Invoice.finalized_at)
        )
        return list(rows)


async def attempts_of(run: Run, invoice_id: uuid.UUID) -> list[InvoicePaymentAttempt]:
    async with run.db() as session:
        rows = await session.scalars(
            select(InvoicePaymentAttempt)
            .where(InvoicePaymentAttempt.invoice_id == invoice_id)
            .order_by(InvoicePaymentAttempt.number)
        )
        return list(rows)


async def paid_invoices(run: Run, subscription_id: uuid.UUID, count: int) -> None:
    async def check() -> bool:
        invoices = await invoices_of(run, subscription_id)
        return sum(invoice.status == "paid" for invoice in invoices) >= count

    await until(check, f"{count} paid invoices")


async def status_is(handle: Handle, status: str) -> None:
    async def check() -> bool:
        return (await handle.query(SubscriptionWorkflow.status)).status == status

    await until(check, f"status {status}")


async def next_period(run: Run, handle: Handle) -> None:
    """Moves the clock to the end of the current period."""
    view = await handle.query(SubscriptionWorkflow.status)
    assert view.current_period_end is not None
    await run.env.sleep(view.current_period_end - await run.env.get_current_time())


def charges_of(run: Run, invoice: Invoice) -> list[dict[str, object]]:
    return [
        row
        for row in run.sandbox.movements(kind="charge")
        if str(row.get("idempotency_key", "")).startswith(f"invoice-{invoice.id}-")
    ]


async def test_monthly_billing_for_twelve_periods_bills_exactly_twelve_invoices(run: Run) -> None:
    plan = await new_plan(run.db, 3_000)
    subscription_id, handle, _ = await start(run, plan)
    await paid_invoices(run, subscription_id, 1)
    for period in range(2, 13):
        await next_period(run, handle)
        await paid_invoices(run, subscription_id, period)

    await handle.signal(SubscriptionWorkflow.cancel, CancelSubscription(by="test"))
    result = await handle.result()

    invoices = await invoices_of(run, subscription_id)
    assert result.status == "canceled"
    assert len(invoices) == 12
    assert [invoice.status for invoice in invoices] == ["paid"] * 12
    assert len({invoice.period_start for invoice in invoices}) == 12
    for previous, following in itertools.pairwise(invoices):
        assert following.period_start == previous.period_end  # no gap, no overlap
    assert all(invoice.total == 3_000 for invoice in invoices)
    numbers = [int((invoice.number or "").removeprefix("INV-")) for invoice in invoices]
    assert numbers == sorted(numbers)
    # One charge at Stripe per invoice, under the invoice's key.
    assert [len(charges_of(run, invoice)) for invoice in invoices] == [1] * 12
    async with run.db() as session:
        paid_postings = await session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.external_ref.like("invoice-%-paid"))
            .where(
                LedgerTransaction.metadata_["invoice_id"].astext.in_([str(i.id) for i in invoices])
            )
        )
    assert paid_postings == 12


async def test_a_trial_converts_to_paid_at_its_end(run: Run) -> None:
    plan = await new_plan(run.db, 2_000, trial_days=14)
    subscription_id, handle, _ = await start(run, plan)
    await status_is(handle, "trialing")
    await run.env.sleep(timedelta(days=13, hours=23))
    assert (await handle.query(SubscriptionWorkflow.status)).status == "trialing"
    assert await invoices_of(run, subscription_id) == []

    await run.env.sleep(timedelta(hours=2))
    await paid_invoices(run, subscription_id, 1)

    view = await handle.query(SubscriptionWorkflow.status)
    assert view.status == "active"
    assert view.trial_end is not None and view.current_period_start == view.trial_end
    [invoice] = await invoices_of(run, subscription_id)
    assert (invoice.total, invoice.period_start) == (2_000, view.trial_end)


async def test_a_trial_without_a_payment_method_is_cancelled_at_its_end(run: Run) -> None:
    plan = await new_plan(run.db, 2_000, trial_days=7)
    subscription_id, handle, _ = await start(run, plan, token=None)

    result = await handle.result()

    assert result.status == "canceled"
    assert await invoices_of(run, subscription_id) == []
    async with run.db() as session:
        subscription = await subscriptions.get(session, subscription_id)
    assert subscription.cancel_reason == "the trial ended with no payment method"


async def test_a_card_failing_twice_then_succeeding_follows_the_dunning_schedule(run: Run) -> None:
    plan = await new_plan(run.db, 4_000)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    method = await add_card(run.db, run.client, customer)
    run.sandbox.script_declines(method.stripe_payment_method_id, 2)
    subscription = await new_subscription(run.db, plan, customer_id=customer, method=method)
    handle = await run.start(subscription.id)
    await status_is(handle, "past_due")
    [invoice] = await invoices_of(run, subscription.id)
    assert invoice.first_failed_at is not None
    assert invoice.next_payment_attempt == invoice.first_failed_at + timedelta(days=1)

    await run.env.sleep(timedelta(days=1, minutes=1))

    async def two_failures() -> bool:
        return sum(a.status == "failed" for a in await attempts_of(run, invoice.id)) == 2

    await until(two_failures, "the second failure")
    assert (await handle.query(SubscriptionWorkflow.status)).status == "past_due"
    [invoice] = await invoices_of(run, subscription.id)
    assert invoice.first_failed_at is not None
    assert invoice.next_payment_attempt == invoice.first_failed_at + timedelta(days=3)

    await run.env.sleep(timedelta(days=2))
    await paid_invoices(run, subscription.id, 1)
    await status_is(handle, "active")

    attempts = await attempts_of(run, invoice.id)
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a.decline_code for a in attempts[:2]] == ["insufficient_funds"] * 2
    first = attempts[0].finished_at
    assert first is not None and attempts[2].finished_at is not None
    assert timedelta(days=3) <= attempts[2].finished_at - first < timedelta(days=3, hours=1)
    assert len(charges_of(run, invoice)) == 1
    async with run.db() as session:
        failed_events = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.event_type == "invoice.payment_failed",
                OutboxEvent.entity_id == str(invoice.id),
            )
        )
    assert failed_events == 2


async def test_a_card_that_never_succeeds_ends_unpaid_after_the_last_retry(run: Run) -> None:
    plan = await new_plan(run.db, 4_000)
    subscription_id, handle, _ = await start(
        run, plan, token="pm_card_chargeDeclinedInsufficientFunds"
    )
    await status_is(handle, "past_due")
    await run.env.sleep(timedelta(days=6, hours=23))
    assert (await handle.query(SubscriptionWorkflow.status)).status == "past_due"

    await run.env.sleep(timedelta(hours=2))
    await status_is(handle, "unpaid")

    [invoice] = await invoices_of(run, subscription_id)
    attempts = await attempts_of(run, invoice.id)
    assert len(attempts) == 5  # the first charge and the four retries
    first = attempts[0].finished_at
    assert first is not None
    offsets = [(a.finished_at - first).days for a in attempts if a.finished_at]
    assert offsets == [0, 1, 3, 5, 7]
    assert (invoice.status, invoice.next_payment_attempt) == ("open", None)
    # No further charge is tried while unpaid.
    await run.env.sleep(timedelta(days=40))
    assert len(await attempts_of(run, invoice.id)) == 5


async def test_a_card_that_never_succeeds_can_end_canceled(run: Run) -> None:
    plan = await new_plan(run.db, 4_000)
    subscription_id, handle, _ = await start(
        run, plan, token="pm_card_chargeDeclined", dunning_outcome="canceled"
    )

    result = await handle.result()

    assert result.status == "canceled"
    [invoice] = await invoices_of(run, subscription_id)
    assert invoice.status == "uncollectible"
    assert len(await attempts_of(run, invoice.id)) == 5


async def test_pause_skips_periods_and_resume_bills_a_new_one(run: Run) -> None:
    plan = await new_plan(run.db, 1_000, interval=Interval.WEEK)
    subscription_id, handle, _ = await start(run, plan)
    await paid_invoices(run, subscription_id, 1)
    await handle.signal(SubscriptionWorkflow.pause, PauseSubscription(by="test"))
    await status_is(handle, "paused")

    await run.env.sleep(timedelta(weeks=3, days=2))
    assert len(await invoices_of(run, subscription_id)) == 1  # three periods skipped
    view = await handle.query(SubscriptionWorkflow.status)
    assert view.status == "paused" and view.periods_run >= 1

    resumed_at = await run.env.get_current_time()
    await handle.signal(SubscriptionWorkflow.resume, ResumeSubscription(by="test"))
    await paid_invoices(run, subscription_id, 2)

    invoices = await invoices_of(run, subscription_id)
    assert len(invoices) == 2
    assert invoices[1].period_start is not None
    assert abs(invoices[1].period_start - resumed_at) < timedelta(minutes=5)


async def test_cancel_at_period_end_bills_nothing_more(run: Run) -> None:
    plan = await new_plan(run.db, 1_500)
    subscription_id, handle, _ = await start(run, plan)
    await paid_invoices(run, subscription_id, 1)
    await handle.signal(
        SubscriptionWorkflow.cancel, CancelSubscription(at_period_end=True, by="test")
    )

    async def scheduled() -> bool:
        return (await handle.query(SubscriptionWorkflow.status)).cancel_at_period_end

    await until(scheduled, "cancel scheduled")
    period_end = (await handle.query(SubscriptionWorkflow.status)).current_period_end
    assert (await handle.query(SubscriptionWorkflow.status)).status == "active"

    result = await handle.result()

    assert result.status == "canceled"
    assert len(await invoices_of(run, subscription_id)) == 1
    async with run.db() as session:
        subscription = await subscriptions.get(session, subscription_id)
    assert subscription.canceled_at is not None and period_end is not None
    assert period_end <= subscription.canceled_at < period_end + timedelta(minutes=5)


async def test_an_upgrade_mid_period_is_prorated_on_the_next_invoice(run: Run) -> None:
    basic = await new_plan(run.db, 3_000, name="Basic", interval=Interval.DAY, interval_count=30)
    pro = await new_plan(run.db, 6_000, name="Pro", interval=Interval.DAY, interval_count=30)
    subscription_id, handle, _ = await start(run, basic)
    await paid_invoices(run, subscription_id, 1)

    await run.env.sleep(timedelta(days=10))  # a third of the 30-day period used
    await handle.signal(SubscriptionWorkflow.change_plan, ChangePlan(plan_id=pro.id, by="test"))

    async def changed() -> bool:
        async with run.db() as session:
            return (await subscriptions.get(session, subscription_id)).plan_id == pro.id

    await until(changed, "plan changed")
    await next_period(run, handle)
    await paid_invoices(run, subscription_id, 2)

    second = (await invoices_of(run, subscription_id))[1]
    async with run.db() as session:
        lines = list(
            await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == second.id))
        )
    by_kind = sorted((line.kind, line.amount) for line in lines)
    # Unused 2/3 of Basic credited, 2/3 of Pro charged (to the minute the signal landed).
    credit = next(amount for kind, amount in by_kind if kind == "proration" and amount < 0)
    charge = next(amount for kind, amount in by_kind if kind == "proration" and amount > 0)
    assert abs(credit + 2_000) <= 2 and abs(charge - 4_000) <= 3
    assert ("subscription", 6_000) in by_kind
    assert second.total == 6_000 + charge + credit
    assert len(charges_of(run, second)) == 1


async def test_a_history_of_many_periods_stays_small_through_continue_as_new(
    run: Run,
) -> None:
    plan = await new_plan(run.db, 500, interval=Interval.DAY)
    subscription_id, handle, _ = await start(run, plan)
    await paid_invoices(run, subscription_id, 1)
    for period in range(2, 25):
        await next_period(run, handle)
        await paid_invoices(run, subscription_id, period)

    view = await handle.query(SubscriptionWorkflow.status)
    assert view.periods_run == 23  # one run per period
    history = await handle.fetch_history()
    assert len(history.events) < 60  # the current run's, not 24 periods'
    await handle.signal(SubscriptionWorkflow.cancel, CancelSubscription(by="test"))
    assert (await handle.result()).status == "canceled"
    assert len(await invoices_of(run, subscription_id)) == 24

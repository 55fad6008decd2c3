"""Recorded histories of the subscription workflow, made with the real activities against a
throw-away database and Stripe sandbox (the workflow's steps are too many to stub honestly).
Called by ``tests.replay.record``; ``python -m tests.replay.record_subscriptions`` records
these alone."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.subscriptions import StripeSubscriptionActivities, SubscriptionActivities
from devstack import postgres
from devstack.binaries import find
from devstack.net import free_port
from integrations.temporal import add_search_attributes
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.subscriptions import Invoice
from tests.fixtures.payments import add_card
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox
from tests.fixtures.subscriptions import new_plan, new_subscription
from worker import WORKFLOW_RUNNER, subscription_activities
from workflows.search_attributes import ALL
from workflows.subscriptions import SubscriptionWorkflow
from workflows.types import (
    CancelSubscription,
    ChangePlan,
    PauseSubscription,
    ResumeSubscription,
    SubscriptionInput,
    SubscriptionStatusView,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]
Handle = WorkflowHandle[SubscriptionWorkflow, SubscriptionStatusView]


@asynccontextmanager
async def _database() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    port = free_port()
    with postgres.temporary_server(port):
        postgres.ensure_database(port, "record")
        database_url = postgres.url(port, "record")
        await asyncio.to_thread(upgrade, database_url)
        engine = make_engine(database_url)
        try:
            yield make_sessionmaker(engine)
        finally:
            await engine.dispose()


async def _paid(
    db: async_sessionmaker[AsyncSession], subscription_id: uuid.UUID, count: int
) -> None:
    for _ in range(600):
        async with db() as session:
            paid = list(
                await session.scalars(
                    select(Invoice.id).where(
                        Invoice.subscription_id == subscription_id, Invoice.status == "paid"
                    )
                )
            )
        if len(paid) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"subscription {subscription_id}: {count} invoices never paid")


async def _status(handle: Handle, status: str) -> None:
    for _ in range(600):
        if (await handle.query(SubscriptionWorkflow.status)).status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {status}")


async def _period_end(env: WorkflowEnvironment, handle: Handle) -> None:
    view = await handle.query(SubscriptionWorkflow.status)
    assert view.current_period_end is not None
    await env.sleep(view.current_period_end - await env.get_current_time())


async def _save_first_run(env: WorkflowEnvironment, handle: Handle, name: str, save: Save) -> None:
    await save(
        env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id), name
    )


async def record_subscriptions(env: WorkflowEnvironment, save: Save) -> None:
    """A period billed then continued as new; a trial converted; dunning that recovers, then a
    cancel at period end; dunning exhausted into cancellation; a run with a plan change,
    pause, resume and cancel."""
    with tempfile.TemporaryDirectory() as logs, run_stripe_sandbox(Path(logs)) as sandbox:
        async with _database() as db:
            await _record(env, db, sandbox, save)


async def _record(
    env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    sandbox: StripeSandbox,
    save: Save,
) -> None:
    client = sandbox.client()
    queue = f"record-subscriptions-{uuid.uuid4()}"

    async def start(
        name: str, *, token: str = "pm_card_visa", trial_days: int | None = None, **inputs: Any
    ) -> tuple[uuid.UUID, Handle]:
        customer = f"recorded-{name}"
        method = await add_card(db, client, customer, token)
        plan = await new_plan(db, 3_000)
        subscription = await new_subscription(
            db, plan, customer_id=customer, method=method, trial_days=trial_days
        )
        if name == "subscription_dunning_recovered":
            sandbox.script_declines(method.stripe_payment_method_id, 2)
        handle = await env.client.start_workflow(
            SubscriptionWorkflow.run,
            SubscriptionInput(subscription_id=subscription.id, stripe_task_queue=queue, **inputs),
            id=f"subscription-{name}",
            task_queue=queue,
        )
        return subscription.id, handle

    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[SubscriptionWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            *subscription_activities(SubscriptionActivities(db)),
            StripeSubscriptionActivities(db, client).charge_invoice,
        ],
    ):
        subscription_id, handle = await start("subscription_period_continued")
        await _paid(db, subscription_id, 1)
        await _period_end(env, handle)
        await _paid(db, subscription_id, 2)
        await _save_first_run(env, handle, "subscription_period_continued", save)
        upgrade_plan = await new_plan(db, 6_000, name="Upgrade")
        await env.sleep(timedelta(days=3))
        await handle.signal(SubscriptionWorkflow.change_plan, ChangePlan(plan_id=upgrade_plan.id))
        await handle.signal(SubscriptionWorkflow.pause, PauseSubscription(reason="recorded"))
        await _status(handle, "paused")
        await handle.signal(SubscriptionWorkflow.resume, ResumeSubscription())
        await _status(handle, "active")
        await handle.signal(SubscriptionWorkflow.cancel, CancelSubscription(reason="recorded"))
        await handle.result()
        await save(handle, "subscription_operations_then_canceled")

        subscription_id, handle = await start("subscription_trial_converted", trial_days=7)
        await _status(handle, "trialing")
        await env.sleep(timedelta(days=7, minutes=1))
        await _paid(db, subscription_id, 1)
        await _save_first_run(env, handle, "subscription_trial_converted", save)
        await handle.terminate()

        subscription_id, handle = await start("subscription_dunning_recovered")
        await _status(handle, "past_due")
        await env.sleep(timedelta(days=3, minutes=1))
        await _paid(db, subscription_id, 1)
        await handle.signal(SubscriptionWorkflow.cancel, CancelSubscription(at_period_end=True))
        await handle.result()
        await save(handle, "subscription_dunning_recovered")

        _, handle = await start(
            "subscription_dunning_exhausted",
            token="pm_card_chargeDeclined",
            dunning_outcome="canceled",
        )
        await handle.result()
        await save(handle, "subscription_dunning_exhausted")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_subscriptions(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

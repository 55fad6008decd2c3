"""Recorded histories of the settlement window workflow, made with the real database and
Stripe activities against a throw-away database and Stripe sandbox. Called by
``tests.replay.record``; ``python -m tests.replay.record_settlement_windows`` records these
alone."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowContinuedAsNewError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.settlement_windows import SettlementWindowActivities
from activities.transfers import StripeTransferSendActivities, TransferActivities
from devstack import postgres
from devstack.binaries import find
from devstack.net import free_port
from domain.actors import Actor, Role
from domain.rails import RoutingRules
from domain.transfers import BatchSource
from integrations.temporal import add_search_attributes
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.transfers import TransferBatch
from services import settlement_windows, transfers
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox
from worker import WORKFLOW_RUNNER
from workflows.search_attributes import ALL
from workflows.settlement_windows import SettlementWindowWorkflow
from workflows.settlement_windows import workflow_id as window_workflow_id
from workflows.transfers import TransferBatchWorkflow
from workflows.types import (
    SettlementWindowInput,
    SettleNow,
    TransferBatchInput,
    TransfersQueued,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]
Handle = WorkflowHandle[SettlementWindowWorkflow, None]
ADMIN = Actor("recorded", Role.PLATFORM_ADMIN)
RAIL = "stripe"
# One window a day at 17:00 in New York, closing an hour before; every day a business day,
# so the recording does not depend on the date it is made.
WINDOWS = {
    "frequency": "end_of_day",
    "times": ["17:00"],
    "cutoff_minutes": 60,
    "time_zone": "America/New_York",
    "calendar": "none",
}


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


async def record_settlement_windows(env: WorkflowEnvironment, save: Save) -> None:
    """Transfers queued for a window, sent when it comes (the run continues as new); then
    transfers queued for a later window, sent at once by ``settle_now``."""
    with tempfile.TemporaryDirectory() as logs, run_stripe_sandbox(Path(logs)) as sandbox:
        async with _database() as db:
            await _record(env, db, sandbox, save)


async def _batch_status(
    db: async_sessionmaker[AsyncSession], batch: TransferBatch, status: str
) -> None:
    for _ in range(600):
        async with db() as session:
            if (await transfers.get_batch(session, batch.id)).status == status:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch.id} never {status}")


async def _waiting(handle: Handle) -> None:
    for _ in range(600):
        if (await handle.query(SettlementWindowWorkflow.status)).next_window_at is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never waited for a window")


async def _save_first_run(env: WorkflowEnvironment, handle: Handle, name: str, save: Save) -> None:
    """Saves the run the signal-with-start began (its handle names no run: not the latest),
    once it has continued as new."""
    first = env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    try:
        await first.result(follow_runs=False)
    except WorkflowContinuedAsNewError:
        pass
    else:
        raise AssertionError(f"{handle.id}: the first run did not continue as new")
    await save(first, name)


async def _record(
    env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    sandbox: StripeSandbox,
    save: Save,
) -> None:
    client = sandbox.client(timeout_seconds=2.0)
    queue = f"record-windows-{uuid.uuid4()}"
    stripe_queue = f"record-windows-stripe-{uuid.uuid4()}"
    steps = TransferActivities(db)
    windows = SettlementWindowActivities(db)
    options: dict[str, Any] = {"stripe_task_queue": stripe_queue, "chain_task_queue": "unused"}

    async def batch(count: int) -> TransferBatch:
        """A batch submitted now (the server's clock), as the API stores it, and its
        workflow started."""
        tag = uuid.uuid4().hex[:8]
        items = [
            {
                "reference": f"recorded-{tag}-{i}",
                "destination": f"acct_recorded{tag}{i}",
                "amount": 1_000 + i,
                "currency": "USD",
            }
            for i in range(count)
        ]
        async with db() as session, session.begin():
            made = await transfers.create_batch(
                session,
                partner_id=f"partner-{tag}",
                items=items,
                source=BatchSource.JSON,
                rules=RoutingRules(),
                actor=ADMIN,
                now=await env.get_current_time(),
            )
        await env.client.start_workflow(
            TransferBatchWorkflow.run,
            TransferBatchInput(batch_id=made.id, **options),
            id=f"transfer-batch-{made.id}",
            task_queue=queue,
        )
        return made

    async def window_of(made: TransferBatch) -> datetime:
        async with db() as session:
            items = await transfers.list_items(session, made.id, limit=1000)
        [window_at] = {item.window_at for item in items}
        assert window_at is not None, f"batch {made.id} was not queued for a window"
        return window_at

    async def enqueue(made: TransferBatch) -> Handle:
        """What the API does once the batch is committed: signal-with-start."""
        return await env.client.start_workflow(
            SettlementWindowWorkflow.run,
            SettlementWindowInput(rail=RAIL, **options),
            id=window_workflow_id(RAIL),
            task_queue=queue,
            start_signal="enqueue",
            start_signal_args=[TransfersQueued(window_at=await window_of(made))],
        )

    async with db() as session, session.begin():
        await settlement_windows.put_config(session, RAIL, WINDOWS, actor=ADMIN)
    sandbox.fund(1_000_000)
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[TransferBatchWorkflow, SettlementWindowWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
            activities=[
                steps.begin,
                steps.start,
                steps.succeed,
                steps.fail,
                steps.cancel,
                steps.finish,
                windows.plan,
                windows.release,
                windows.record,
            ],
        ),
        Worker(
            env.client,
            task_queue=stripe_queue,
            activities=[StripeTransferSendActivities(db, client).send],
        ),
    ):
        made = await batch(2)
        handle = await enqueue(made)
        window_at = await window_of(made)
        await env.sleep(window_at + timedelta(minutes=1) - await env.get_current_time())
        await _batch_status(db, made, "completed")
        await _save_first_run(env, handle, "settlement_window_settled", save)
        await handle.terminate(reason="recorded")  # the next recording starts afresh

        made = await batch(3)
        handle = await enqueue(made)
        await _waiting(handle)  # signalled while it sleeps until the window
        await handle.signal(SettlementWindowWorkflow.settle_now, SettleNow(by="recorded"))
        await _batch_status(db, made, "completed")
        assert await env.get_current_time() < await window_of(made)
        await _save_first_run(env, handle, "settlement_window_settle_now", save)
        await handle.terminate(reason="recorded")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_settlement_windows(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

"""A rail's settlement windows on the time-skipping server, with the real activities (a test
database and the Stripe sandbox): transfers queued before a window's cut-off settle in that
window, those after it in the next one; an operator's ``settle_now`` sends the queue at
once; each window is recorded and its batches complete."""

import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.settlement_windows import SettlementWindowActivities
from activities.transfers import StripeTransferSendActivities, TransferActivities
from domain.actors import Actor, Role
from domain.rails import RoutingRules
from domain.settlement_windows import WindowConfig, window_for
from domain.transfers import BatchSource
from models.settlement_windows import SettlementRun
from models.transfers import Transfer, TransferBatch
from services import settlement_windows, transfers
from tests.fixtures.stripe_sandbox import StripeSandbox
from tests.fixtures.waiting import until
from worker import WORKFLOW_RUNNER
from workflows.settlement_windows import SettlementWindowWorkflow
from workflows.transfers import TransferBatchWorkflow
from workflows.types import (
    SettlementWindowInput,
    SettleNow,
    TransferBatchInput,
    TransfersQueued,
)

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)
# One window a day at 17:00 in New York, closing an hour before; every day a business day,
# so the test does not depend on the date it runs.
WINDOWS = {
    "frequency": "end_of_day",
    "times": ["17:00"],
    "cutoff_minutes": 60,
    "time_zone": "America/New_York",
    "calendar": "none",
}
Handle = WorkflowHandle[SettlementWindowWorkflow, None]


@dataclass
class Run:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    sandbox: StripeSandbox
    queue: str
    stripe_queue: str

    def options(self) -> dict[str, Any]:
        return {"stripe_task_queue": self.stripe_queue, "chain_task_queue": "unused"}

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def batch(self, count: int) -> TransferBatch:
        """A batch submitted now (the server's clock), as the API stores it, and its
        workflow started."""
        tag = uuid.uuid4().hex[:6]
        items = [
            {
                "reference": f"{tag}-{i}",
                "destination": f"acct_1Window{tag}{i}",
                "amount": 500 + i,
                "currency": "USD",
            }
            for i in range(count)
        ]
        async with self.db() as session, session.begin():
            batch = await transfers.create_batch(
                session,
                partner_id=f"partner-{tag}",
                items=items,
                source=BatchSource.JSON,
                rules=RoutingRules(),
                actor=ADMIN,
                now=await self.now(),
            )
        await self.env.client.start_workflow(
            TransferBatchWorkflow.run,
            TransferBatchInput(batch_id=batch.id, **self.options()),
            id=f"transfer-batch-{batch.id}",
            task_queue=self.queue,
        )
        return batch

    async def enqueue(self, window_at: datetime) -> Handle:
        """What the API does once the batch is committed: signal-with-start."""
        return await self.env.client.start_workflow(
            SettlementWindowWorkflow.run,
            SettlementWindowInput(rail="stripe", **self.options()),
            id="settlement-window-stripe",
            task_queue=self.queue,
            start_signal="enqueue",
            start_signal_args=[TransfersQueued(window_at=window_at)],
        )

    async def items(self, batch: TransferBatch) -> list[Transfer]:
        async with self.db() as session:
            return list(await transfers.list_items(session, batch.id, limit=1000))

    async def statuses(self, batch: TransferBatch) -> set[str]:
        return {item.status for item in await self.items(batch)}

    async def batch_status(self, batch: TransferBatch) -> str:
        async with self.db() as session:
            return (await transfers.get_batch(session, batch.id)).status

    async def runs(self) -> list[SettlementRun]:
        async with self.db() as session:
            return list(
                await session.scalars(select(SettlementRun).order_by(SettlementRun.window_at))
            )


@pytest.fixture
async def run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    steps = TransferActivities(db)
    windows = SettlementWindowActivities(db)
    run = Run(
        time_skipping_env,
        db,
        stripe_sandbox,
        f"windows-{uuid.uuid4()}",
        f"windows-stripe-{uuid.uuid4()}",
    )
    async with db() as session, session.begin():
        await settlement_windows.put_config(session, "stripe", WINDOWS, actor=ADMIN)
    stripe_sandbox.fund(1_000_000)
    async with (
        Worker(
            time_skipping_env.client,
            task_queue=run.queue,
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
            time_skipping_env.client,
            task_queue=run.stripe_queue,
            activities=[StripeTransferSendActivities(db, stripe_sandbox.client()).send],
        ),
    ):
        yield run


async def test_transfers_queued_before_and_after_the_cutoff_settle_in_their_windows(
    run: Run,
) -> None:
    config = WindowConfig.from_dict({"rail": "stripe", **WINDOWS})
    submitted = await run.now()
    first_window = window_for(config, submitted)
    early = await run.batch(2)
    assert {item.window_at for item in await run.items(early)} == {first_window}
    assert await run.statuses(early) == {"queued"}
    handle = await run.enqueue(first_window)

    # Half an hour before the window: past its cut-off, so the next day's window.
    await run.env.sleep(first_window - timedelta(minutes=30) - await run.now())
    late = await run.batch(3)
    second_window = window_for(config, await run.now())
    assert second_window == first_window + timedelta(days=1)
    assert {item.window_at for item in await run.items(late)} == {second_window}
    await run.enqueue(second_window)
    assert await run.statuses(early) == {"queued"}  # nothing is sent before its window

    await run.env.sleep(timedelta(minutes=31))
    await until(lambda: _equals(run.statuses(early), {"succeeded"}), "sent the first window")
    await until(lambda: _equals(run.batch_status(early), "completed"), "completed the batch")
    assert await run.statuses(late) == {"queued"}
    [first] = await run.runs()
    assert (first.window_at, first.trigger, first.total_count, first.succeeded_count) == (
        first_window,
        "window",
        2,
        2,
    )
    for item in await run.items(early):
        [moved] = run.sandbox.movements(idempotency_key=f"transfer-{item.id}")
        assert moved["amount"] == item.amount

    await run.env.sleep(timedelta(days=1))
    await until(lambda: _equals(run.statuses(late), {"succeeded"}), "sent the second window")
    await until(lambda: _equals(run.batch_status(late), "completed"), "completed the batch")
    assert [r.window_at for r in await run.runs()] == [first_window, second_window]
    status = await handle.query(SettlementWindowWorkflow.status)
    assert status.last is not None and status.last.window_at == second_window
    assert status.next_window_at is None


async def test_settle_now_sends_the_queue_without_waiting_for_its_window(run: Run) -> None:
    batch = await run.batch(3)
    [window_at] = {item.window_at for item in await run.items(batch)}
    assert window_at is not None
    handle = await run.enqueue(window_at)

    await handle.signal(SettlementWindowWorkflow.settle_now, SettleNow(by="ops-7"))

    await until(lambda: _equals(run.statuses(batch), {"succeeded"}), "settled now")
    await until(lambda: _equals(run.batch_status(batch), "completed"), "completed the batch")
    assert await run.now() < window_at
    [record] = await run.runs()
    assert (record.trigger, record.requested_by, record.total_count) == ("settle_now", "ops-7", 3)


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected

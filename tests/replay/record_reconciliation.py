"""Recorded histories of the reconciliation workflow, with name-matched stub activities (the
steps' database and provider work leaves no trace in the history beyond their inputs and
results): the Schedule's run of the previous day on both sources, completed; a run whose
chain step's retries ran out, failed. Called by ``tests.replay.record``;
``python -m tests.replay.record_reconciliation`` records these alone."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from worker import WORKFLOW_RUNNER
from workflows.reconciliation import ReconciliationWorkflow
from workflows.search_attributes import ALL
from workflows.types import (
    ReconcileSourceInput,
    ReconcileSourceResult,
    ReconciliationBeginInput,
    ReconciliationFinishInput,
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationRunRef,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]


class ReconciliationStubs:
    """The chain step fails while ``chain_down``; otherwise every step answers at once."""

    def __init__(self) -> None:
        self.chain_down = False

    @activity.defn(name="reconciliation_begin")
    async def begin(self, request: ReconciliationBeginInput) -> ReconciliationRunRef:
        return ReconciliationRunRef(
            run_id=request.run_id or uuid.uuid4(),
            status="running",
            sources=request.sources,
        )

    @activity.defn(name="reconcile_stripe")
    async def reconcile_stripe(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        return ReconcileSourceResult(
            source="stripe",
            ledger_count=1000,
            external_count=1001,
            matched_count=999,
            discrepancy_count=2,
        )

    @activity.defn(name="reconcile_chain")
    async def reconcile_chain(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        if self.chain_down:
            raise RuntimeError("chain node at http://127.0.0.1:8545 is unavailable")
        return ReconcileSourceResult(
            source="chain", ledger_count=3, external_count=3, matched_count=3
        )

    @activity.defn(name="reconciliation_finish")
    async def finish(self, request: ReconciliationFinishInput) -> ReconciliationResult:
        if request.error:
            return ReconciliationResult(run_id=request.run_id, status="failed", error=request.error)
        return ReconciliationResult(
            run_id=request.run_id,
            status="completed",
            ledger_count=1003,
            external_count=1004,
            matched_count=1002,
            discrepancy_count=2,
            match_rate="99.8007",
        )


async def record_reconciliation(env: WorkflowEnvironment, save: Save) -> None:
    stubs = ReconciliationStubs()
    queue = f"record-reconciliation-{uuid.uuid4()}"
    stripe_queue = f"record-reconciliation-stripe-{uuid.uuid4()}"
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[ReconciliationWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
            activities=[stubs.begin, stubs.reconcile_chain, stubs.finish],
        ),
        Worker(env.client, task_queue=stripe_queue, activities=[stubs.reconcile_stripe]),
    ):
        handle = await env.client.start_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(stripe_task_queue=stripe_queue),
            id="reconciliation-daily-run-recorded",
            task_queue=queue,
        )
        await handle.result()
        await save(handle, "reconciliation_completed")

        stubs.chain_down = True
        handle = await env.client.start_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(
                run_id=uuid.uuid4(), trigger="manual", stripe_task_queue=stripe_queue
            ),
            id="reconciliation-recorded-failed",
            task_queue=queue,
        )
        await handle.result()
        await save(handle, "reconciliation_failed")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_reconciliation(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

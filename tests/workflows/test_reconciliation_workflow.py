"""The reconciliation workflow on the time-skipping server with name-matched stub activities:
the Schedule's run reconciles the previous UTC day, the sources run in parallel (Stripe's
on the Stripe task queue), a source whose retries run out fails the run with its error,
and a run already finished is not reconciled again."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from worker import WORKFLOW_RUNNER
from workflows.reconciliation import ReconciliationWorkflow
from workflows.types import (
    ReconcileSourceInput,
    ReconcileSourceResult,
    ReconciliationBeginInput,
    ReconciliationFinishInput,
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationRunRef,
)

RUN_ID = uuid.uuid4()


@dataclass
class Stubs:
    status: str = "running"
    chain_failures: int = 0
    chain_error: Exception | None = None
    begun: list[ReconciliationBeginInput] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    chain_calls: int = 0
    finished: list[ReconciliationFinishInput] = field(default_factory=list)

    @activity.defn(name="reconciliation_begin")
    async def begin(self, request: ReconciliationBeginInput) -> ReconciliationRunRef:
        self.begun.append(request)
        return ReconciliationRunRef(
            run_id=request.run_id or RUN_ID,
            status=self.status,
            sources=request.sources or ["stripe", "chain"],
        )

    @activity.defn(name="reconcile_stripe")
    async def reconcile_stripe(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        self.sources.append(("stripe", activity.info().task_queue))
        return ReconcileSourceResult(
            source="stripe", ledger_count=1000, external_count=1000, matched_count=1000
        )

    @activity.defn(name="reconcile_chain")
    async def reconcile_chain(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        self.chain_calls += 1
        if self.chain_error is not None and self.chain_calls <= self.chain_failures:
            raise self.chain_error
        self.sources.append(("chain", activity.info().task_queue))
        return ReconcileSourceResult(
            source="chain", ledger_count=3, external_count=3, matched_count=2, discrepancy_count=1
        )

    @activity.defn(name="reconciliation_finish")
    async def finish(self, request: ReconciliationFinishInput) -> ReconciliationResult:
        self.finished.append(request)
        if request.error:
            return ReconciliationResult(run_id=request.run_id, status="failed", error=request.error)
        return ReconciliationResult(
            run_id=request.run_id,
            status=self.status if self.status != "running" else "completed",
            ledger_count=1003,
            matched_count=1002,
            discrepancy_count=1,
            match_rate="99.9002",
        )


@asynccontextmanager
async def workers(env: WorkflowEnvironment, stubs: Stubs) -> AsyncIterator[tuple[str, str]]:
    queue, stripe_queue = f"test-{uuid.uuid4()}", f"test-stripe-{uuid.uuid4()}"
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
        yield queue, stripe_queue


async def start(
    env: WorkflowEnvironment, queue: str, stripe_queue: str, **fields: object
) -> WorkflowHandle[ReconciliationWorkflow, ReconciliationResult]:
    return await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(stripe_task_queue=stripe_queue, **fields),
        id=f"reconciliation-daily-run-{uuid.uuid4()}",
        task_queue=queue,
    )


async def test_the_schedules_run_reconciles_the_previous_utc_day(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stubs = Stubs()
    async with workers(time_skipping_env, stubs) as (queue, stripe_queue):
        # The shared server's clock, not the wall clock: earlier tests skipped time ahead.
        started = await time_skipping_env.get_current_time()
        handle = await start(time_skipping_env, queue, stripe_queue, margin_seconds=600)
        result = await handle.result()
        status = await handle.query(ReconciliationWorkflow.status)

    assert (result.run_id, result.status, result.match_rate) == (RUN_ID, "completed", "99.9002")
    [begun] = stubs.begun
    assert begun.run_id is None
    assert begun.workflow_id == handle.id
    assert (begun.trigger, begun.sources) == ("schedule", ["stripe", "chain"])
    assert begun.period_start is not None and begun.period_end is not None
    assert begun.period_end - begun.period_start == timedelta(days=1)
    assert begun.period_end.time() == datetime.min.time()
    assert begun.period_end <= started < begun.period_end + timedelta(days=1)
    assert sorted(stubs.sources) == [("chain", queue), ("stripe", stripe_queue)]
    assert stubs.finished == [ReconciliationFinishInput(run_id=RUN_ID, actor="reconciliation")]
    assert (status.run_id, status.status) == (RUN_ID, "completed")
    assert status.sources["chain"].discrepancy_count == 1
    assert status.result == result


async def test_a_run_the_api_created_keeps_its_period(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stubs = Stubs()
    run_id = uuid.uuid4()
    async with workers(time_skipping_env, stubs) as (queue, stripe_queue):
        handle = await start(
            time_skipping_env,
            queue,
            stripe_queue,
            run_id=run_id,
            trigger="manual",
            sources=["stripe"],
        )
        result = await handle.result()

    assert (result.run_id, result.status) == (run_id, "completed")
    [begun] = stubs.begun
    assert (begun.run_id, begun.period_start, begun.period_end) == (run_id, None, None)


async def test_a_source_whose_retries_run_out_fails_the_run(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stubs = Stubs(chain_failures=99, chain_error=RuntimeError("chain node unavailable"))
    async with workers(time_skipping_env, stubs) as (queue, stripe_queue):
        handle = await start(time_skipping_env, queue, stripe_queue)
        result = await handle.result()

    assert stubs.chain_calls == 5  # the source step's maximum attempts
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("chain: ")
    assert "chain node unavailable" in result.error
    [finished] = stubs.finished
    assert finished.error == result.error
    assert [source for source, _ in stubs.sources] == ["stripe"]


async def test_a_refused_source_fails_the_run_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    refused = ApplicationError("run is completed", type="Conflict", non_retryable=True)
    stubs = Stubs(chain_failures=1, chain_error=refused)
    async with workers(time_skipping_env, stubs) as (queue, stripe_queue):
        result = await (await start(time_skipping_env, queue, stripe_queue)).result()

    assert stubs.chain_calls == 1
    assert result.error == "chain: Conflict: run is completed"


async def test_a_finished_run_is_not_reconciled_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    stubs = Stubs(status="completed")
    async with workers(time_skipping_env, stubs) as (queue, stripe_queue):
        result = await (
            await start(time_skipping_env, queue, stripe_queue, run_id=uuid.uuid4())
        ).result()

    assert result.status == "completed"
    assert stubs.sources == []
    assert len(stubs.finished) == 1

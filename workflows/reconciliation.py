"""A reconciliation run's process: begin the run (the API's, or the Schedule's own for the
previous UTC day), reconcile each source in parallel (each a step that keeps its records to
itself and stores its discrepancies), then complete the run with its totals and match
rate, or fail it with the sources' errors once their retries ran out."""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from domain.reconciliation import previous_day
from workflows import search_attributes as sa
from workflows.activity_options import REFUSALS, database_step
from workflows.failures import reason
from workflows.types import (
    ReconcileSourceInput,
    ReconcileSourceResult,
    ReconciliationBeginInput,
    ReconciliationFinishInput,
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationStatus,
)

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import (
        ChainReconciliationActivities,
        ReconciliationActivities,
        StripeReconciliationActivities,
    )

FINAL_ERRORS = list(REFUSALS)
DATABASE = database_step(FINAL_ERRORS)
# A source's step reads a day of records: minutes at most; it heartbeats per page.
SOURCE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=30),
    "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=10),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=5),
        maximum_attempts=5,
        non_retryable_error_types=FINAL_ERRORS,
    ),
}


@workflow.defn(name="Reconciliation")
class ReconciliationWorkflow:
    """``reconciliation-{run_id}`` on demand, ``reconciliation-daily-run-...`` from the
    Schedule. The run's row is the record; this process runs its steps."""

    @workflow.init
    def __init__(self, request: ReconciliationInput) -> None:
        self._input = request
        self._status = ReconciliationStatus(run_id=request.run_id)

    @workflow.run
    async def run(self, request: ReconciliationInput) -> ReconciliationResult:
        start, end = request.period_start, request.period_end
        if request.run_id is None and (start is None or end is None):
            start, end = previous_day(workflow.now())
        ref = await workflow.execute_activity_method(
            ReconciliationActivities.begin,
            ReconciliationBeginInput(
                run_id=request.run_id,
                workflow_id=workflow.info().workflow_id,
                trigger=request.trigger,
                period_start=start,
                period_end=end,
                sources=request.sources,
                actor=request.actor,
            ),
            **DATABASE,
        )
        self._status.run_id = ref.run_id
        self._status.status = ref.status
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(ref.run_id)),
                sa.ENTITY_TYPE.value_set("reconciliation"),
                sa.STATUS.value_set(ref.status),
            ]
        )
        errors: list[str] = []
        if ref.status == "running":
            outcomes = await asyncio.gather(
                *(self._source(source, ref.run_id) for source in ref.sources),
                return_exceptions=True,
            )
            for source, outcome in zip(ref.sources, outcomes, strict=True):
                if isinstance(outcome, ActivityError):
                    errors.append(f"{source}: {reason(outcome)}")
                elif isinstance(outcome, ApplicationError):
                    errors.append(f"{source}: {outcome.type}: {outcome.message}")
                elif isinstance(outcome, BaseException):
                    raise outcome
        result = await workflow.execute_activity_method(
            ReconciliationActivities.finish,
            ReconciliationFinishInput(
                run_id=ref.run_id, actor=request.actor, error="; ".join(errors) or None
            ),
            **DATABASE,
        )
        self._status.result = result
        self._set_status(result.status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _source(self, source: str, run_id: Any) -> ReconcileSourceResult:
        request = ReconcileSourceInput(
            run_id=run_id, source=source, margin_seconds=self._input.margin_seconds
        )
        if source == "stripe":
            done = await workflow.execute_activity_method(
                StripeReconciliationActivities.reconcile_stripe,
                request,
                task_queue=self._input.stripe_task_queue,
                **SOURCE,
            )
        elif source == "chain":
            done = await workflow.execute_activity_method(
                ChainReconciliationActivities.reconcile_chain, request, **SOURCE
            )
        else:
            raise ApplicationError(f"unknown source {source}", type="ValidationError")
        self._status.sources[source] = done
        return done

    def _set_status(self, status: str) -> None:
        if status != self._status.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(status)])
        self._status.status = status

    @workflow.query
    def status(self) -> ReconciliationStatus:
        return self._status

"""Anchoring runs: batch the unanchored tickets, publish each batch's Merkle root on chain,
and wait for the configured confirmations. Run by the ``tickets-anchoring`` Schedule, early
when enough tickets wait, or by ``tollgate anchors run``; ``anchor-confirmations`` is the
safety net for batches a run left SUBMITTED."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.types import (
    AnchoredBatch,
    AnchorRunInput,
    AnchorRunResult,
    BatchInput,
    BatchRef,
    CheckBatchInput,
    CheckBatchResult,
    ConfirmRunInput,
    ConfirmRunResult,
    CreateBatchInput,
    FailBatchInput,
)

with workflow.unsafe.imports_passed_through():
    from activities.anchoring import AnchorBatchActivities, AnchorChainActivities

FINAL_ERRORS = ["NotFound", "Conflict", "ChainRefused", "ValidationError"]
DATABASE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(minutes=1),
        non_retryable_error_types=FINAL_ERRORS,
    ),
}
# A chain outage is retried for about ten minutes; then the batch is FAILED with the error
# and the next run retries it, instead of one run waiting forever.
CHAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=14,
    non_retryable_error_types=FINAL_ERRORS,
)


def _chain(task_queue: str) -> dict[str, Any]:
    return {
        "task_queue": task_queue,
        "start_to_close_timeout": timedelta(seconds=60),
        "retry_policy": CHAIN_RETRY,
    }


@workflow.defn(name="AnchorTickets")
class AnchorTicketsWorkflow:
    def __init__(self) -> None:
        self._result = AnchorRunResult()

    @workflow.query
    def status(self) -> AnchorRunResult:
        """The batches done so far and the one in hand."""
        return self._result

    @workflow.run
    async def run(self, request: AnchorRunInput) -> AnchorRunResult:
        workflow.upsert_search_attributes([sa.ENTITY_TYPE.value_set("anchor-run")])
        result = self._result
        for _ in range(request.max_batches):
            ref: BatchRef = await workflow.execute_activity_method(
                AnchorBatchActivities.create_anchor_batch,
                CreateBatchInput(max_leaves=request.max_leaves),
                **DATABASE,
            )
            if ref.batch_id is None:
                break
            result.current_batch_id = ref.batch_id
            anchored = await self._anchor(ref.batch_id, ref.leaf_count, request)
            result.current_batch_id = None
            result.batches.append(anchored)
            if anchored.status != "CONFIRMED":
                # The chain refuses or is away: later batches would fare the same.
                break
        return result

    async def _anchor(
        self, batch_id: int, leaf_count: int, request: AnchorRunInput
    ) -> AnchoredBatch:
        try:
            submitted = await workflow.execute_activity_method(
                AnchorChainActivities.submit_anchor_batch,
                BatchInput(batch_id=batch_id),
                **_chain(request.chain_task_queue),
            )
        except ActivityError as failed:
            error = reason(failed)
            await workflow.execute_activity_method(
                AnchorBatchActivities.fail_anchor_batch,
                FailBatchInput(batch_id=batch_id, error=error),
                **DATABASE,
            )
            return AnchoredBatch(
                batch_id=batch_id, leaf_count=leaf_count, status="FAILED", error=error
            )
        check = await self._await_confirmations(batch_id, request)
        return AnchoredBatch(
            batch_id=batch_id,
            leaf_count=leaf_count,
            status=check.status,
            tx_hash=submitted.tx_hash,
            error=check.error,
        )

    async def _await_confirmations(
        self, batch_id: int, request: AnchorRunInput
    ) -> CheckBatchResult:
        """Polls with durable timers; after the timeout the batch stays SUBMITTED for the
        confirmation Schedule."""
        deadline = workflow.now() + timedelta(seconds=request.confirm_timeout_seconds)
        while True:
            try:
                check = await workflow.execute_activity_method(
                    AnchorChainActivities.check_anchor_batch,
                    CheckBatchInput(batch_id=batch_id, confirmations=request.confirmations),
                    **_chain(request.chain_task_queue),
                )
            except ActivityError as failed:
                return CheckBatchResult(status="SUBMITTED", error=reason(failed))
            if check.status != "SUBMITTED" or workflow.now() >= deadline:
                return check
            await workflow.sleep(timedelta(seconds=request.poll_seconds))


@workflow.defn(name="ConfirmAnchorBatches")
class ConfirmAnchorBatchesWorkflow:
    def __init__(self) -> None:
        self._result = ConfirmRunResult(checked=0, confirmed=0)

    @workflow.query
    def status(self) -> ConfirmRunResult:
        return self._result

    @workflow.run
    async def run(self, request: ConfirmRunInput) -> ConfirmRunResult:
        workflow.upsert_search_attributes([sa.ENTITY_TYPE.value_set("anchor-confirmations")])
        submitted = await workflow.execute_activity_method(
            AnchorBatchActivities.list_submitted_batches, BatchRef(), **DATABASE
        )
        result = self._result
        for batch_id in submitted.batch_ids:
            try:
                check = await workflow.execute_activity_method(
                    AnchorChainActivities.check_anchor_batch,
                    CheckBatchInput(batch_id=batch_id, confirmations=request.confirmations),
                    **_chain(request.chain_task_queue),
                )
            except ActivityError:
                # The chain is away: the next run (five minutes later) looks again.
                break
            result.checked += 1
            result.confirmed += check.status == "CONFIRMED"
        return result

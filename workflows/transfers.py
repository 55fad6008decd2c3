"""A batch payout's process: run every item on its rail, a bounded number at a time, each with
its own retries (``workflows.transfer_items``); then complete the batch (completed, partially
completed or failed) and announce it. Failed items can be retried (signal ``retry_failed``, or
the API), items not started can be cancelled (signal ``cancel``). Items queued for a rail's
settlement window are sent by that window's workflow, which signals ``window_settled``."""

from datetime import timedelta

from temporalio import workflow

from workflows import search_attributes as sa
from workflows.transfer_items import DATABASE, TransferRunner, history_long
from workflows.types import (
    CancelTransferBatch,
    RetryFailedTransfers,
    TransferBatchInput,
    TransferBatchState,
    TransferBatchStatus,
    TransferBatchStepInput,
    WindowSettled,
)

with workflow.unsafe.imports_passed_through():
    from activities.transfers import TransferActivities

BATCH_ACTOR = "transfer-batch"
# Open items none of this run's work will finish (queued for a window): looked at again
# this often, in case a window's signal was lost.
IDLE_RECHECK = timedelta(minutes=10)


@workflow.defn(name="TransferBatch")
class TransferBatchWorkflow:
    """``transfer-batch-{id}``. The rows are the record; this process runs the items
    (``concurrency`` at a time), owns their retries and completes the batch."""

    @workflow.init
    def __init__(self, request: TransferBatchInput) -> None:
        self._input = request
        self._state = TransferBatchState(status="processing")
        self._retry = request.retry_requested
        self._cancel: CancelTransferBatch | None = None
        self._window_settled = False
        self._runner = TransferRunner(request, BATCH_ACTOR, self._apply)

    @workflow.run
    async def run(self, request: TransferBatchInput) -> TransferBatchStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(request.batch_id)),
                sa.ENTITY_TYPE.value_set("transfer_batch"),
                sa.STATUS.value_set(self._state.status),
            ]
        )
        while True:
            # Cleared before the rows are read: a window settling after this is seen again.
            self._window_settled = False
            begun = await workflow.execute_activity_method(
                TransferActivities.begin,
                TransferBatchStepInput(
                    batch_id=request.batch_id, actor=BATCH_ACTOR, retry_failed=self._retry
                ),
                **DATABASE,
            )
            self._retry = False
            self._apply(begun.state)
            drained = await self._runner.execute(begun.items, lambda: self._cancel is not None)
            if self._cancel is not None:
                cancel, self._cancel = self._cancel, None
                self._apply(
                    await workflow.execute_activity_method(
                        TransferActivities.cancel,
                        TransferBatchStepInput(batch_id=request.batch_id, actor=cancel.by),
                        **DATABASE,
                    )
                )
            if not drained:
                # The history is long: the next run reloads what is left from the rows.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    self._input.model_copy(update={"retry_requested": self._retry})
                )
            self._apply(
                await workflow.execute_activity_method(
                    TransferActivities.finish,
                    TransferBatchStepInput(batch_id=request.batch_id, actor=BATCH_ACTOR),
                    **DATABASE,
                )
            )
            if self._state.status == "processing":
                # Items put back to pending meanwhile (the API's retry): run them. If this
                # run found nothing to do, the open items wait for something else (a
                # settlement window): wait for a signal rather than spin.
                if not begun.items and not self._retry and not self._window_settled:
                    try:
                        await workflow.wait_condition(
                            lambda: self._retry or self._cancel is not None or self._window_settled,
                            timeout=IDLE_RECHECK,
                        )
                    except TimeoutError:
                        if history_long():
                            await workflow.wait_condition(workflow.all_handlers_finished)
                            workflow.continue_as_new(
                                self._input.model_copy(update={"retry_requested": self._retry})
                            )
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._retry:
                return self.status()

    def _apply(self, state: TransferBatchState) -> None:
        if state.status != self._state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])
        self._state = state

    @workflow.signal
    def retry_failed(self, request: RetryFailedTransfers) -> None:
        """Run the failed items again once the items under way are done."""
        workflow.logger.info(
            "transfer batch %s: retry asked by %s", self._input.batch_id, request.by
        )
        self._retry = True

    @workflow.signal
    def window_settled(self, request: WindowSettled) -> None:
        """A settlement window sent some of the items: see whether the batch is done."""
        workflow.logger.info(
            "transfer batch %s: window %s of %s settled",
            self._input.batch_id,
            request.run_id,
            request.rail,
        )
        self._window_settled = True

    @workflow.signal
    def cancel(self, request: CancelTransferBatch) -> None:
        """Start no more items; those not started are cancelled, those under way finish."""
        self._cancel = request

    @workflow.query
    def status(self) -> TransferBatchStatus:
        state = self._state
        done = state.succeeded + state.failed + state.cancelled
        return TransferBatchStatus(
            batch_id=self._input.batch_id,
            status=state.status,
            total=state.total,
            pending=state.pending,
            running=self._runner.running,
            succeeded=state.succeeded,
            failed=state.failed,
            cancelled=state.cancelled,
            percent_done=round(100.0 * done / state.total, 1) if state.total else 0.0,
            cancel_requested=self._cancel is not None,
        )

"""A batch payout's process: run every item on its rail, a bounded number at a time, each with
its own retries; then complete the batch (completed, partially completed or failed) and
announce it. Failed items can be retried (signal ``retry_failed``, or the API), items not
started can be cancelled (signal ``cancel``)."""

import asyncio
from collections import deque
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.types import (
    CancelTransferBatch,
    RetryFailedTransfers,
    TokenTransferInput,
    TokenTransferResult,
    TransferBatchInput,
    TransferBatchState,
    TransferBatchStatus,
    TransferBatchStepInput,
    TransferFailInput,
    TransferItemRef,
    TransferSendInput,
    TransferStepInput,
    TransferStepResult,
    TransferSucceedInput,
)

with workflow.unsafe.imports_passed_through():
    from activities.transfers import StripeTransferSendActivities, TransferActivities

FINAL_ERRORS = [
    "CardDeclined",
    "ValidationError",
    "NotFound",
    "Conflict",
    "IdempotencyError",
    "ChainRefused",
]
DATABASE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        non_retryable_error_types=FINAL_ERRORS,
    ),
}
# Longer than the Stripe client's own tries (30 s timeout, two network retries).
SEND_TIMEOUT = timedelta(minutes=2)
BATCH_ACTOR = "transfer-batch"
# The chain rail's token activities (``activities.token_transfers``), called by name on the
# chain task queue: one transaction per transfer id, ever, so a re-run cannot pay twice.
SEND_TOKEN_TRANSFER = "send_token_transfer"
CHECK_TOKEN_TRANSFER = "check_token_transfer"
CHAIN_CONFIRMED = "CONFIRMED"
# Mined and failed (nothing moved), or mined as another transfer than asked (an operator's).
CHAIN_FAILED = frozenset({"REVERTED", "MISMATCH"})
# A run continues as new past this many events (Temporal refuses histories past 51,200).
MAX_HISTORY_EVENTS = 20_000
IDLE_RECHECK = timedelta(minutes=10)


@workflow.defn(name="TransferBatch")
class TransferBatchWorkflow:
    """``transfer-batch-{id}``. The rows are the record; this process runs the items
    (``concurrency`` at a time), owns their retries and completes the batch."""

    @workflow.init
    def __init__(self, request: TransferBatchInput) -> None:
        self._input = request
        self._state = TransferBatchState(status="processing")
        self._running = 0
        self._retry = request.retry_requested
        self._cancel: CancelTransferBatch | None = None

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
            begun = await workflow.execute_activity_method(
                TransferActivities.begin,
                TransferBatchStepInput(
                    batch_id=request.batch_id, actor=BATCH_ACTOR, retry_failed=self._retry
                ),
                **DATABASE,
            )
            self._retry = False
            self._apply(begun.state)
            drained = await self._execute(begun.items)
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
                if not begun.items and not self._retry:
                    try:
                        await workflow.wait_condition(
                            lambda: self._retry or self._cancel is not None, timeout=IDLE_RECHECK
                        )
                    except TimeoutError:
                        if self._history_long():
                            await workflow.wait_condition(workflow.all_handlers_finished)
                            workflow.continue_as_new(
                                self._input.model_copy(update={"retry_requested": self._retry})
                            )
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not self._retry:
                return self.status()

    async def _execute(self, items: list[TransferItemRef]) -> bool:
        """Every item, ``concurrency`` at a time; False when it stopped starting new ones
        because the history grew long (the rest is left to the next run). Once ``cancel``
        came, only items left in flight by an earlier run (processing) still start."""
        waiting = deque(items)
        running: list[asyncio.Task[None]] = []
        while waiting or running:
            if self._cancel is not None:
                waiting = deque(item for item in waiting if item.status == "processing")
            while (
                waiting
                and len(running) < max(1, self._input.concurrency)
                and not self._history_long()
            ):
                running.append(asyncio.create_task(self._run_item(waiting.popleft())))
            if not running:
                break
            done, running = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a bug in the item's code fails the task, not silently
        return not waiting

    @staticmethod
    def _history_long() -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > MAX_HISTORY_EVENTS
        )

    def _item_retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self._input.backoff_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=self._input.max_backoff_seconds),
            maximum_attempts=self._input.max_attempts,
            non_retryable_error_types=FINAL_ERRORS,
        )

    async def _run_item(self, item: TransferItemRef) -> None:
        self._running += 1
        try:
            try:
                if item.rail == "stripe":
                    sent = await workflow.execute_activity_method(
                        StripeTransferSendActivities.send,
                        TransferSendInput(transfer_id=item.transfer_id),
                        task_queue=self._input.stripe_task_queue,
                        start_to_close_timeout=SEND_TIMEOUT,
                        # The send heartbeats every 2 s: a dead worker is noticed in seconds.
                        heartbeat_timeout=timedelta(seconds=10),
                        retry_policy=self._item_retry(),
                    )
                    external_id: str | None = sent.external_id
                else:
                    external_id = await self._send_on_chain(item)
                    if external_id is None:
                        return  # the row said it is not to be sent (left as the row says)
            except ActivityError as failed:
                cause = failed.cause
                final = isinstance(cause, ApplicationError) and (
                    cause.non_retryable or cause.type in FINAL_ERRORS
                )
                workflow.logger.warning(
                    "transfer %s failed%s: %s",
                    item.transfer_id,
                    " (refused)" if final else "",
                    reason(failed),
                )
                await self._step(
                    TransferActivities.fail,
                    TransferFailInput(
                        transfer_id=item.transfer_id,
                        error=reason(failed),
                        actor=BATCH_ACTOR,
                        final=final,
                    ),
                )
                return
            except _ChainFailure as failed:
                await self._step(
                    TransferActivities.fail,
                    TransferFailInput(
                        transfer_id=item.transfer_id,
                        error=failed.message,
                        actor=BATCH_ACTOR,
                        final=failed.final,
                    ),
                )
                return
            await self._step(
                TransferActivities.succeed,
                TransferSucceedInput(
                    transfer_id=item.transfer_id, external_id=external_id, actor=BATCH_ACTOR
                ),
            )
        finally:
            self._running -= 1

    async def _send_on_chain(self, item: TransferItemRef) -> str | None:
        """Start the row, send the token transfer, and wait for its confirmation: the
        transaction hash, or ``_ChainFailure``."""
        started = await workflow.execute_activity_method(
            TransferActivities.start,
            TransferStepInput(transfer_id=item.transfer_id, actor=BATCH_ACTOR),
            **DATABASE,
        )
        if started.status == "succeeded":
            return started.external_id
        request = TokenTransferInput(
            transfer_id=item.transfer_id, destination=started.destination, amount=started.amount
        )
        options: dict[str, Any] = {
            "task_queue": self._input.chain_task_queue,
            "start_to_close_timeout": SEND_TIMEOUT,
            "retry_policy": self._item_retry(),
            "result_type": TokenTransferResult,
        }
        outcome = await workflow.execute_activity(SEND_TOKEN_TRANSFER, request, **options)
        deadline = workflow.now() + timedelta(seconds=self._input.chain_confirm_timeout_seconds)
        while outcome.status != CHAIN_CONFIRMED:
            if outcome.status in CHAIN_FAILED:
                raise _ChainFailure(
                    f"ChainRefused: {outcome.status}: {outcome.error or 'no detail'}"
                    f" ({outcome.tx_hash or 'no transaction'})",
                    final=True,
                )
            if workflow.now() >= deadline:
                raise _ChainFailure(
                    f"ChainTimeout: {outcome.tx_hash or 'the transaction'} not confirmed within"
                    f" {self._input.chain_confirm_timeout_seconds} s",
                    final=False,
                )
            await workflow.sleep(timedelta(seconds=self._input.chain_poll_seconds))
            outcome = await workflow.execute_activity(CHECK_TOKEN_TRANSFER, request, **options)
        if not outcome.tx_hash:
            raise _ChainFailure("ChainRefused: confirmed without a transaction hash", final=False)
        return outcome.tx_hash

    async def _step(self, activity: Any, request: BaseModel) -> None:
        """An item's database step; a refusal (the row moved on: cancelled, already final)
        leaves the item as the row says."""
        try:
            result: TransferStepResult = await workflow.execute_activity_method(
                activity, request, **DATABASE
            )
        except ActivityError as refused:
            workflow.logger.warning(
                "transfer batch %s: %s refused: %s",
                self._input.batch_id,
                type(request).__name__,
                reason(refused),
            )
            return
        if result.batch is not None:
            self._apply(result.batch)

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
            running=self._running,
            succeeded=state.succeeded,
            failed=state.failed,
            cancelled=state.cancelled,
            percent_done=round(100.0 * done / state.total, 1) if state.total else 0.0,
            cancel_requested=self._cancel is not None,
        )


class _ChainFailure(Exception):
    """A chain item that ends failed: refused by the chain, or not confirmed in time."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.message = message
        self.final = final

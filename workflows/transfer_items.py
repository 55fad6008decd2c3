"""Sending transfers from a workflow, shared by a batch (``transfer-batch-{id}``) and a rail's
settlement window (``settlement-window-{rail}``): each item on its rail, a bounded number at
a time, with its own retries; the row records each step (started, succeeded, failed)."""

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.activity_options import database_step
from workflows.failures import reason
from workflows.types import (
    TokenTransferInput,
    TokenTransferResult,
    TransferBatchState,
    TransferFailInput,
    TransferItemRef,
    TransferRunOptions,
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
DATABASE = database_step(FINAL_ERRORS)
# Longer than the Stripe client's own tries (30 s timeout, two network retries).
SEND_TIMEOUT = timedelta(minutes=2)
# The chain rail's token activities (``activities.token_transfers``), called by name on the
# chain task queue: one transaction per transfer id, ever, so a re-run cannot pay twice.
SEND_TOKEN_TRANSFER = "send_token_transfer"
CHECK_TOKEN_TRANSFER = "check_token_transfer"
CHAIN_CONFIRMED = "CONFIRMED"
# Mined and failed (nothing moved), or mined as another transfer than asked (an operator's).
CHAIN_FAILED = frozenset({"REVERTED", "MISMATCH"})
# A run continues as new past this many events (Temporal refuses histories past 51,200).
MAX_HISTORY_EVENTS = 20_000


def history_long() -> bool:
    info = workflow.info()
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() > MAX_HISTORY_EVENTS
    )


class TransferRunner:
    """Runs items for one workflow. ``actor`` names it on the rows; ``on_batch`` receives the
    batch's counts after each item's final step (the batch workflow keeps them)."""

    def __init__(
        self,
        options: TransferRunOptions,
        actor: str,
        on_batch: Callable[[TransferBatchState], None] | None = None,
    ) -> None:
        self.options = options
        self.actor = actor
        self.on_batch = on_batch
        self.running = 0

    async def execute(
        self, items: list[TransferItemRef], stop_new: Callable[[], bool] = lambda: False
    ) -> bool:
        """Every item, ``concurrency`` at a time; False when it stopped starting new ones
        because the history grew long (the rest is left to the next run). Once ``stop_new``
        says so, only items left in flight by an earlier run (processing) still start."""
        waiting = deque(items)
        running: list[asyncio.Task[None]] = []
        while waiting or running:
            if stop_new():
                waiting = deque(item for item in waiting if item.status == "processing")
            limit = max(1, self.options.concurrency)
            while waiting and len(running) < limit and not history_long():
                running.append(asyncio.create_task(self.run_item(waiting.popleft())))
            if not running:
                break
            done, running = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a bug in the item's code fails the task, not silently
        return not waiting

    def _item_retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.options.backoff_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=self.options.max_backoff_seconds),
            maximum_attempts=self.options.max_attempts,
            non_retryable_error_types=FINAL_ERRORS,
        )

    async def run_item(self, item: TransferItemRef) -> None:
        self.running += 1
        try:
            try:
                if item.rail == "stripe":
                    sent = await workflow.execute_activity_method(
                        StripeTransferSendActivities.send,
                        TransferSendInput(transfer_id=item.transfer_id),
                        task_queue=self.options.stripe_task_queue,
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
                        actor=self.actor,
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
                        actor=self.actor,
                        final=failed.final,
                    ),
                )
                return
            await self._step(
                TransferActivities.succeed,
                TransferSucceedInput(
                    transfer_id=item.transfer_id, external_id=external_id, actor=self.actor
                ),
            )
        finally:
            self.running -= 1

    async def _send_on_chain(self, item: TransferItemRef) -> str | None:
        """Start the row, send the token transfer, and wait for its confirmation: the
        transaction hash, or ``_ChainFailure``."""
        started = await workflow.execute_activity_method(
            TransferActivities.start,
            TransferStepInput(transfer_id=item.transfer_id, actor=self.actor),
            **DATABASE,
        )
        if started.status == "succeeded":
            return started.external_id
        request = TokenTransferInput(
            transfer_id=item.transfer_id, destination=started.destination, amount=started.amount
        )
        options: dict[str, Any] = {
            "task_queue": self.options.chain_task_queue,
            "start_to_close_timeout": SEND_TIMEOUT,
            # Both token activities heartbeat every 2 s: a dead worker is noticed in seconds.
            "heartbeat_timeout": timedelta(seconds=10),
            "retry_policy": self._item_retry(),
            "result_type": TokenTransferResult,
        }
        outcome = await workflow.execute_activity(SEND_TOKEN_TRANSFER, request, **options)
        deadline = workflow.now() + timedelta(seconds=self.options.chain_confirm_timeout_seconds)
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
                    f" {self.options.chain_confirm_timeout_seconds} s",
                    final=False,
                )
            await workflow.sleep(timedelta(seconds=self.options.chain_poll_seconds))
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
                "%s: %s refused: %s", self.actor, type(request).__name__, reason(refused)
            )
            return
        if result.batch is not None and self.on_batch is not None:
            self.on_batch(result.batch)


class _ChainFailure(Exception):
    """A chain item that ends failed: refused by the chain, or not confirmed in time."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.message = message
        self.final = final

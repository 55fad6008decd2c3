"""The safety net of holds, payouts, subscriptions, transfer batches, settlement windows and
reconciliation runs: every hold still holding money, every open payout schedule, every
subscription not canceled, every transfer batch still processing, every rail with transfers
queued for a window and every reconciliation run still running must have its workflow
running; a missing (or wrongly closed) one is started again.

Starting is idempotent: the workflow id is the entity's, and a running one is left alone.
"""

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from services import (
    escrow,
    payouts,
    reconciliation,
    settlement_windows,
    subscriptions,
    transfers,
)
from workflows.types import (
    EscrowHoldInput,
    PayoutScheduleInput,
    ReconciliationInput,
    RecoveryInput,
    RecoveryResult,
    SettlementWindowInput,
    SubscriptionInput,
    TransferBatchInput,
)

log = logging.getLogger(__name__)


def _run_options(request: RecoveryInput) -> dict[str, Any]:
    """How restarted batches and windows send transfers (``TransferRunOptions``)."""
    return {
        "stripe_task_queue": request.stripe_task_queue,
        "chain_task_queue": request.chain_task_queue,
        "concurrency": request.transfer_concurrency,
        "max_attempts": request.transfer_max_attempts,
        "backoff_seconds": request.transfer_backoff_seconds,
        "max_backoff_seconds": request.transfer_max_backoff_seconds,
        "chain_poll_seconds": request.chain_poll_seconds,
    }


class RecoveryActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], client: Client) -> None:
        self.sessionmaker = sessionmaker
        self.client = client

    @activity.defn(name="restart_missing_workflows")
    async def restart_missing_workflows(self, request: RecoveryInput) -> RecoveryResult:
        async with self.sessionmaker() as session:
            holds = await escrow.holding(session)
            schedules = await payouts.open_schedules(session)
            live = await subscriptions.live(session)
            batches = [batch.id for batch in await transfers.open_batches(session)]
            rails = await settlement_windows.rails_with_queue(session)
            runs = await reconciliation.running_runs(session)
        result = RecoveryResult(
            checked=len(holds) + len(schedules) + len(live) + len(batches) + len(rails) + len(runs)
        )
        for hold in holds:
            activity.heartbeat()
            workflow_id = f"escrow-hold-{hold.id}"
            if not await self._running(workflow_id):
                await self._start(
                    "EscrowHold",
                    EscrowHoldInput(hold_id=hold.id, release_at=hold.release_at),
                    workflow_id,
                    request.task_queue,
                )
                result.restarted_holds += 1
        for schedule in schedules:
            activity.heartbeat()
            workflow_id = f"payout-schedule-{schedule.id}"
            if not await self._running(workflow_id):
                await self._start(
                    "PayoutSchedule",
                    PayoutScheduleInput(
                        schedule_id=schedule.id,
                        scheduled_for=schedule.scheduled_for,
                        trigger_event=schedule.trigger_event,
                        max_attempts=schedule.max_attempts,
                        backoff_seconds=schedule.backoff_seconds,
                        stripe_task_queue=request.stripe_task_queue,
                    ),
                    workflow_id,
                    request.task_queue,
                )
                result.restarted_payouts += 1
        for subscription_id in live:
            activity.heartbeat()
            workflow_id = f"subscription-{subscription_id}"
            if not await self._running(workflow_id):
                await self._start(
                    "Subscription",
                    SubscriptionInput(
                        subscription_id=subscription_id,
                        retry_days=request.subscription_retry_days,
                        dunning_outcome=request.subscription_dunning_outcome,
                        stripe_task_queue=request.stripe_task_queue,
                    ),
                    workflow_id,
                    request.task_queue,
                )
                result.restarted_subscriptions += 1
        for batch_id in batches:
            activity.heartbeat()
            workflow_id = f"transfer-batch-{batch_id}"
            if not await self._running(workflow_id):
                await self._start(
                    "TransferBatch",
                    TransferBatchInput(batch_id=batch_id, **_run_options(request)),
                    workflow_id,
                    request.task_queue,
                )
                result.restarted_transfer_batches += 1
        for rail in rails:
            activity.heartbeat()
            workflow_id = f"settlement-window-{rail}"
            if not await self._running(workflow_id):
                await self._start(
                    "SettlementWindow",
                    SettlementWindowInput(rail=rail, **_run_options(request)),
                    workflow_id,
                    request.task_queue,
                )
                result.restarted_settlement_windows += 1
        for run in runs:
            activity.heartbeat()
            if not await self._running(run.workflow_id):
                await self._start(
                    "Reconciliation",
                    ReconciliationInput(
                        run_id=run.id,
                        trigger=run.trigger,
                        sources=list(run.sources),
                        stripe_task_queue=request.stripe_task_queue,
                        margin_seconds=request.reconciliation_margin_seconds,
                    ),
                    run.workflow_id,
                    request.task_queue,
                )
                result.restarted_reconciliations += 1
        if (
            result.restarted_holds
            or result.restarted_payouts
            or result.restarted_subscriptions
            or result.restarted_transfer_batches
            or result.restarted_settlement_windows
            or result.restarted_reconciliations
        ):
            log.warning(
                "restarted %d escrow, %d payout, %d subscription, %d transfer batch, %d"
                " settlement window and %d reconciliation workflows that were missing",
                result.restarted_holds,
                result.restarted_payouts,
                result.restarted_subscriptions,
                result.restarted_transfer_batches,
                result.restarted_settlement_windows,
                result.restarted_reconciliations,
            )
        return result

    async def _running(self, workflow_id: str) -> bool:
        try:
            described = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status is WorkflowExecutionStatus.RUNNING

    async def _start(
        self, workflow: str, argument: object, workflow_id: str, task_queue: str
    ) -> None:
        await self.client.start_workflow(
            workflow,
            argument,
            id=workflow_id,
            task_queue=task_queue,
            # A closed run of an entity still holding money is exactly what is missing.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

"""How the API starts and signals the workflows that send transfers: a batch's
(``transfer-batch-{id}``) and a rail's settlement windows (``settlement-window-{rail}``),
with the sending options the settings give (workflows never read them)."""

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from temporalio.common import WorkflowIDReusePolicy

from api.workflow_calls import WorkflowStart, signal_after_commit
from settings import Settings
from workflows.types import SettlementWindowInput, TransferBatchInput, TransfersQueued


def run_options(settings: Settings) -> dict[str, Any]:
    """``TransferRunOptions`` from the settings."""
    return {
        "stripe_task_queue": settings.stripe_task_queue,
        "chain_task_queue": settings.chain_task_queue,
        "concurrency": settings.transfer_concurrency,
        "max_attempts": settings.transfer_max_attempts,
        "backoff_seconds": settings.transfer_backoff_seconds,
        "max_backoff_seconds": settings.transfer_max_backoff_seconds,
        "chain_poll_seconds": settings.chain_poll_seconds,
    }


def batch_workflow_id(batch_id: uuid.UUID) -> str:
    return f"transfer-batch-{batch_id}"


def batch_workflow(batch_id: uuid.UUID, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="TransferBatch",
        id=batch_workflow_id(batch_id),
        arg=TransferBatchInput(batch_id=batch_id, **run_options(settings)),
        task_queue=settings.task_queue,
        # A batch runs again after it completed when its failed items are retried.
        reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


def window_workflow(rail: str, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="SettlementWindow",
        id=f"settlement-window-{rail}",
        arg=SettlementWindowInput(rail=rail, **run_options(settings)),
        task_queue=settings.task_queue,
        # A rail's windows never end; one terminated by an operator starts again.
        reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


def enqueue_after_commit(
    request: Request, settings: Settings, rail: str, window_at: datetime | None
) -> None:
    """Wake the rail's window workflow (starting it if needed) once the queued transfers
    are committed. Best effort: the rows are the queue, and the safety net starts a
    missing window workflow."""
    if window_at is None:
        return
    signal_after_commit(
        request,
        window_workflow(rail, settings),
        "enqueue",
        TransfersQueued(window_at=window_at),
    )

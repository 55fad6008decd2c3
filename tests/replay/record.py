"""Record a history of each workflow for the replay tests: ``python -m tests.replay.record``.

Run it when a workflow is added; never to make a changed workflow pass (that is what
``workflow.patched`` is for). Histories are recorded on the time-skipping server with
name-matched stub activities. A history already recorded is kept as it is: the point is
to replay what older code wrote, so only the missing files are written.
"""

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from workflows.anchoring import AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.search_attributes import ALL
from workflows.tickets import TicketWorkflow
from workflows.types import (
    AnchorRunInput,
    BatchInput,
    BatchRef,
    CancelTicket,
    CheckBatchInput,
    CheckBatchResult,
    ConfirmRunInput,
    CreateBatchInput,
    FailBatchInput,
    PurgeInput,
    PurgeResult,
    SubmitBatchResult,
    SubmittedBatches,
    TicketActivityInput,
    TicketActivityResult,
    TicketInput,
)

HISTORIES = Path(__file__).parent / "histories"


@activity.defn(name="purge_expired_idempotency_keys")
async def purge(_: PurgeInput) -> PurgeResult:
    return PurgeResult(deleted=3)


@activity.defn(name="expire_ticket")
async def expire_ticket(_: TicketActivityInput) -> TicketActivityResult:
    return TicketActivityResult(status="EXPIRED")


@activity.defn(name="cancel_ticket")
async def cancel_ticket(_: TicketActivityInput) -> TicketActivityResult:
    return TicketActivityResult(status="CANCELLED")


class AnchoringStubs:
    """The anchoring steps, scripted: batch 1 is submitted on the second attempt (the chain
    is away once) and confirmed on the second look; batch 2 is refused by the chain; of the
    submitted batches 1 and 3, batch 3 is not yet confirmed."""

    def __init__(self) -> None:
        self.batches = [
            BatchRef(batch_id=1, leaf_count=5),
            BatchRef(),
            BatchRef(batch_id=2, leaf_count=3),
        ]
        self.looks: dict[int, int] = {}

    @activity.defn(name="create_anchor_batch")
    async def create_anchor_batch(self, _: CreateBatchInput) -> BatchRef:
        return self.batches.pop(0) if self.batches else BatchRef()

    @activity.defn(name="fail_anchor_batch")
    async def fail_anchor_batch(self, _: FailBatchInput) -> None:
        return None

    @activity.defn(name="list_submitted_batches")
    async def list_submitted_batches(self, _: BatchRef) -> SubmittedBatches:
        return SubmittedBatches(batch_ids=[1, 3])

    @activity.defn(name="submit_anchor_batch")
    async def submit_anchor_batch(self, request: BatchInput) -> SubmitBatchResult:
        if request.batch_id == 2:
            raise ApplicationError(
                "the anchor transaction of batch 2 reverted",
                {"code": "contract_revert"},
                type="ChainRefused",
                non_retryable=True,
            )
        if activity.info().attempt == 1:
            raise RuntimeError("connection refused by the RPC node")
        return SubmitBatchResult(tx_hash=f"0x{request.batch_id:064x}")

    @activity.defn(name="check_anchor_batch")
    async def check_anchor_batch(self, request: CheckBatchInput) -> CheckBatchResult:
        looks = self.looks[request.batch_id] = self.looks.get(request.batch_id, 0) + 1
        if request.batch_id != 1 or looks < 2:
            return CheckBatchResult(status="SUBMITTED")
        return CheckBatchResult(
            status="CONFIRMED", confirmations=request.confirmations, block_number=42
        )


async def save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{name}.json"
    if path.exists():
        print(f"kept {path.name}")
        return
    history = await handle.fetch_history()
    path.write_text(history.to_json())
    print(f"recorded {path.name}")


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        queue = f"record-{uuid.uuid4()}"
        chain_queue = f"record-chain-{uuid.uuid4()}"
        anchoring = AnchoringStubs()
        async with (
            Worker(
                env.client,
                task_queue=queue,
                workflows=[
                    PurgeExpiredIdempotencyKeysWorkflow,
                    TicketWorkflow,
                    AnchorTicketsWorkflow,
                    ConfirmAnchorBatchesWorkflow,
                ],
                activities=[
                    purge,
                    expire_ticket,
                    cancel_ticket,
                    anchoring.create_anchor_batch,
                    anchoring.fail_anchor_batch,
                    anchoring.list_submitted_batches,
                ],
            ),
            Worker(
                env.client,
                task_queue=chain_queue,
                activities=[anchoring.submit_anchor_batch, anchoring.check_anchor_batch],
                max_concurrent_activities=1,
            ),
        ):
            purge_run = await env.client.start_workflow(
                PurgeExpiredIdempotencyKeysWorkflow.run,
                PurgeInput(),
                id="purge-recorded",
                task_queue=queue,
            )
            await purge_run.result()
            await save(purge_run, "purge_expired_idempotency_keys")
            now = await env.get_current_time()
            for name, cancel in (("ticket_expired", False), ("ticket_cancelled", True)):
                ticket = await env.client.start_workflow(
                    TicketWorkflow.run,
                    TicketInput(
                        ticket_id=uuid.uuid4(),
                        booking_id="bk-recorded",
                        driver_id="drv-recorded",
                        valid_until=now + timedelta(hours=1),
                    ),
                    id=f"ticket-{name}",
                    task_queue=queue,
                )
                if cancel:
                    await ticket.signal(TicketWorkflow.cancel, CancelTicket(reason="recorded"))
                await ticket.result()
                await save(ticket, name)
            # Batch 1: a retried submission, a poll, confirmed; then nothing waits.
            # Then batch 2: refused by the chain, FAILED.
            for name in ("anchor_tickets_confirmed", "anchor_tickets_refused"):
                anchor_run = await env.client.start_workflow(
                    AnchorTicketsWorkflow.run,
                    AnchorRunInput(
                        confirmations=2,
                        poll_seconds=5,
                        confirm_timeout_seconds=60,
                        chain_task_queue=chain_queue,
                    ),
                    id=f"anchor-run-{name}",
                    task_queue=queue,
                )
                await anchor_run.result()
                await save(anchor_run, name)
            confirm_run = await env.client.start_workflow(
                ConfirmAnchorBatchesWorkflow.run,
                ConfirmRunInput(confirmations=2, chain_task_queue=chain_queue),
                id="anchor-confirmations-recorded",
                task_queue=queue,
            )
            await confirm_run.result()
            await save(confirm_run, "anchor_confirmations")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())

"""Record a history of each workflow for the replay tests: ``python -m tests.replay.record``.

Run it when a workflow is added; never to make a changed workflow pass (that is what
``workflow.patched`` is for). Histories are recorded on the time-skipping server with
name-matched stub activities.
"""

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.search_attributes import ALL
from workflows.tickets import TicketWorkflow
from workflows.types import (
    CancelTicket,
    PurgeInput,
    PurgeResult,
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


async def save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    HISTORIES.mkdir(exist_ok=True)
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        queue = f"record-{uuid.uuid4()}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[PurgeExpiredIdempotencyKeysWorkflow, TicketWorkflow],
            activities=[purge, expire_ticket, cancel_ticket],
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
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())

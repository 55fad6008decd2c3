"""The ticket lifecycle on the time-skipping server, with name-matched stub activities."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.tickets import TicketWorkflow
from workflows.types import (
    CancelTicket,
    TicketActivityInput,
    TicketActivityResult,
    TicketInput,
    TicketResult,
    TicketStatusChanged,
)


@dataclass
class Calls:
    expired_at: list[datetime] = field(default_factory=list)
    cancelled: list[TicketActivityInput] = field(default_factory=list)
    row_status: str = "ACTIVE"  # what the stubbed database holds


@dataclass
class Harness:
    env: WorkflowEnvironment
    queue: str
    calls: Calls

    async def start(
        self, valid_for: timedelta
    ) -> tuple[WorkflowHandle[TicketWorkflow, TicketResult], datetime]:
        valid_until = (await self.env.get_current_time()) + valid_for
        ticket = TicketInput(
            ticket_id=uuid.uuid4(), booking_id="bk-1", driver_id="drv-1", valid_until=valid_until
        )
        handle = await self.env.client.start_workflow(
            TicketWorkflow.run, ticket, id=f"ticket-{ticket.ticket_id}", task_queue=self.queue
        )
        return handle, valid_until


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    calls = Calls()

    @activity.defn(name="expire_ticket")
    async def expire_ticket(_: TicketActivityInput) -> TicketActivityResult:
        calls.expired_at.append(await time_skipping_env.get_current_time())
        if calls.row_status == "ACTIVE":
            calls.row_status = "EXPIRED"
        return TicketActivityResult(status=calls.row_status)

    @activity.defn(name="cancel_ticket")
    async def cancel_ticket(request: TicketActivityInput) -> TicketActivityResult:
        calls.cancelled.append(request)
        if calls.row_status == "ACTIVE":
            calls.row_status = "CANCELLED"
        return TicketActivityResult(status=calls.row_status)

    queue = f"tickets-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[TicketWorkflow],
        activities=[expire_ticket, cancel_ticket],
    ):
        yield Harness(time_skipping_env, queue, calls)


async def test_expiry_fires_exactly_at_the_end_of_the_window(harness: Harness) -> None:
    handle, valid_until = await harness.start(timedelta(hours=6))
    result = await handle.result()
    assert result.status == "EXPIRED"
    [fired] = harness.calls.expired_at
    assert valid_until <= fired < valid_until + timedelta(seconds=5)


async def test_cancel_signal_cancels_with_the_reason(harness: Harness) -> None:
    handle, _ = await harness.start(timedelta(days=2))
    await handle.signal(TicketWorkflow.cancel, CancelTicket(reason="rider no-show", by="ops_7"))
    result = await handle.result()
    assert result.status == "CANCELLED"
    [request] = harness.calls.cancelled
    assert (request.reason, request.actor) == ("rider no-show", "temporal-ui:ops_7")
    assert harness.calls.expired_at == []


async def test_a_verified_ticket_does_not_expire(harness: Harness) -> None:
    handle, _ = await harness.start(timedelta(hours=3))
    harness.calls.row_status = "USED"
    await handle.signal(TicketWorkflow.status_changed, TicketStatusChanged(status="USED"))
    result = await handle.result()
    assert result.status == "USED"
    assert harness.calls.expired_at == []


async def test_a_missed_used_signal_still_ends_used_not_expired(harness: Harness) -> None:
    handle, _ = await harness.start(timedelta(minutes=30))
    harness.calls.row_status = "USED"  # verified by the API, but the signal was lost
    result = await handle.result()
    assert result.status == "USED"
    assert len(harness.calls.expired_at) == 1


async def test_status_query_answers_while_active(harness: Harness) -> None:
    handle, valid_until = await harness.start(timedelta(days=1))
    status = await handle.query(TicketWorkflow.status)
    assert status["status"] == "ACTIVE"
    assert status["valid_until"] == valid_until.isoformat()
    await handle.signal(TicketWorkflow.cancel, CancelTicket())
    assert (await handle.result()).status == "CANCELLED"

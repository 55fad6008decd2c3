"""A full batch of waiting tickets starts an anchoring run early, through the Schedule."""

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Schedule, ScheduleHandle, ScheduleSpec
from temporalio.testing import WorkflowEnvironment

from api.anchoring_trigger import EarlyAnchoring
from integrations.temporal import LazyClient
from schedules import PeriodicJob, build_schedule
from tests.fixtures.tickets import issue_tickets
from workflows.anchoring import AnchorTicketsWorkflow
from workflows.types import AnchorRunInput

pytestmark = pytest.mark.integration


async def test_a_full_batch_triggers_the_schedule_once(
    local_temporal: WorkflowEnvironment, db: async_sessionmaker[AsyncSession]
) -> None:
    client = local_temporal.client
    schedule_id = f"anchoring-{uuid.uuid4()}"
    # Nobody polls this queue: the test only sees that the Schedule took an action.
    job = PeriodicJob(
        schedule_id,
        AnchorTicketsWorkflow.run,
        AnchorRunInput(),
        ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
    )
    schedule: Schedule = build_schedule(job, f"nobody-{uuid.uuid4()}")
    handle: ScheduleHandle = await client.create_schedule(schedule_id, schedule)
    temporal = LazyClient(
        local_temporal.client.service_client.config.target_host, "default", tls=False, api_key=None
    )
    early = EarlyAnchoring(db, temporal, batch_size=3, schedule_id=schedule_id)

    await issue_tickets(db, 2)
    assert await early.check() is False
    await issue_tickets(db, 1)
    assert await early.check() is True
    assert await early.check() is False  # a run was just triggered: no second one yet

    # The Schedule takes the triggered action asynchronously.
    for _ in range(100):
        if (await handle.describe()).info.num_actions:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).info.num_actions == 1
    await handle.delete()

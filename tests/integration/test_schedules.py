"""`tollgate schedules sync` against a real Temporal dev server: create, then update in place."""

from temporalio.client import ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

import schedules
from integrations.temporal import register_search_attributes
from workflows import search_attributes


async def test_sync_creates_then_updates_and_keeps_a_pause(
    local_temporal: WorkflowEnvironment,
) -> None:
    client = local_temporal.client
    first = await schedules.sync(client, "queue-a")
    assert set(first.values()) == {"created"}
    assert set(first) == {job.schedule_id for job in schedules.JOBS}

    handle = client.get_schedule_handle("idempotency-keys-purge")
    await handle.pause(note="operator paused it in the UI")
    second = await schedules.sync(client, "queue-b")
    assert set(second.values()) == {"updated"}

    described = await handle.describe()
    assert described.schedule.state.paused is True
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    action = described.schedule.action
    assert getattr(action, "task_queue", None) == "queue-b"


async def test_search_attributes_registration_is_idempotent(
    local_temporal: WorkflowEnvironment,
) -> None:
    client = local_temporal.client
    await register_search_attributes(client, "default", search_attributes.ALL)
    assert await register_search_attributes(client, "default", search_attributes.ALL) == []

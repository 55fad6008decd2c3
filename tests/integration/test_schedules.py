"""`tollgate schedules sync` against a real Temporal dev server: create, then update in place."""

from datetime import timedelta

from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

import schedules
from integrations.temporal import register_search_attributes
from settings import Settings
from workflows import search_attributes


async def test_sync_creates_then_updates_and_keeps_a_pause(
    local_temporal: WorkflowEnvironment,
) -> None:
    client = local_temporal.client
    first = await schedules.sync(client, Settings(task_queue="queue-a"))
    assert set(first.values()) == {"created"}
    assert set(first) == {job.schedule_id for job in schedules.jobs(Settings())}

    handle = client.get_schedule_handle("idempotency-keys-purge")
    await handle.pause(note="operator paused it in the UI")
    second = await schedules.sync(client, Settings(task_queue="queue-b", anchor_interval_minutes=7))
    assert set(second.values()) == {"updated"}

    described = await handle.describe()
    assert described.schedule.state.paused is True
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    action = described.schedule.action
    assert getattr(action, "task_queue", None) == "queue-b"
    anchoring = await client.get_schedule_handle(schedules.ANCHORING_SCHEDULE).describe()
    assert anchoring.schedule.spec.intervals[0].every == timedelta(minutes=7)


async def test_search_attributes_registration_is_idempotent(
    local_temporal: WorkflowEnvironment,
) -> None:
    client = local_temporal.client
    await register_search_attributes(client, "default", search_attributes.ALL)
    assert await register_search_attributes(client, "default", search_attributes.ALL) == []


async def test_anchoring_schedules_run_every_15_and_5_minutes_and_skip_overlaps(
    local_temporal: WorkflowEnvironment,
) -> None:
    client = local_temporal.client
    await schedules.sync(client, Settings(task_queue="queue-a", anchor_batch_size=250))

    anchoring = await client.get_schedule_handle(schedules.ANCHORING_SCHEDULE).describe()
    assert anchoring.schedule.spec.intervals[0].every == timedelta(minutes=15)
    assert anchoring.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    action = anchoring.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "AnchorTickets"
    assert action.args[0].data is not None and b'"max_leaves":250' in action.args[0].data

    confirmations = await client.get_schedule_handle("anchor-confirmations").describe()
    assert confirmations.schedule.spec.intervals[0].every == timedelta(minutes=5)
    assert confirmations.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP

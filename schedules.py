"""Temporal Schedules of the project's periodic jobs, created or updated idempotently.

``tollgate schedules sync`` (run by the worker at start) makes the server match this list.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.tickets import PurgeExpiredTicketsWorkflow
from workflows.types import PurgeInput


@dataclass(frozen=True)
class PeriodicJob:
    schedule_id: str
    workflow: Any
    argument: Any
    spec: ScheduleSpec
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP
    catchup_window: timedelta = timedelta(hours=1)


JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "idempotency-keys-purge",
        PurgeExpiredIdempotencyKeysWorkflow.run,
        PurgeInput(),
        ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
    ),
    PeriodicJob(
        "tickets-cleanup",
        PurgeExpiredTicketsWorkflow.run,
        PurgeInput(),
        ScheduleSpec(cron_expressions=["0 2 * * *"], time_zone_name="UTC"),
    ),
)


def build_schedule(job: PeriodicJob, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            job.workflow, job.argument, id=f"{job.schedule_id}-run", task_queue=task_queue
        ),
        spec=job.spec,
        policy=SchedulePolicy(overlap=job.overlap, catchup_window=job.catchup_window),
    )


async def sync(client: Client, task_queue: str) -> dict[str, str]:
    """Create missing schedules and update existing ones; returns what it did per id."""
    done: dict[str, str] = {}
    for job in JOBS:
        schedule = build_schedule(job, task_queue)
        try:
            await client.create_schedule(job.schedule_id, schedule)
            done[job.schedule_id] = "created"
        except ScheduleAlreadyRunningError:

            def replace(current: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                # Keep what operators set in the UI (paused, notes); replace the definition.
                new.state = current.description.schedule.state
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(job.schedule_id).update(replace)
            done[job.schedule_id] = "updated"
    return done

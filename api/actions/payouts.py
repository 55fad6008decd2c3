"""Triggering and cancelling payout schedules, one or many: checked against the service's
rules, then signalled to the schedule's workflow, which alone changes the row."""

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import ADMIN_ROLES, PLATFORM_ADMIN_ONLY, allow
from api.workflow_calls import BulkOut, WorkflowStart, run_bulk, signal
from domain.actors import Actor
from domain.errors import ValidationError
from domain.escrow import PayoutStatus, TriggerEvent, check_payout_move
from models.escrow import PayoutSchedule
from services import payouts
from settings import Settings
from workflows.types import CancelPayout, PayoutScheduleInput, TriggerPayout

TRIGGER_ROLES = ADMIN_ROLES
CANCEL_ROLES = PLATFORM_ADMIN_ONLY


def workflow_id(schedule_id: uuid.UUID) -> str:
    return f"payout-schedule-{schedule_id}"


def schedule_workflow(schedule: PayoutSchedule, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="PayoutSchedule",
        id=workflow_id(schedule.id),
        arg=PayoutScheduleInput(
            schedule_id=schedule.id,
            scheduled_for=schedule.scheduled_for,
            trigger_event=schedule.trigger_event,
            max_attempts=schedule.max_attempts,
            backoff_seconds=schedule.backoff_seconds,
            stripe_task_queue=settings.stripe_task_queue,
        ),
        task_queue=settings.task_queue,
    )


async def _trigger(
    request: Request,
    schedule: PayoutSchedule,
    event: TriggerEvent,
    actor: Actor,
    settings: Settings,
) -> None:
    """Refuse what the workflow would not act on: another schedule's event, or a schedule
    that is not pending or failed."""
    if event is not TriggerEvent.MANUAL and event.value != schedule.trigger_event:
        raise ValidationError(
            f"this schedule pays on {schedule.trigger_event} (or manual), not {event.value}",
            code="trigger_event_mismatch",
            param="event",
        )
    check_payout_move(PayoutStatus(schedule.status), PayoutStatus.PROCESSING)
    trigger = TriggerPayout(event=event.value, by=actor.id)
    await signal(request, schedule_workflow(schedule, settings), "trigger", trigger)


async def trigger(
    request: Request,
    session: AsyncSession,
    schedule_id: uuid.UUID,
    *,
    event: TriggerEvent,
    actor: Actor,
    settings: Settings,
) -> PayoutSchedule:
    """Pay now: ``manual`` always, otherwise the schedule's own trigger event. Returns the
    schedule as it is now (its workflow moves it to processing)."""
    allow(actor, TRIGGER_ROLES)
    schedule = await payouts.get(session, schedule_id)
    await _trigger(request, schedule, event, actor, settings)
    return schedule


async def cancel(
    request: Request,
    session: AsyncSession,
    schedule_id: uuid.UUID,
    *,
    reason: str,
    actor: Actor,
    settings: Settings,
) -> tuple[PayoutSchedule, bool]:
    """Cancel a pending or failed schedule (a Conflict while processing or once completed).
    Returns the schedule and whether a cancel was sent (False: it was cancelled already)."""
    allow(actor, CANCEL_ROLES)
    schedule = await payouts.get(session, schedule_id)
    status = PayoutStatus(schedule.status)
    if status is PayoutStatus.CANCELLED:
        return schedule, False
    check_payout_move(status, PayoutStatus.CANCELLED)
    cancel = CancelPayout(reason=reason, by=actor.id)
    await signal(request, schedule_workflow(schedule, settings), "cancel", cancel)
    return schedule, True


async def bulk_trigger(
    request: Request,
    session: AsyncSession,
    ids: list[str],
    *,
    event: TriggerEvent,
    actor: Actor,
    settings: Settings,
) -> BulkOut:
    """Trigger each schedule; every id gets its own result."""
    allow(actor, TRIGGER_ROLES)

    async def one(schedule_id: uuid.UUID) -> None:
        schedule = await payouts.get(session, schedule_id)
        await _trigger(request, schedule, event, actor, settings)

    return await run_bulk(ids, one)

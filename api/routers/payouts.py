"""Payout schedules: list, read, create, reschedule, statistics and export. Triggering and
cancelling are done by the schedule's workflow: the API checks the move against the
service's rules first (a refused one is a 4xx and nothing is sent), then signals it and
answers 202 with the schedule as it is now. Those checks and signals are
``api.actions.payouts``, which the admin console calls too."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import payouts as actions
from api.actions.payouts import schedule_workflow, workflow_id
from api.csv_export import csv_export
from api.deps import Admin, PlatformAdmin, Session, get_settings
from api.fields import Amount, Currency, Party, PlacementId, money
from api.pagination import Page, PageQuery, paginate, uuid_cursor
from api.workflow_calls import BULK_MAX, BulkId, BulkOut, signal, start_after_commit
from domain.errors import NotFound
from domain.escrow import PayoutStatus, TriggerEvent
from models.escrow import PayoutSchedule
from services import escrow, payouts
from settings import Settings
from workflows.types import ReschedulePayout

router = APIRouter(prefix="/payout-schedules", tags=["payouts"])

AppSettings = Annotated[Settings, Depends(get_settings)]

StripeAccount = Annotated[
    str, Field(max_length=100, pattern=r"^acct_[A-Za-z0-9]+$", description="Stripe account id")
]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payee_id: Party
    destination: StripeAccount
    amount: Amount
    currency: Currency
    trigger_event: TriggerEvent
    scheduled_for: AwareDatetime
    max_attempts: int = Field(3, ge=1, le=20)
    backoff_seconds: int = Field(60, ge=1, le=86_400)
    placement_id: PlacementId | None = None
    hold_id: uuid.UUID | None = Field(None, description="The escrow hold that funds the payout")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScheduleOut(BaseModel):
    id: uuid.UUID
    object: str = "payout_schedule"
    payee_id: str
    destination: str
    amount: int
    currency: str
    trigger_event: TriggerEvent
    scheduled_for: datetime
    status: PayoutStatus
    retry_count: int
    last_error: str | None
    run_number: int
    max_attempts: int
    backoff_seconds: int
    placement_id: str | None
    hold_id: uuid.UUID | None
    metadata: dict[str, Any]
    triggered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    workflow_id: str


def schedule_out(schedule: PayoutSchedule) -> ScheduleOut:
    return ScheduleOut(
        id=schedule.id,
        payee_id=schedule.payee_id,
        destination=schedule.destination,
        amount=schedule.amount,
        currency=schedule.currency,
        trigger_event=TriggerEvent(schedule.trigger_event),
        scheduled_for=schedule.scheduled_for,
        status=PayoutStatus(schedule.status),
        retry_count=schedule.retry_count,
        last_error=schedule.last_error,
        run_number=schedule.run_number,
        max_attempts=schedule.max_attempts,
        backoff_seconds=schedule.backoff_seconds,
        placement_id=schedule.placement_id,
        hold_id=schedule.hold_id,
        metadata=schedule.metadata_,
        triggered_at=schedule.triggered_at,
        completed_at=schedule.completed_at,
        cancelled_at=schedule.cancelled_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
        workflow_id=workflow_id(schedule.id),
    )


class ScheduleFilters(BaseModel):
    status: PayoutStatus | None
    payee_id: str | None
    trigger_event: TriggerEvent | None


def schedule_filters(
    status: PayoutStatus | None = None,
    payee_id: Annotated[str | None, Query(max_length=200)] = None,
    trigger_event: TriggerEvent | None = None,
) -> ScheduleFilters:
    return ScheduleFilters(status=status, payee_id=payee_id, trigger_event=trigger_event)


Filters = Annotated[ScheduleFilters, Depends(schedule_filters)]


async def _list(
    session: AsyncSession,
    filters: ScheduleFilters,
    limit: int,
    starting_after: uuid.UUID | None,
    schedule_id: uuid.UUID | None = None,
) -> Sequence[PayoutSchedule]:
    return await payouts.list_schedules(
        session,
        limit=limit,
        starting_after=starting_after,
        schedule_id=schedule_id,
        status=filters.status.value if filters.status else None,
        payee_id=filters.payee_id,
        trigger_event=filters.trigger_event.value if filters.trigger_event else None,
    )


@router.get("")
async def list_schedules(
    session: Session,
    _: Admin,
    params: PageQuery,
    filters: Filters,
    schedule_id: Annotated[uuid.UUID | None, Query(alias="id", description="Exact id")] = None,
) -> Page[ScheduleOut]:
    """Newest first."""
    cursor = uuid_cursor(params.starting_after)
    rows = await _list(session, filters, params.limit, cursor, schedule_id)
    return paginate(rows, params.limit, schedule_out, lambda item: item.id)


class ScheduleStats(BaseModel):
    object: str = "payout_schedule_stats"
    count_by_status: dict[str, int]
    amount_by_status: dict[str, dict[str, int]] = Field(description="Status → currency → amount")
    due: int = Field(description="Pending schedules whose date has passed")


@router.get("/stats")
async def schedule_stats(session: Session, _: Admin) -> ScheduleStats:
    found = await payouts.stats(session, now=datetime.now(UTC))
    return ScheduleStats(
        count_by_status=found.count_by_status,
        amount_by_status=found.amount_by_status,
        due=found.due,
    )


SCHEDULE_COLUMNS = (
    "id",
    "payee_id",
    "destination",
    "amount",
    "currency",
    "trigger_event",
    "scheduled_for",
    "status",
    "retry_count",
    "last_error",
    "run_number",
    "placement_id",
    "hold_id",
    "created_at",
    "triggered_at",
    "completed_at",
    "cancelled_at",
)


def _schedule_row(schedule: PayoutSchedule) -> tuple[Any, ...]:
    view = schedule_out(schedule).model_dump()
    return tuple(view[column] for column in SCHEDULE_COLUMNS)


@router.get(
    "/export.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}}
)
async def export_schedules(request: Request, _: Admin, filters: Filters) -> StreamingResponse:
    """Every schedule matching the filters, newest first, with a header row."""

    async def fetch(
        session: AsyncSession, limit: int, after: uuid.UUID | None
    ) -> Sequence[PayoutSchedule]:
        return await _list(session, filters, limit, after)

    return csv_export(
        request, "payout-schedules.csv", SCHEDULE_COLUMNS, fetch, _schedule_row, lambda s: s.id
    )


@router.post("", status_code=201)
async def create_schedule(
    body: ScheduleIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> ScheduleOut:
    """A pending schedule; its workflow starts once committed."""
    if body.hold_id is not None:
        try:
            await escrow.get(session, body.hold_id)
        except NotFound as exc:
            raise NotFound(exc.message, param="hold_id") from exc
    schedule = await payouts.create_schedule(
        session,
        payee_id=body.payee_id,
        destination=body.destination,
        money=money(body.amount, body.currency),
        trigger_event=body.trigger_event,
        scheduled_for=body.scheduled_for,
        actor=actor,
        max_attempts=body.max_attempts,
        backoff_seconds=body.backoff_seconds,
        placement_id=body.placement_id,
        hold_id=body.hold_id,
        metadata=body.metadata,
    )
    start_after_commit(request, schedule_workflow(schedule, settings))
    return schedule_out(schedule)


@router.get("/{schedule_id}")
async def get_schedule(schedule_id: uuid.UUID, session: Session, _: Admin) -> ScheduleOut:
    return schedule_out(await payouts.get(session, schedule_id))


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled_for: AwareDatetime


@router.patch("/{schedule_id}")
async def reschedule(
    schedule_id: uuid.UUID,
    body: RescheduleIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> ScheduleOut:
    """Move the date of a pending schedule (any other status is a 409) and tell its
    workflow; if the workflow cannot be told, nothing changes (503)."""
    schedule = await payouts.reschedule(
        session, schedule_id, scheduled_for=body.scheduled_for, actor=actor
    )
    await signal(
        request,
        schedule_workflow(schedule, settings),
        "reschedule",
        ReschedulePayout(scheduled_for=body.scheduled_for, by=actor.id),
    )
    return schedule_out(schedule)


@router.delete("/{schedule_id}", status_code=202)
async def cancel_schedule(
    schedule_id: uuid.UUID,
    request: Request,
    response: Response,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
    reason: Annotated[str, Query(min_length=1, max_length=500)] = "cancelled by request",
) -> ScheduleOut:
    """Cancel a pending or failed schedule; 409 while processing or once completed. One
    already cancelled is answered 200 as it is."""
    schedule, sent = await actions.cancel(
        request, session, schedule_id, reason=reason, actor=actor, settings=settings
    )
    if not sent:
        response.status_code = 200
    return schedule_out(schedule)


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: TriggerEvent = TriggerEvent.MANUAL


@router.post("/{schedule_id}/trigger", status_code=202)
async def trigger_schedule(
    schedule_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    body: TriggerIn | None = None,
) -> ScheduleOut:
    """Pay now: ``manual`` always, otherwise the schedule's own trigger event."""
    event = (body or TriggerIn()).event
    schedule = await actions.trigger(
        request, session, schedule_id, event=event, actor=actor, settings=settings
    )
    return schedule_out(schedule)


class BulkTriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[BulkId] = Field(min_length=1, max_length=BULK_MAX)
    event: TriggerEvent = TriggerEvent.MANUAL


@router.post("/bulk-trigger")
async def bulk_trigger(
    body: BulkTriggerIn, request: Request, session: Session, actor: Admin, settings: AppSettings
) -> BulkOut:
    """Trigger each schedule; every id gets its own result."""
    return await actions.bulk_trigger(
        request, session, body.ids, event=body.event, actor=actor, settings=settings
    )

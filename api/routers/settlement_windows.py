"""Settlement windows per rail: when each rail settles the transfers queued for it.

Anyone signed in reads a rail's windows, the next window, and the window (with its cut-off)
a transfer submitted now would settle in; platform admins configure them (``PUT``, as data:
frequency, local times, cut-off, time zone, holiday calendar), remove them (the rail then
sends at once), and settle a rail's queue now (signal ``settle_now`` to
``settlement-window-{rail}``). Each settled window is recorded (``/runs``)."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.actions import settlement_windows as actions
from api.deps import CurrentActor, PlatformAdmin, Session, get_settings
from api.pagination import Page, PageQuery, paginate, row_cursor
from domain.rails import Rail
from domain.settlement_windows import WindowConfig
from models.settlement_windows import SettlementRun
from services import settlement_windows
from settings import Settings

router = APIRouter(prefix="/settlement-windows", tags=["settlement windows"])

AppSettings = Annotated[Settings, Depends(get_settings)]


class WindowConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frequency: Literal["hourly", "fixed_times", "end_of_day"]
    times: list[str] = Field(
        default_factory=list,
        description='Local times "HH:MM", increasing: none for hourly, one for end_of_day',
    )
    cutoff_minutes: int = Field(
        description="A transfer received later than this before a window waits for the next"
    )
    time_zone: str = Field(description="IANA time zone, e.g. America/New_York")
    calendar: Literal["us_fed", "target", "none"] = Field(
        description="Business days: the US Federal Reserve's, TARGET's (EUR), or every day"
    )


class WindowConfigOut(WindowConfigIn):
    rail: str


class QueueOut(BaseModel):
    count: int
    amounts: dict[str, int] = Field(description="Queued amount per currency, minor units")
    next_window_at: datetime | None = Field(description="The earliest window a queued one awaits")


class WindowOut(BaseModel):
    object: str = "settlement_window"
    rail: str
    config: WindowConfigOut | None = Field(description="None: the rail sends at once")
    next_window_at: datetime | None
    submitted_now_settles_at: datetime | None = Field(
        description="The window a transfer submitted now settles in (None: sent at once)"
    )
    submitted_now_cutoff_at: datetime | None = Field(
        description="Submit before this to be in that window"
    )
    queue: QueueOut


class SettleNowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(actions.DEFAULT_REASON, min_length=1, max_length=500)


class RunOut(BaseModel):
    id: uuid.UUID
    object: str = "settlement_run"
    rail: str
    window_at: datetime
    trigger: str
    requested_by: str
    total_count: int
    succeeded_count: int
    failed_count: int
    open_count: int
    started_at: datetime
    completed_at: datetime


def _config_out(config: WindowConfig) -> WindowConfigOut:
    return WindowConfigOut.model_validate(config.to_dict())


def window_out(view: settlement_windows.WindowView) -> WindowOut:
    return WindowOut(
        rail=view.rail,
        config=_config_out(view.config) if view.config else None,
        next_window_at=view.next_window_at,
        submitted_now_settles_at=view.submitted_now_settles_at,
        submitted_now_cutoff_at=view.submitted_now_cutoff_at,
        queue=QueueOut(
            count=view.queue.count,
            amounts=view.queue.amounts,
            next_window_at=view.queue.next_window_at,
        ),
    )


def run_out(run: SettlementRun) -> RunOut:
    return RunOut(
        id=run.id,
        rail=run.rail,
        window_at=run.window_at,
        trigger=run.trigger,
        requested_by=run.requested_by,
        total_count=run.total_count,
        succeeded_count=run.succeeded_count,
        failed_count=run.failed_count,
        open_count=run.open_count,
        started_at=run.started_at,
        completed_at=run.completed_at,
    )


@router.get("")
async def list_windows(session: Session, _: CurrentActor) -> list[WindowOut]:
    """Every rail's windows and queue."""
    return [window_out(await settlement_windows.view(session, rail)) for rail in Rail]


@router.get("/{rail}")
async def get_window(rail: str, session: Session, _: CurrentActor) -> WindowOut:
    """The rail's windows, its next window, and the window (and cut-off) a transfer
    submitted now settles in."""
    return window_out(await settlement_windows.view(session, rail))


@router.put("/{rail}")
async def put_window(
    rail: str, body: WindowConfigIn, session: Session, actor: PlatformAdmin
) -> WindowOut:
    """Configure the rail's windows (replacing any). Transfers queued already keep the
    window they were given; the new windows apply to transfers submitted from now on."""
    await settlement_windows.put_config(session, rail, body.model_dump(), actor=actor)
    return window_out(await settlement_windows.view(session, rail))


@router.delete("/{rail}", status_code=204)
async def delete_window(rail: str, session: Session, actor: PlatformAdmin) -> Response:
    """The rail sends at once from now on; transfers queued already keep their window."""
    await settlement_windows.delete_config(session, rail, actor=actor)
    return Response(status_code=204)


@router.post("/{rail}/settle-now", status_code=202)
async def settle_now(
    rail: str,
    body: SettleNowIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> WindowOut:
    """Send every transfer queued for the rail now, without waiting for its window: signal
    ``settle_now`` (starting the rail's workflow if needed). 503 if Temporal is down."""
    view = await actions.settle_now(
        request, session, rail, reason=body.reason, actor=actor, settings=settings
    )
    return window_out(view)


@router.get("/{rail}/runs")
async def list_runs(
    rail: str, session: Session, _: CurrentActor, params: PageQuery
) -> Page[RunOut]:
    """The rail's settled windows, newest first."""
    after = await row_cursor(
        params.starting_after,
        lambda run_id: settlement_windows.get_run(session, run_id),
        lambda run: run.rail == rail,
    )
    rows = await settlement_windows.list_runs(session, rail, limit=params.limit, after=after)
    return paginate(rows, params.limit, run_out, lambda item: item.id)

"""Escrow holds: list, read, create, statistics and export. The changes after creation
(release, refund, cancel, extend, dispute, resolve, approve) are made by the hold's workflow:
the API checks them against the service's rules first, so a refused one is a 4xx and nothing
is sent, then signals the workflow and answers 202 with the hold as it is now. Release,
extend and cancel are ``api.actions.escrow``, which the admin console calls too."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import escrow as actions
from api.actions.escrow import hold_workflow, workflow_id
from api.csv_export import csv_export
from api.deps import Admin, PlatformAdmin, Session, get_settings
from api.fields import Amount, Currency, Party, PlacementId, money
from api.pagination import Page, PageQuery, paginate, uuid_cursor
from api.workflow_calls import BULK_MAX, BulkId, BulkOut, signal, start_after_commit
from domain.escrow import HoldReason, HoldStatus
from models.escrow import EscrowHold
from services import escrow
from settings import Settings
from workflows.types import ApproveHold, DisputeHold, HoldSignal

router = APIRouter(prefix="/escrow-holds", tags=["escrow"])

AppSettings = Annotated[Settings, Depends(get_settings)]


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payer_id: Party
    payee_id: Party
    amount: Amount
    currency: Currency
    reason: HoldReason
    release_at: AwareDatetime
    required_approvals: int = Field(0, ge=0, le=20)
    placement_id: PlacementId | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class HoldOut(BaseModel):
    id: uuid.UUID
    object: str = "escrow_hold"
    payer_id: str
    payee_id: str
    amount: int
    currency: str
    released_amount: int
    refunded_amount: int
    held_amount: int
    reason: HoldReason
    status: HoldStatus
    release_at: datetime
    dispute_reason: str | None
    required_approvals: int
    approvals: list[str]
    placement_id: str | None
    metadata: dict[str, Any]
    released_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    workflow_id: str


def hold_out(hold: EscrowHold) -> HoldOut:
    return HoldOut(
        id=hold.id,
        payer_id=hold.payer_id,
        payee_id=hold.payee_id,
        amount=hold.amount,
        currency=hold.currency,
        released_amount=hold.released_amount,
        refunded_amount=hold.refunded_amount,
        held_amount=hold.held_amount,
        reason=HoldReason(hold.reason),
        status=HoldStatus(hold.status),
        release_at=hold.release_at,
        dispute_reason=hold.dispute_reason,
        required_approvals=hold.required_approvals,
        approvals=list(hold.approvals),
        placement_id=hold.placement_id,
        metadata=hold.metadata_,
        released_at=hold.released_at,
        cancelled_at=hold.cancelled_at,
        created_at=hold.created_at,
        updated_at=hold.updated_at,
        workflow_id=workflow_id(hold.id),
    )


class HoldFilters(BaseModel):
    status: HoldStatus | None
    payee_id: str | None
    payer_id: str | None
    due_before: datetime | None


def hold_filters(
    status: HoldStatus | None = None,
    payee_id: Annotated[str | None, Query(max_length=200)] = None,
    payer_id: Annotated[str | None, Query(max_length=200)] = None,
    due_before: Annotated[
        AwareDatetime | None, Query(description="Release date before this instant")
    ] = None,
) -> HoldFilters:
    return HoldFilters(status=status, payee_id=payee_id, payer_id=payer_id, due_before=due_before)


Filters = Annotated[HoldFilters, Depends(hold_filters)]


async def _list(
    session: AsyncSession,
    filters: HoldFilters,
    limit: int,
    starting_after: uuid.UUID | None,
    hold_id: uuid.UUID | None = None,
) -> Sequence[EscrowHold]:
    return await escrow.list_holds(
        session,
        limit=limit,
        starting_after=starting_after,
        hold_id=hold_id,
        status=filters.status.value if filters.status else None,
        payee_id=filters.payee_id,
        payer_id=filters.payer_id,
        due_before=filters.due_before,
    )


@router.get("")
async def list_holds(
    session: Session,
    _: Admin,
    params: PageQuery,
    filters: Filters,
    hold_id: Annotated[uuid.UUID | None, Query(alias="id", description="Exact id")] = None,
) -> Page[HoldOut]:
    """Newest first."""
    rows = await _list(session, filters, params.limit, uuid_cursor(params.starting_after), hold_id)
    return paginate(rows, params.limit, hold_out, lambda item: item.id)


class HoldStats(BaseModel):
    object: str = "escrow_hold_stats"
    count_by_status: dict[str, int]
    held_by_currency: dict[str, int] = Field(description="Still held, active or partly released")
    due_for_release: int = Field(description="Holding holds whose release date has passed")
    released_today: int = Field(description="Releases since midnight UTC")


@router.get("/stats")
async def hold_stats(session: Session, _: Admin) -> HoldStats:
    return HoldStats(**await escrow.stats(session, now=datetime.now(UTC)))


HOLD_COLUMNS = (
    "id",
    "payer_id",
    "payee_id",
    "amount",
    "currency",
    "released_amount",
    "refunded_amount",
    "held_amount",
    "reason",
    "status",
    "release_at",
    "dispute_reason",
    "required_approvals",
    "approvals",
    "placement_id",
    "created_at",
    "released_at",
    "cancelled_at",
)


def _hold_row(hold: EscrowHold) -> tuple[Any, ...]:
    view = hold_out(hold).model_dump()
    view["approvals"] = ";".join(hold.approvals)
    return tuple(view[column] for column in HOLD_COLUMNS)


@router.get(
    "/export.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}}
)
async def export_holds(request: Request, _: Admin, filters: Filters) -> StreamingResponse:
    """Every hold matching the filters, newest first, with a header row."""

    async def fetch(
        session: AsyncSession, limit: int, after: uuid.UUID | None
    ) -> Sequence[EscrowHold]:
        return await _list(session, filters, limit, after)

    return csv_export(request, "escrow-holds.csv", HOLD_COLUMNS, fetch, _hold_row, lambda h: h.id)


@router.post("", status_code=201)
async def create_hold(
    body: HoldIn, request: Request, session: Session, actor: PlatformAdmin, settings: AppSettings
) -> HoldOut:
    """Fund the hold from the payer's account and start its workflow once committed."""
    hold = await escrow.create_hold(
        session,
        payer_id=body.payer_id,
        payee_id=body.payee_id,
        money=money(body.amount, body.currency),
        reason=body.reason,
        release_at=body.release_at,
        actor=actor,
        required_approvals=body.required_approvals,
        placement_id=body.placement_id,
        metadata=body.metadata,
    )
    start_after_commit(request, hold_workflow(hold, settings))
    return hold_out(hold)


@router.get("/{hold_id}")
async def get_hold(hold_id: uuid.UUID, session: Session, _: Admin) -> HoldOut:
    return hold_out(await escrow.get(session, hold_id))


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = Field(None, description="Part of what is held; default: all of it")


@router.post("/{hold_id}/release", status_code=202)
async def release_hold(
    hold_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
    body: ReleaseIn | None = None,
) -> HoldOut:
    """Release all that is held, or ``amount`` of it, to the payee now."""
    amount = body.amount if body else None
    hold = await actions.release(
        request, session, hold_id, amount=amount, actor=actor, settings=settings
    )
    return hold_out(hold)


class BulkReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[BulkId] = Field(min_length=1, max_length=BULK_MAX)


@router.post("/bulk-release")
async def bulk_release(
    body: BulkReleaseIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> BulkOut:
    """Release each hold in full; every id gets its own result."""
    return await actions.bulk_release(request, session, body.ids, actor=actor, settings=settings)


class ExtendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release_at: AwareDatetime = Field(description="Later than the current release date")


@router.patch("/{hold_id}", status_code=202)
@router.post("/{hold_id}/extend", status_code=202)
async def extend_hold(
    hold_id: uuid.UUID,
    body: ExtendIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Only ``release_at`` changes, and only later (an earlier release is ``release``)."""
    hold = await actions.extend(
        request, session, hold_id, release_at=body.release_at, actor=actor, settings=settings
    )
    return hold_out(hold)


@router.delete("/{hold_id}", status_code=202)
async def cancel_hold(
    hold_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Cancel the hold: what is still held goes back to the payer."""
    hold = await actions.cancel(request, session, hold_id, actor=actor, settings=settings)
    return hold_out(hold)


@router.post("/{hold_id}/refund", status_code=202)
async def refund_hold(
    hold_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Return what is still held to the payer."""
    hold = await actions.holding(session, hold_id)
    await signal(request, hold_workflow(hold, settings), "refund_to_payer", HoldSignal(by=actor.id))
    return hold_out(hold)


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


@router.post("/{hold_id}/dispute", status_code=202)
async def dispute_hold(
    hold_id: uuid.UUID,
    body: DisputeIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Stop the release until ``resolve``."""
    hold = await actions.holding(session, hold_id)
    dispute = DisputeHold(reason=body.reason.strip(), by=actor.id)
    await signal(request, hold_workflow(hold, settings), "dispute", dispute)
    return hold_out(hold)


@router.post("/{hold_id}/resolve", status_code=202)
async def resolve_hold(
    hold_id: uuid.UUID,
    request: Request,
    response: Response,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Lift the dispute; a hold that is not disputed is answered 200 as it is."""
    hold = await actions.holding(session, hold_id)
    if hold.dispute_reason is None:
        response.status_code = 200
    else:
        await signal(request, hold_workflow(hold, settings), "resolve", HoldSignal(by=actor.id))
    return hold_out(hold)


@router.post("/{hold_id}/approve", status_code=202)
async def approve_hold(
    hold_id: uuid.UUID,
    request: Request,
    response: Response,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> HoldOut:
    """Approve the release as the caller; approvals count distinct approvers, so approving
    twice is answered 200 as it is."""
    hold = await actions.holding(session, hold_id)
    if actor.id in hold.approvals:
        response.status_code = 200
    else:
        approve = ApproveHold(approver=actor.id)
        await signal(request, hold_workflow(hold, settings), "approve", approve)
    return hold_out(hold)

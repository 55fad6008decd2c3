"""Reconciliation of the ledger against the rails (platform and billing admins).

``POST /reconciliation/runs`` (platform admins) reconciles a period (default: the last 24
hours) on demand: the run is stored ``running`` and ``reconciliation-{id}`` runs it once
committed; a daily Schedule (``reconciliation-daily``) reconciles the previous UTC day.
A run matches the ledger's succeeded transfers and payouts against Stripe's balance
transactions and the chain's token ``Transfer`` events from the platform's sender, and
records its counts, totals and match rate; what did not match is a discrepancy
(``missing_settlement``, ``amount_mismatch``, ``duplicate``, ``unexpected_external``), listed
and exported as CSV, and resolved by an admin with a note."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import reconciliation as actions
from api.csv_export import csv_export
from api.deps import Admin, PlatformAdmin, Session, get_settings
from api.pagination import Page, PageQuery, paginate, row_cursor
from api.workflow_calls import WorkflowStart, start_after_commit
from domain.reconciliation import (
    DiscrepancyStatus,
    DiscrepancyType,
    RunStatus,
    RunTrigger,
    Source,
)
from models.reconciliation import ReconciliationDiscrepancy, ReconciliationRun
from schedules import reconciliation_input
from services import reconciliation
from services.reconciliation import amount
from settings import Settings, reconciliation_sources

router = APIRouter(prefix="/reconciliation", tags=["reconciliation"])

AppSettings = Annotated[Settings, Depends(get_settings)]
DEFAULT_PERIOD = timedelta(hours=24)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period_start: AwareDatetime | None = Field(
        None, description="Start of the period (default: 24 hours before its end)"
    )
    period_end: AwareDatetime | None = Field(
        None, description="End of the period, excluded (default: now)"
    )


class SourceResultOut(BaseModel):
    ledger_count: int
    external_count: int
    matched_count: int
    discrepancy_count: int
    totals: dict[str, dict[str, int]]


class RunOut(BaseModel):
    id: uuid.UUID
    object: str = "reconciliation_run"
    status: RunStatus
    trigger: RunTrigger
    period_start: datetime
    period_end: datetime
    sources: list[Source]
    started_by: str
    ledger_count: int = Field(description="Ledger transfers and payouts of the period")
    external_count: int = Field(description="The providers' records of the period")
    matched_count: int
    discrepancy_count: int
    match_rate: float | None = Field(
        description="Percentage of items (matched pairs and discrepancies) that matched, "
        "rounded down; set once completed"
    )
    totals: dict[str, dict[str, int]] = Field(
        description="By currency (the chain's in base units of its token, as USDC): the "
        "ledger's amount, the providers' and what matched"
    )
    source_results: dict[str, SourceResultOut]
    error: str | None
    workflow_id: str
    started_at: datetime
    completed_at: datetime | None


class DiscrepancyOut(BaseModel):
    id: uuid.UUID
    object: str = "reconciliation_discrepancy"
    run_id: uuid.UUID
    type: DiscrepancyType
    source: Source
    external_id: str
    ledger_kind: str | None
    ledger_id: uuid.UUID | None
    expected_amount: int | None = Field(description="What the ledger says the provider shows")
    actual_amount: int | None = Field(description="What the provider shows")
    currency: str
    detail: str
    status: DiscrepancyStatus
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Checked by the service (required, not blank, at most 2,000 characters).
    note: Any = Field(None, description="How it was resolved")


def run_out(run: ReconciliationRun) -> RunOut:
    return RunOut(
        id=run.id,
        status=RunStatus(run.status),
        trigger=RunTrigger(run.trigger),
        period_start=run.period_start,
        period_end=run.period_end,
        sources=[Source(source) for source in run.sources],
        started_by=run.started_by,
        ledger_count=run.ledger_count,
        external_count=run.external_count,
        matched_count=run.matched_count,
        discrepancy_count=run.discrepancy_count,
        match_rate=float(run.match_rate) if run.match_rate is not None else None,
        totals=run.totals,
        source_results={
            source: SourceResultOut.model_validate(result)
            for source, result in run.source_results.items()
        },
        error=run.error,
        workflow_id=run.workflow_id,
        started_at=run.created_at,
        completed_at=run.completed_at,
    )


def discrepancy_out(item: ReconciliationDiscrepancy) -> DiscrepancyOut:
    return DiscrepancyOut(
        id=item.id,
        run_id=item.run_id,
        type=DiscrepancyType(item.type),
        source=Source(item.source),
        external_id=item.external_id,
        ledger_kind=item.ledger_kind,
        ledger_id=item.ledger_id,
        expected_amount=amount(item.expected_amount),
        actual_amount=amount(item.actual_amount),
        currency=item.currency,
        detail=item.detail,
        status=DiscrepancyStatus(item.status),
        resolution_note=item.resolution_note,
        resolved_by=item.resolved_by,
        resolved_at=item.resolved_at,
        created_at=item.created_at,
    )


def run_workflow(run: ReconciliationRun, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="Reconciliation",
        id=run.workflow_id,
        arg=reconciliation_input(settings, run_id=run.id, trigger=run.trigger),
        task_queue=settings.task_queue,
    )


@router.post("/runs", status_code=202)
async def start_run(
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
    body: RunIn | None = None,
) -> RunOut:
    """Reconcile a period now (default: the 24 hours before now; at most 31 days). The run
    is ``running`` until its workflow completes it: follow it with ``GET /runs/{id}``."""
    now = datetime.now(UTC)
    end = body.period_end if body and body.period_end else now
    start = body.period_start if body and body.period_start else end - DEFAULT_PERIOD
    run = await reconciliation.create_run(
        session,
        period_start=start,
        period_end=end,
        trigger=RunTrigger.MANUAL,
        sources=reconciliation_sources(settings),
        actor=actor,
        now=now,
    )
    start_after_commit(request, run_workflow(run, settings))
    return run_out(run)


@router.get("/runs")
async def list_runs(
    session: Session,
    _: Admin,
    params: PageQuery,
    status: RunStatus | None = None,
    trigger: RunTrigger | None = None,
) -> Page[RunOut]:
    """Newest first."""
    after = await row_cursor(
        params.starting_after, lambda i: reconciliation.get_run(session, i), lambda _: True
    )
    rows = await reconciliation.list_runs(
        session,
        limit=params.limit,
        after=after,
        status=status.value if status else None,
        trigger=trigger.value if trigger else None,
    )
    return paginate(rows, params.limit, run_out, lambda item: item.id)


@router.get("/runs/{run_id}")
async def get_run(run_id: uuid.UUID, session: Session, _: Admin) -> RunOut:
    """The run: its status, counts, totals and match rate."""
    return run_out(await reconciliation.get_run(session, run_id))


class DiscrepancyFilters(BaseModel):
    type: DiscrepancyType | None = None
    status: DiscrepancyStatus | None = None
    source: Source | None = None
    external_id: str | None = None


def discrepancy_filters(
    type: DiscrepancyType | None = None,
    status: DiscrepancyStatus | None = None,
    source: Source | None = None,
    external_id: Annotated[str | None, Query(max_length=200)] = None,
) -> DiscrepancyFilters:
    return DiscrepancyFilters(type=type, status=status, source=source, external_id=external_id)


Filters = Annotated[DiscrepancyFilters, Depends(discrepancy_filters)]


async def _discrepancies(
    session: AsyncSession,
    filters: DiscrepancyFilters,
    limit: int,
    after: ReconciliationDiscrepancy | None,
    run_id: uuid.UUID | None,
) -> Sequence[ReconciliationDiscrepancy]:
    return await reconciliation.list_discrepancies(
        session,
        limit=limit,
        after=after,
        run_id=run_id,
        type=filters.type.value if filters.type else None,
        status=filters.status.value if filters.status else None,
        source=filters.source.value if filters.source else None,
        external_id=filters.external_id,
    )


async def _page(
    session: AsyncSession, params: Any, filters: DiscrepancyFilters, run_id: uuid.UUID | None
) -> Page[DiscrepancyOut]:
    after = await row_cursor(
        params.starting_after,
        lambda i: reconciliation.get_discrepancy(session, i),
        lambda row: run_id is None or row.run_id == run_id,
    )
    rows = await _discrepancies(session, filters, params.limit, after, run_id)
    return paginate(rows, params.limit, discrepancy_out, lambda item: item.id)


@router.get("/runs/{run_id}/discrepancies")
async def list_run_discrepancies(
    run_id: uuid.UUID, session: Session, _: Admin, params: PageQuery, filters: Filters
) -> Page[DiscrepancyOut]:
    """The run's discrepancies, newest first, filtered by type, status, source."""
    await reconciliation.get_run(session, run_id)
    return await _page(session, params, filters, run_id)


DISCREPANCY_COLUMNS = (
    "id",
    "run_id",
    "type",
    "source",
    "external_id",
    "ledger_kind",
    "ledger_id",
    "expected_amount",
    "actual_amount",
    "currency",
    "detail",
    "status",
    "resolution_note",
    "resolved_by",
    "resolved_at",
    "created_at",
)


def _discrepancy_row(item: ReconciliationDiscrepancy) -> tuple[Any, ...]:
    view = discrepancy_out(item).model_dump(mode="json")
    return tuple(view[column] for column in DISCREPANCY_COLUMNS)


@router.get(
    "/runs/{run_id}/discrepancies.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_run_discrepancies(
    run_id: uuid.UUID, request: Request, session: Session, _: Admin, filters: Filters
) -> StreamingResponse:
    """Every discrepancy of the run matching the filters, newest first, with a header row."""
    await reconciliation.get_run(session, run_id)

    async def fetch(
        session: AsyncSession, limit: int, after: uuid.UUID | None
    ) -> Sequence[ReconciliationDiscrepancy]:
        last = await reconciliation.get_discrepancy(session, after) if after else None
        return await _discrepancies(session, filters, limit, last, run_id)

    return csv_export(
        request,
        f"reconciliation-{run_id}-discrepancies.csv",
        DISCREPANCY_COLUMNS,
        fetch,
        _discrepancy_row,
        lambda item: item.id,
    )


@router.get("/discrepancies")
async def list_discrepancies(
    session: Session,
    _: Admin,
    params: PageQuery,
    filters: Filters,
    run_id: uuid.UUID | None = None,
) -> Page[DiscrepancyOut]:
    """Discrepancies of every run, newest first (``status=open``: what is left to resolve)."""
    return await _page(session, params, filters, run_id)


@router.get("/discrepancies/{discrepancy_id}")
async def get_discrepancy(discrepancy_id: uuid.UUID, session: Session, _: Admin) -> DiscrepancyOut:
    return discrepancy_out(await reconciliation.get_discrepancy(session, discrepancy_id))


@router.post("/discrepancies/{discrepancy_id}/resolve")
async def resolve_discrepancy(
    discrepancy_id: uuid.UUID, body: ResolveIn, session: Session, actor: Admin
) -> DiscrepancyOut:
    """Resolved with a note saying how (required); 409 ``discrepancy_resolved`` if it was
    resolved already."""
    item = await actions.resolve(session, discrepancy_id, note=body.note, actor=actor)
    return discrepancy_out(item)

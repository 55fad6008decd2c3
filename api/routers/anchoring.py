"""Anchor batches for operators: list, inspect, and start a run now."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from temporalio.client import Client

from api.deps import Admin, PlatformAdmin, Session
from api.pagination import Page, PageQuery, int_cursor, paginate
from models.anchoring import AnchorBatch
from schedules import ANCHORING_SCHEDULE
from services import anchoring

router = APIRouter(prefix="/anchors", tags=["anchoring"])

BatchStatus = Literal["PENDING", "SUBMITTED", "CONFIRMED", "FAILED"]


class AnchorBatchOut(BaseModel):
    id: int
    object: str = "anchor_batch"
    status: BatchStatus
    root: str
    leaf_count: int
    attempts: int
    last_error: str | None
    chain_id: int | None
    contract_address: str | None
    transaction_hash: str | None
    block_number: int | None
    confirmations: int | None
    anchored_at: datetime | None
    created_at: datetime
    submitted_at: datetime | None
    confirmed_at: datetime | None
    failed_at: datetime | None


def batch_out(batch: AnchorBatch) -> AnchorBatchOut:
    return AnchorBatchOut(
        id=batch.id,
        status=batch.status,
        root="0x" + batch.root.hex(),
        leaf_count=batch.leaf_count,
        attempts=batch.attempts,
        last_error=batch.last_error,
        chain_id=batch.chain_id,
        contract_address=batch.contract_address,
        transaction_hash=batch.tx_hash,
        block_number=batch.block_number,
        confirmations=batch.confirmations,
        anchored_at=batch.anchored_at,
        created_at=batch.created_at,
        submitted_at=batch.submitted_at,
        confirmed_at=batch.confirmed_at,
        failed_at=batch.failed_at,
    )


@router.get("/batches")
async def list_batches(
    session: Session,
    _: Admin,
    params: PageQuery,
    status: Annotated[BatchStatus | None, Query()] = None,
) -> Page[AnchorBatchOut]:
    """Newest first."""
    rows = await anchoring.list_batches(
        session,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "an anchor batch id"),
        status=status,
    )
    return paginate(rows, params.limit, batch_out, lambda item: item.id)


@router.get("/batches/{batch_id}")
async def get_batch(batch_id: int, session: Session, _: Admin) -> AnchorBatchOut:
    return batch_out(await anchoring.get_batch(session, batch_id))


class RunStarted(BaseModel):
    object: str = "anchoring_run"
    schedule_id: str
    message: str


@router.post("/run", status_code=202)
async def run_now(request: Request, _: PlatformAdmin) -> RunStarted:
    """Trigger the anchoring Schedule now (skipped if a run is already in progress, which
    anchors everything waiting anyway)."""
    client: Client = await request.app.state.temporal.get()
    await client.get_schedule_handle(ANCHORING_SCHEDULE).trigger()
    return RunStarted(
        schedule_id=ANCHORING_SCHEDULE,
        message="an anchoring run starts now unless one is in progress",
    )

"""Transfers and batch payouts (platform and billing admins, on a partner's behalf).

``POST /transfers/batch`` takes up to 1,000 items as JSON (``{"partner_id", "items",
"metadata"}``), as a CSV file uploaded in ``multipart/form-data`` (fields ``partner_id`` and
``file``), or as a ``text/csv`` body (``?partner_id=``). The whole batch is validated first:
one invalid item and the batch is refused (400 ``batch_invalid``) with every item's errors
in ``error.errors`` (``row``, ``field``, ``code``, ``message``), and nothing is stored.
Otherwise the batch and its routed transfers are stored and ``transfer-batch-{id}`` runs
them once committed.

``POST /transfers/batch/{id}/retry`` puts the failed items back to pending (409 if there are
none) and, once committed, signals the batch's workflow (starting a new run of it if the
last one finished)."""

import uuid
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.actions import transfers as actions
from api.deps import Admin, Session, get_settings
from api.pagination import Page, PageQuery, paginate, row_cursor
from api.transfer_workflows import batch_workflow, batch_workflow_id, enqueue_after_commit
from api.workflow_calls import start_after_commit
from domain.errors import ValidationError
from domain.rails import Rail
from domain.transfers import MAX_BATCH_ITEMS, BatchSource, BatchStatus, TransferStatus
from models.transfers import Transfer, TransferBatch
from services import transfers
from services.transfer_csv import MAX_CSV_BYTES, parse_transfer_csv
from settings import Settings

router = APIRouter(prefix="/transfers", tags=["transfers"])

AppSettings = Annotated[Settings, Depends(get_settings)]
# The multipart envelope around a CSV of the largest size accepted.
MAX_UPLOAD_BYTES = MAX_CSV_BYTES + 64 * 1024


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: str = Field(min_length=1, max_length=200)
    # Items are checked by the service, which reports every item's errors at once.
    items: list[Any] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class BatchOut(BaseModel):
    id: uuid.UUID
    object: str = "transfer_batch"
    partner_id: str
    source: BatchSource
    status: BatchStatus
    total_count: int
    pending_count: int = Field(description="Items not final yet (pending or processing)")
    succeeded_count: int
    failed_count: int
    cancelled_count: int
    percent_done: float = Field(description="Share of the items that are final, 0 to 100")
    run_count: int = Field(description="1, plus one per retry of failed items")
    metadata: dict[str, Any]
    created_by: str
    created_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    workflow_id: str


class TransferOut(BaseModel):
    id: uuid.UUID
    object: str = "transfer"
    batch_id: uuid.UUID | None
    item_index: int | None
    partner_id: str
    reference: str
    destination: str
    amount: int
    currency: str
    description: str | None
    rail: Rail
    route_reason: str
    status: TransferStatus
    attempts: int
    last_error: str | None
    idempotency_key: str
    external_id: str | None
    window_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


def batch_out(batch: TransferBatch) -> BatchOut:
    final = batch.succeeded_count + batch.failed_count + batch.cancelled_count
    return BatchOut(
        id=batch.id,
        partner_id=batch.partner_id,
        source=BatchSource(batch.source),
        status=BatchStatus(batch.status),
        total_count=batch.total_count,
        pending_count=batch.pending_count,
        succeeded_count=batch.succeeded_count,
        failed_count=batch.failed_count,
        cancelled_count=batch.cancelled_count,
        percent_done=round(100.0 * final / batch.total_count, 1) if batch.total_count else 0.0,
        run_count=batch.run_count,
        metadata=batch.metadata_,
        created_by=batch.created_by,
        created_at=batch.created_at,
        completed_at=batch.completed_at,
        updated_at=batch.updated_at,
        workflow_id=batch_workflow_id(batch.id),
    )


def transfer_out(item: Transfer) -> TransferOut:
    return TransferOut(
        id=item.id,
        batch_id=item.batch_id,
        item_index=item.item_index,
        partner_id=item.partner_id,
        reference=item.reference,
        destination=item.destination,
        amount=item.amount,
        currency=item.currency,
        description=item.description,
        rail=Rail(item.rail),
        route_reason=item.route_reason,
        status=TransferStatus(item.status),
        attempts=item.attempts,
        last_error=item.last_error,
        idempotency_key=item.idempotency_key,
        external_id=item.external_id,
        window_at=item.window_at,
        created_at=item.created_at,
        started_at=item.started_at,
        completed_at=item.completed_at,
        updated_at=item.updated_at,
    )


def _form_parts(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body, by name (the standard library's MIME
    parser: no dependency for one upload)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValidationError("the multipart body cannot be read", param="file")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            parts[name] = payload if isinstance(payload, bytes) else b""
    return parts


def _partner(raw: bytes | str | None) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not text or not text.strip():
        raise ValidationError("partner_id is required", param="partner_id")
    return text.strip()


async def _capped_body(request: Request) -> bytes:
    """The body, refused once it grows past ``MAX_UPLOAD_BYTES`` (not read to the end)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"the request is larger than {MAX_UPLOAD_BYTES // 1024} KiB",
                code="batch_size",
                param="items",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_batch(request: Request) -> tuple[str, list[Any], BatchSource, dict[str, Any]]:
    """(partner, items, source, metadata) of a JSON, multipart or CSV request."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    body = await _capped_body(request)
    if media == "application/json":
        try:
            payload = BatchIn.model_validate_json(body or b"{}")
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(part) for part in first.get("loc", ())) or None
            raise ValidationError(
                f"{location or 'body'}: {first.get('msg', 'invalid')}",
                code="parameter_invalid",
                param=location,
            ) from None
        if len(payload.items) > MAX_BATCH_ITEMS:
            raise ValidationError(
                f"a batch has 1 to {MAX_BATCH_ITEMS} items, not {len(payload.items)}",
                code="batch_size",
                param="items",
            )
        return payload.partner_id, payload.items, BatchSource.JSON, payload.metadata
    if media == "multipart/form-data":
        parts = _form_parts(content_type, body)
        if "file" not in parts:
            raise ValidationError("upload the CSV as the form field 'file'", param="file")
        return (
            _partner(parts.get("partner_id")),
            parse_transfer_csv(parts["file"]),
            BatchSource.CSV,
            {},
        )
    if media in ("text/csv", "application/csv"):
        partner = _partner(request.query_params.get("partner_id"))
        return partner, parse_transfer_csv(body), BatchSource.CSV, {}
    raise ValidationError(
        f"send the batch as application/json, multipart/form-data or text/csv, not {media}",
        code="unsupported_media_type",
    )


_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BatchIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["partner_id", "file"],
                    "properties": {
                        "partner_id": {"type": "string"},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV: reference,destination,amount,currency"
                            "[,description]; amounts in minor units",
                        },
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/batch", status_code=201, openapi_extra=_BATCH_BODY)
async def create_batch(
    request: Request, session: Session, actor: Admin, settings: AppSettings
) -> BatchOut:
    """Validate the whole batch, store it and its routed transfers, and run it. One invalid
    item refuses the batch: 400 ``batch_invalid`` listing every item's errors."""
    partner_id, items, source, metadata = await _read_batch(request)
    batch = await transfers.create_batch(
        session,
        partner_id=partner_id,
        items=items,
        source=source,
        rules=settings.rail_routing,
        actor=actor,
        metadata=metadata,
    )
    start_after_commit(request, batch_workflow(batch.id, settings))
    for rail, window_at in (await transfers.queued_windows(session, batch_id=batch.id)).items():
        enqueue_after_commit(request, settings, rail, window_at)
    return batch_out(batch)


@router.get("/batch")
async def list_batches(
    session: Session,
    _: Admin,
    params: PageQuery,
    partner_id: Annotated[str | None, Query(max_length=200)] = None,
    status: BatchStatus | None = None,
) -> Page[BatchOut]:
    """Newest first."""
    after = await row_cursor(
        params.starting_after, lambda i: transfers.get_batch(session, i), lambda _: True
    )
    rows = await transfers.list_batches(
        session,
        limit=params.limit,
        after=after,
        partner_id=partner_id,
        status=status.value if status else None,
    )
    return paginate(rows, params.limit, batch_out, lambda item: item.id)


@router.get("/batch/{batch_id}")
async def get_batch(batch_id: uuid.UUID, session: Session, _: Admin) -> BatchOut:
    """The batch's progress: status, counts and the share done."""
    return batch_out(await transfers.get_batch(session, batch_id))


@router.get("/batch/{batch_id}/items")
async def list_batch_items(
    batch_id: uuid.UUID,
    session: Session,
    _: Admin,
    params: PageQuery,
    status: TransferStatus | None = None,
) -> Page[TransferOut]:
    """The batch's transfers in item order, with each one's status and last error."""
    await transfers.get_batch(session, batch_id)
    after = await row_cursor(
        params.starting_after,
        lambda i: transfers.get(session, i),
        lambda row: row.batch_id == batch_id,
    )
    rows = await transfers.list_items(
        session,
        batch_id,
        limit=params.limit,
        after=after,
        status=status.value if status else None,
    )
    return paginate(rows, params.limit, transfer_out, lambda item: item.id)


@router.post("/batch/{batch_id}/retry", status_code=202)
async def retry_batch(
    batch_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> BatchOut:
    """The failed items go again (409 ``nothing_to_retry`` if none failed): pending now, run
    by the batch's workflow once committed."""
    retried = await actions.retry_failed(request, session, batch_id, actor=actor, settings=settings)
    return batch_out(retried.batch)


@router.get("/{transfer_id}")
async def get_transfer(transfer_id: uuid.UUID, session: Session, _: Admin) -> TransferOut:
    return transfer_out(await transfers.get(session, transfer_id))


@router.get("")
async def list_transfers(
    session: Session,
    _: Admin,
    params: PageQuery,
    partner_id: Annotated[str | None, Query(max_length=200)] = None,
    status: TransferStatus | None = None,
    rail: Rail | None = None,
    batch_id: uuid.UUID | None = None,
    reference: Annotated[str | None, Query(max_length=100)] = None,
    currency: Annotated[str | None, Query(max_length=8)] = None,
) -> Page[TransferOut]:
    """Newest first."""
    after = await row_cursor(
        params.starting_after, lambda i: transfers.get(session, i), lambda _: True
    )
    rows = await transfers.list_transfers(
        session,
        limit=params.limit,
        after=after,
        partner_id=partner_id,
        status=status.value if status else None,
        rail=rail.value if rail else None,
        batch_id=batch_id,
        reference=reference,
        currency=currency,
    )
    return paginate(rows, params.limit, transfer_out, lambda item: item.id)

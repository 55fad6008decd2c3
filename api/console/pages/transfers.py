"""Transfer batches and settlement windows: each rail's windows and queue with *Settle now*
(platform admins), batches with their progress (re-read every couple of seconds while they
run), a batch's items with each one's status, attempts and last error, and *Retry failed*.
The actions are ``api.actions.transfers`` and ``api.actions.settlement_windows``, the API's
own: the console has no second path."""

import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import settlement_windows as window_actions
from api.actions import transfers as actions
from api.console.auth import ConsoleAction, ConsoleUser
from api.console.inputs import check_text
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    field,
    form_fields,
    htmx_target,
    list_context,
    parse_id,
    query_string,
    render,
    settings_of,
    text_filter,
    with_flash,
)
from api.deps import Session
from domain.errors import NotFound, ValidationError
from domain.rails import Rail
from domain.transfers import BatchStatus, TransferStatus
from models.transfers import Transfer, TransferBatch
from services import settlement_windows, transfers

router = console_router()

# A running batch's row (or page) re-reads itself this often, in seconds.
POLL_SECONDS = 2


@dataclass
class Filters(PageFilters):
    status: str | None = None
    partner_id: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Segment:
    kind: str  # the CSS class: ok, bad, muted, info
    label: str
    count: int
    x: float
    width: float


def progress(batch: TransferBatch) -> dict[str, object]:
    """The progress bar's segments (succeeded, failed, cancelled, still open) in percent."""
    total = batch.total_count or 1
    parts = [
        ("ok", "succeeded", batch.succeeded_count),
        ("bad", "failed", batch.failed_count),
        ("muted", "cancelled", batch.cancelled_count),
        ("info", "open", batch.pending_count),
    ]
    segments = []
    x = 0.0
    for kind, label, count in parts:
        width = 100.0 * count / total
        segments.append(Segment(kind, label, count, round(x, 3), round(width, 3)))
        x += width
    final = batch.succeeded_count + batch.failed_count + batch.cancelled_count
    percent = round(100.0 * final / total, 1) if batch.total_count else 0.0
    summary = ", ".join(f"{s.count} {s.label}" for s in segments if s.count)
    return {"segments": segments, "percent": percent, "final": final, "summary": summary}


def row_context(batch: TransferBatch) -> dict[str, object]:
    return {
        "b": batch,
        "workflow_id": actions.workflow_id(batch.id),
        "progress": progress(batch),
        "running": batch.status == BatchStatus.PROCESSING.value,
    }


def window_context(view: settlement_windows.WindowView) -> dict[str, object]:
    return {
        "w": view,
        "config": view.config.to_dict() if view.config else None,
        "workflow_id": window_actions.workflow_id(view.rail),
    }


@router.get("/transfers")
async def transfers_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    partner_id: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        status=status or None,
        partner_id=text_filter(partner_id),
        id=text_filter(id),
    )
    partial = htmx_target(request) == "results"
    context = list_context(
        "transfers",
        filters,
        after,
        statuses=[s.value for s in BatchStatus],
        poll=POLL_SECONDS,
        # The windows are above the results: only a whole page needs them.
        windows=[]
        if partial
        else [window_context(await settlement_windows.view(session, rail)) for rail in Rail],
    )
    status_code = 200
    try:
        check_text(partner_id=filters.partner_id)
        if filters.status and filters.status not in {s.value for s in BatchStatus}:
            raise ValidationError(f"{filters.status!r} is not a batch status", param="status")
        batch_id = parse_id(filters.id, "a transfer batch", prefix="transfer-batch-")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found: list[TransferBatch]
        if batch_id is not None:
            try:
                found = [await transfers.get_batch(session, batch_id)]
            except NotFound:
                found = []
        else:
            last = await transfers.get_batch(session, after) if after else None
            found = list(
                await transfers.list_batches(
                    session,
                    limit=PAGE_SIZE,
                    after=last,
                    partner_id=filters.partner_id,
                    status=filters.status,
                )
            )
        rows = found[:PAGE_SIZE]
        context["rows"] = [row_context(b) for b in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/transfers{filters.query(after=str(rows[-1].id))}"
    template = "transfers/_results.html" if partial else "transfers/page.html"
    return render(request, template, context, active="transfers", status=status_code)


@router.get("/transfers/{batch_id}/row")
async def batch_row(
    request: Request, batch_id: uuid.UUID, session: Session, _: ConsoleUser
) -> HTMLResponse:
    """One batch as it is now (what a running batch's row re-reads)."""
    batch = await transfers.get_batch(session, batch_id)
    context = {"r": row_context(batch), "poll": POLL_SECONDS}
    return render(request, "transfers/_row.html", context)


async def _batch_context(
    session: AsyncSession, batch: TransferBatch, status: str | None, after: uuid.UUID | None
) -> dict[str, object]:
    """The batch's summary and a page of its items (``status`` filters them)."""
    if status and status not in {s.value for s in TransferStatus}:
        raise ValidationError(f"{status!r} is not a transfer status", param="status")
    last: Transfer | None = None
    if after is not None:
        last = await transfers.get(session, after)
        if last.batch_id != batch.id:
            raise ValidationError("after must be an item of this batch", param="after")
    found = await transfers.list_items(
        session, batch.id, limit=PAGE_SIZE, after=last, status=status
    )
    items = list(found[:PAGE_SIZE])
    base = f"/admin/transfers/{batch.id}"
    return {
        "r": row_context(batch),
        "items": items,
        "item_status": status,
        "item_statuses": [s.value for s in TransferStatus],
        "after": after,
        "self_url": base + query_string(status=status, after=str(after) if after else None),
        "first_url": base + query_string(status=status),
        "next_url": base + query_string(status=status, after=str(items[-1].id))
        if len(found) > PAGE_SIZE
        else None,
        "poll": POLL_SECONDS,
    }


@router.get("/transfers/{batch_id}")
async def batch_page(
    request: Request,
    batch_id: uuid.UUID,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    """The batch's progress and its items (``#batch`` re-reads itself while it runs)."""
    batch = await transfers.get_batch(session, batch_id)
    context = await _batch_context(session, batch, status or None, after)
    partial = htmx_target(request) == "batch"
    template = "transfers/_batch.html" if partial else "transfers/detail.html"
    return render(request, template, context, active="transfers")


@router.post("/transfers/{batch_id}/retry")
async def retry(
    request: Request, batch_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    retried = await actions.retry_failed(
        request, session, batch_id, actor=actor, settings=settings_of(request)
    )
    count = len(retried.transfer_ids)
    message = (
        f"{count} failed {'transfer is' if count == 1 else 'transfers are'} pending again: "
        f"retry sent to {actions.workflow_id(batch_id)}."
    )
    if htmx_target(request) == "batch":  # the batch's own page
        context = await _batch_context(session, retried.batch, None, None)
        main = render(request, "transfers/_batch.html", context)
    else:
        main = render(
            request, "transfers/_row.html", {"r": row_context(retried.batch), "poll": POLL_SECONDS}
        )
    return with_flash(request, main, message)


@router.post("/transfers/windows/{rail}/settle-now")
async def settle_now(
    request: Request, rail: str, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    reason = field(await form_fields(request), "reason") or window_actions.DEFAULT_REASON
    view = await window_actions.settle_now(
        request, session, rail, reason=reason, actor=actor, settings=settings_of(request)
    )
    card = render(request, "transfers/_window.html", {"r": window_context(view)})
    queued = view.queue.count
    message = (
        f"Settle now sent to {window_actions.workflow_id(view.rail)}: "
        f"{queued} queued {'transfer goes' if queued == 1 else 'transfers go'} out now."
    )
    return with_flash(request, card, message)

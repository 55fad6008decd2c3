"""Escrow holds: filters, search by id, a warning for holds past their release date, release,
extend and cancel (each confirmed first), and bulk release. The actions are
``api.actions.escrow``, the API's own: the console has no second path."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.actions import escrow as actions
from api.console.auth import ConsoleAction, ConsoleUser
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    field,
    form_fields,
    htmx_target,
    list_context,
    parse_id,
    render,
    settings_of,
    text_filter,
    with_flash,
)
from api.deps import Session
from api.workflow_calls import BULK_MAX
from domain.errors import ValidationError
from domain.escrow import HOLDING, HoldStatus
from models.escrow import EscrowHold
from services import escrow

router = console_router()

WATCH = 30  # see pages/payouts.py


@dataclass
class Filters(PageFilters):
    status: str | None = None
    payer_id: str | None = None
    payee_id: str | None = None
    id: str | None = None
    due: bool = False


def row_context(hold: EscrowHold, now: datetime, watch: int = 0) -> dict[str, object]:
    holding = HoldStatus(hold.status) in HOLDING
    return {
        "h": hold,
        "workflow_id": actions.workflow_id(hold.id),
        "holding": holding,
        "due_now": holding and hold.release_at <= now,
        "watch": watch if holding else 0,
        # The extend form's suggestion: a week after the later of now and the release date.
        "extend_to": (max(hold.release_at, now) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
    }


@router.get("/escrow")
async def escrow_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    payer_id: str | None = None,
    payee_id: str | None = None,
    id: str | None = None,
    due: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    now = datetime.now(UTC)
    filters = Filters(
        status=status or None,
        payer_id=text_filter(payer_id),
        payee_id=text_filter(payee_id),
        id=text_filter(id),
        due=due in ("1", "on", "true"),
    )
    partial = htmx_target(request) == "results"
    # The due-now warning is above the results: only a whole page needs it.
    due_count = 0 if partial else (await escrow.stats(session, now=now))["due_for_release"]
    context = list_context(
        "escrow",
        filters,
        after,
        statuses=[s.value for s in HoldStatus],
        due_count=due_count,
        self_url=f"/admin/escrow{filters.query(after=str(after) if after else None)}",
    )
    status_code = 200
    try:
        if filters.status and filters.status not in {s.value for s in HoldStatus}:
            raise ValidationError(f"{filters.status!r} is not a hold status", param="status")
        hold_id = parse_id(filters.id, "an escrow hold", prefix="escrow-hold-")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found = await escrow.list_holds(
            session,
            limit=PAGE_SIZE,
            starting_after=after,
            hold_id=hold_id,
            status=filters.status,
            payer_id=filters.payer_id,
            payee_id=filters.payee_id,
            due_before=now if filters.due else None,
            holding_only=filters.due,
        )
        rows = list(found[:PAGE_SIZE])
        context["rows"] = [row_context(h, now) for h in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/escrow{filters.query(after=str(rows[-1].id))}"
    template = "escrow/_results.html" if partial else "escrow/page.html"
    return render(request, template, context, active="escrow", status=status_code)


@router.get("/escrow/{hold_id}/row")
async def hold_row(
    request: Request, hold_id: uuid.UUID, session: Session, _: ConsoleUser, watch: int = 0
) -> HTMLResponse:
    hold = await escrow.get(session, hold_id)
    context = row_context(hold, datetime.now(UTC), max(min(watch, WATCH), 0))
    return render(request, "escrow/_row.html", {"r": context})


def _sent(request: Request, hold: EscrowHold, message: str) -> HTMLResponse:
    row = render(request, "escrow/_row.html", {"r": row_context(hold, datetime.now(UTC), WATCH)})
    return with_flash(request, row, message)


@router.post("/escrow/{hold_id}/release")
async def release(
    request: Request, hold_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    hold = await actions.release(
        request, session, hold_id, amount=None, actor=actor, settings=settings_of(request)
    )
    return _sent(request, hold, f"Release sent to {actions.workflow_id(hold.id)}.")


def _release_at(raw: str | None) -> datetime:
    """The new release date from the form: an instant, UTC unless it names its zone."""
    if not raw:
        raise ValidationError("Pick the new release date.", param="release_at")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(f"{raw!r} is not a date and time", param="release_at") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.post("/escrow/{hold_id}/extend")
async def extend(
    request: Request, hold_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    release_at = _release_at(field(await form_fields(request), "release_at"))
    hold = await actions.extend(
        request, session, hold_id, release_at=release_at, actor=actor, settings=settings_of(request)
    )
    message = f"Extend to {release_at:%Y-%m-%d %H:%M} UTC sent to {actions.workflow_id(hold.id)}."
    return _sent(request, hold, message)


@router.post("/escrow/{hold_id}/cancel")
async def cancel(
    request: Request, hold_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    hold = await actions.cancel(
        request, session, hold_id, actor=actor, settings=settings_of(request)
    )
    message = f"Cancel sent to {actions.workflow_id(hold.id)}: what is held returns to the payer."
    return _sent(request, hold, message)


@router.post("/escrow/bulk-release")
async def bulk_release(request: Request, session: Session, actor: ConsoleAction) -> HTMLResponse:
    ids = [value for value in (await form_fields(request)).get("ids", []) if value.strip()]
    if not ids:
        raise ValidationError("Select at least one hold to release.", param="ids")
    if len(ids) > BULK_MAX:
        raise ValidationError(f"At most {BULK_MAX} holds at once.", param="ids")
    result = await actions.bulk_release(
        request, session, ids, actor=actor, settings=settings_of(request)
    )
    now = datetime.now(UTC)
    accepted = [item.id for item in result.data if item.status == "accepted"]
    rows = [row_context(await escrow.get(session, uuid.UUID(i)), now, WATCH) for i in accepted]
    problems = [f"{item.id}: {item.error.message}" for item in result.data if item.error]
    return render(
        request,
        "escrow/_bulk_result.html",
        {
            "message": f"Release sent for {result.accepted} of {len(result.data)} holds"
            + (f"; {result.failed} refused." if result.failed else "."),
            "kind": "error" if result.failed else "ok",
            "items": problems,
            "rows": rows,
        },
        headers={"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"},
    )

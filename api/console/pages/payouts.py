"""Payout schedules: filters, search by id, the last error of a failed one, trigger and
cancel (each confirmed first), and bulk trigger. The actions are ``api.actions.payouts``,
the API's own: the console has no second path."""

import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.actions import payouts as actions
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
from domain.escrow import PayoutStatus, TriggerEvent
from models.escrow import PayoutSchedule
from services import payouts

router = console_router()

# How many times (about one a second) a row re-reads its schedule after an action, waiting
# for the workflow to move it; a processing row keeps re-reading until it settles.
WATCH = 30
CANCEL_REASON = "cancelled in the admin console"


@dataclass
class Filters(PageFilters):
    status: str | None = None
    trigger_event: str | None = None
    payee_id: str | None = None
    id: str | None = None


def _check(filters: Filters) -> uuid.UUID | None:
    """The id searched for; refuses values the lists do not have."""
    if filters.status and filters.status not in {s.value for s in PayoutStatus}:
        raise ValidationError(f"{filters.status!r} is not a payout status", param="status")
    if filters.trigger_event and filters.trigger_event not in {e.value for e in TriggerEvent}:
        raise ValidationError(
            f"{filters.trigger_event!r} is not a trigger event", param="trigger_event"
        )
    return parse_id(filters.id, "a payout schedule", prefix="payout-schedule-")


def row_context(schedule: PayoutSchedule, watch: int = 0) -> dict[str, object]:
    return {"s": schedule, "workflow_id": actions.workflow_id(schedule.id), "watch": watch}


@router.get("/payouts")
async def payouts_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    trigger_event: str | None = None,
    payee_id: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        status=status or None,
        trigger_event=trigger_event or None,
        payee_id=text_filter(payee_id),
        id=text_filter(id),
    )
    context = list_context(
        "payouts",
        filters,
        after,
        statuses=[s.value for s in PayoutStatus],
        events=[e.value for e in TriggerEvent],
        self_url=f"/admin/payouts{filters.query(after=str(after) if after else None)}",
    )
    status_code = 200
    try:
        schedule_id = _check(filters)
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found = await payouts.list_schedules(
            session,
            limit=PAGE_SIZE,
            starting_after=after,
            schedule_id=schedule_id,
            status=filters.status,
            payee_id=filters.payee_id,
            trigger_event=filters.trigger_event,
        )
        rows = list(found[:PAGE_SIZE])
        context["rows"] = [row_context(s, WATCH if s.status == "processing" else 0) for s in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/payouts{filters.query(after=str(rows[-1].id))}"
    template = "payouts/_results.html" if htmx_target(request) == "results" else "payouts/page.html"
    return render(request, template, context, active="payouts", status=status_code)


@router.get("/payouts/{schedule_id}/row")
async def payout_row(
    request: Request, schedule_id: uuid.UUID, session: Session, _: ConsoleUser, watch: int = 0
) -> HTMLResponse:
    """One row as it is now (what a row watching for its workflow re-reads)."""
    schedule = await payouts.get(session, schedule_id)
    return render(
        request, "payouts/_row.html", {"r": row_context(schedule, max(min(watch, WATCH), 0))}
    )


@router.post("/payouts/{schedule_id}/trigger")
async def trigger(
    request: Request, schedule_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    schedule = await actions.trigger(
        request,
        session,
        schedule_id,
        event=TriggerEvent.MANUAL,
        actor=actor,
        settings=settings_of(request),
    )
    row = render(request, "payouts/_row.html", {"r": row_context(schedule, WATCH)})
    message = f"Trigger sent to {actions.workflow_id(schedule.id)}: it pays now."
    return with_flash(request, row, message)


@router.post("/payouts/{schedule_id}/cancel")
async def cancel(
    request: Request, schedule_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    reason = field(await form_fields(request), "reason") or f"{CANCEL_REASON} by {actor.id}"
    schedule, sent = await actions.cancel(
        request, session, schedule_id, reason=reason, actor=actor, settings=settings_of(request)
    )
    row = render(request, "payouts/_row.html", {"r": row_context(schedule, WATCH if sent else 0)})
    if sent:
        message = f"Cancel sent to {actions.workflow_id(schedule.id)}."
    else:
        message = f"Payout schedule {schedule.id} was cancelled already."
    return with_flash(request, row, message)


@router.post("/payouts/bulk-trigger")
async def bulk_trigger(request: Request, session: Session, actor: ConsoleAction) -> HTMLResponse:
    ids = [value for value in (await form_fields(request)).get("ids", []) if value.strip()]
    if not ids:
        raise ValidationError("Select at least one payout schedule to trigger.", param="ids")
    if len(ids) > BULK_MAX:
        raise ValidationError(f"At most {BULK_MAX} payout schedules at once.", param="ids")
    result = await actions.bulk_trigger(
        request, session, ids, event=TriggerEvent.MANUAL, actor=actor, settings=settings_of(request)
    )
    accepted = [item.id for item in result.data if item.status == "accepted"]
    rows = [row_context(await payouts.get(session, uuid.UUID(i)), WATCH) for i in accepted]
    problems = [f"{item.id}: {item.error.message}" for item in result.data if item.error]
    return render(
        request,
        "payouts/_bulk_result.html",
        {
            "message": f"Trigger sent for {result.accepted} of {len(result.data)} payout schedules"
            + (f"; {result.failed} refused." if result.failed else "."),
            "kind": "error" if result.failed else "ok",
            "items": problems,
            "rows": rows,
        },
        headers={"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"},
    )

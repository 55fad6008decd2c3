"""Reconciliation: the latest runs (status, match rate, totals by currency, their workflow
and their discrepancies as CSV, exported by the API's own code) and the discrepancies, filtered
by run, type, status and source, each resolved with a note through
``api.actions.reconciliation``, the API's own path."""

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from api.actions import reconciliation as actions
from api.console.auth import ConsoleAction, ConsoleUser
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    field,
    form_fields,
    htmx_target,
    list_context,
    money,
    parse_id,
    query_string,
    render,
    text_filter,
    with_flash,
)
from api.deps import Session
from api.routers.reconciliation import DiscrepancyFilters, export_run_discrepancies
from domain.errors import NotFound, ValidationError
from domain.reconciliation import DiscrepancyStatus, DiscrepancyType, Source
from models.reconciliation import ReconciliationDiscrepancy, ReconciliationRun
from services import reconciliation
from services.reconciliation import amount

router = console_router()

RUNS_SHOWN = 8


@dataclass
class Filters(PageFilters):
    run_id: str | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    id: str | None = None


def _amount(value: Any, currency: str) -> str:
    number = amount(value)
    return "—" if number is None else money(number, currency)


def run_context(run: ReconciliationRun, filters: Filters | None = None) -> dict[str, object]:
    """A run's row: its totals by currency formatted, and the CSV export of its
    discrepancies (with the type, status and source filters, if any)."""
    totals = [
        {
            "currency": currency,
            "ledger": _amount(figures.get("ledger"), currency),
            "external": _amount(figures.get("external"), currency),
            "matched": _amount(figures.get("matched"), currency),
        }
        for currency, figures in sorted(run.totals.items())
    ]
    csv_query = query_string(
        type=filters.type if filters else None,
        status=filters.status if filters else None,
        source=filters.source if filters else None,
    )
    return {
        "run": run,
        "totals": totals,
        "match_rate": None if run.match_rate is None else f"{run.match_rate:.2f}%",
        "csv_url": f"/admin/reconciliation/runs/{run.id}/discrepancies.csv{csv_query}",
    }


def row_context(item: ReconciliationDiscrepancy) -> dict[str, object]:
    return {
        "d": item,
        "expected": _amount(item.expected_amount, item.currency),
        "actual": _amount(item.actual_amount, item.currency),
    }


def _check(filters: Filters) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(run id, discrepancy id) searched for; refuses values the lists do not have."""
    choices = {
        "type": {t.value for t in DiscrepancyType},
        "status": {s.value for s in DiscrepancyStatus},
        "source": {s.value for s in Source},
    }
    for name, allowed in choices.items():
        value = getattr(filters, name)
        if value and value not in allowed:
            raise ValidationError(f"{value!r} is not a discrepancy {name}", param=name)
    run_id = parse_id(filters.run_id, "a reconciliation run", prefix="reconciliation-")
    return run_id, parse_id(filters.id, "a discrepancy")


@router.get("/reconciliation")
async def reconciliation_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    run_id: str | None = None,
    type: str | None = None,
    status: str | None = None,
    source: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        run_id=text_filter(run_id),
        type=type or None,
        status=status or None,
        source=source or None,
        id=text_filter(id),
    )
    partial = htmx_target(request) == "results"
    context = list_context(
        "reconciliation",
        filters,
        after,
        types=[t.value for t in DiscrepancyType],
        statuses=[s.value for s in DiscrepancyStatus],
        sources=[s.value for s in Source],
        run=None,
        runs=[],
    )
    status_code = 200
    try:
        wanted_run, discrepancy_id = _check(filters)
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found: list[ReconciliationDiscrepancy]
        if discrepancy_id is not None:
            try:
                found = [await reconciliation.get_discrepancy(session, discrepancy_id)]
            except NotFound:
                found = []
        else:
            if wanted_run is not None:
                try:
                    chosen = await reconciliation.get_run(session, wanted_run)
                except NotFound as exc:
                    context["problem"] = exc.message
                    status_code = 404
                else:
                    context["run"] = run_context(chosen, filters)
            last = await reconciliation.get_discrepancy(session, after) if after else None
            found = list(
                await reconciliation.list_discrepancies(
                    session,
                    limit=PAGE_SIZE,
                    after=last,
                    run_id=wanted_run,
                    type=filters.type,
                    status=filters.status,
                    source=filters.source,
                )
            )
        rows = found[:PAGE_SIZE]
        context["rows"] = [row_context(d) for d in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/reconciliation{filters.query(after=str(rows[-1].id))}"
    if not partial:
        runs = await reconciliation.list_runs(session, limit=RUNS_SHOWN)
        context["runs"] = [run_context(run, filters) for run in runs[:RUNS_SHOWN]]
    template = "reconciliation/_results.html" if partial else "reconciliation/page.html"
    return render(request, template, context, active="reconciliation", status=status_code)


@router.post("/reconciliation/discrepancies/{discrepancy_id}/resolve")
async def resolve(
    request: Request, discrepancy_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    note = field(await form_fields(request), "note")
    item = await actions.resolve(session, discrepancy_id, note=note, actor=actor)
    row = render(request, "reconciliation/_row.html", {"r": row_context(item)})
    return with_flash(request, row, f"Discrepancy {item.id} resolved: {item.resolution_note}")


@router.get("/reconciliation/runs/{run_id}/discrepancies.csv")
async def export_csv(
    request: Request,
    run_id: uuid.UUID,
    session: Session,
    actor: ConsoleUser,
    type: DiscrepancyType | None = None,
    status: DiscrepancyStatus | None = None,
    source: Source | None = None,
) -> Response:
    """The API's export (``GET /api/v1/reconciliation/runs/{id}/discrepancies.csv``), for a
    signed-in admin's browser, which has the session cookie rather than a bearer token."""
    filters = DiscrepancyFilters(type=type, status=status, source=source)
    return await export_run_discrepancies(run_id, request, session, actor, filters)

"""The audit log as a timeline: filters (action, entity, actor, dates), each entry opening
to its before and after state with the changed fields marked, and links to the entity's
page and workflow."""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.console.auth import ConsoleUser
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    htmx_target,
    list_context,
    render,
)
from api.deps import Session
from domain.errors import ValidationError
from models.audit import AuditEvent
from services import audit

router = console_router()

# Offered in the entity filter (any other type can be typed in).
ENTITY_TYPES = (
    "anchor_batch",
    "escrow_hold",
    "invoice",
    "ledger_account",
    "ledger_transaction",
    "market",
    "payment",
    "payout_schedule",
    "reconciliation_discrepancy",
    "refund",
    "settlement_window",
    "subscription",
    "ticket",
    "transfer",
    "transfer_batch",
    "vendor_settlement",
)


@dataclass
class Filters(PageFilters):
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class Change:
    key: str
    before: str
    after: str
    changed: bool


@dataclass(frozen=True)
class Entry:
    event: AuditEvent
    changes: list[Change]


def _show(value: Any, present: bool) -> str:
    if not present:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """Every field of either state, the changed ones marked."""
    old, new = before or {}, after or {}
    return [
        Change(
            key,
            _show(old.get(key), key in old),
            _show(new.get(key), key in new),
            key not in old or key not in new or old[key] != new[key],
        )
        for key in sorted(old.keys() | new.keys())
    ]


def _day(raw: str | None, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(f"{name}: {raw!r} is not a date (YYYY-MM-DD)", param=name) from exc


def _clean(value: str | None) -> str | None:
    return (value or "").strip()[:200] or None


@router.get("/audit")
async def audit_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
) -> HTMLResponse:
    filters = Filters(
        _clean(action), _clean(entity_type), _clean(entity_id), _clean(actor), since, until
    )
    context = list_context(
        "audit",
        filters,
        after,
        entity_types=ENTITY_TYPES,
        self_url=f"/admin/audit{filters.query(after=str(after) if after else None)}",
        days=[],
    )
    status_code = 200
    try:
        first, last = _day(since, "from"), _day(until, "to")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found = await audit.list_events(
            session,
            limit=PAGE_SIZE,
            starting_after=after,
            entity_type=filters.entity_type,
            entity_id=filters.entity_id,
            action=filters.action,
            actor=filters.actor,
            since=datetime.combine(first, time(), UTC) if first else None,
            until=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
        )
        events = list(found[:PAGE_SIZE])
        entries = [Entry(e, changes(e.before, e.after)) for e in events]
        context["days"] = [
            (day, list(group))
            for day, group in groupby(
                entries, key=lambda x: x.event.occurred_at.astimezone(UTC).date()
            )
        ]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/audit{filters.query(after=str(events[-1].id))}"
    template = "audit/_results.html" if htmx_target(request) == "results" else "audit/page.html"
    return render(request, template, context, active="audit", status=status_code)

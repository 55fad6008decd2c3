"""The audit log with the filters operators search by, including who acted and when."""

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from api.deps import Admin, Session
from api.pagination import Page, PageParams, int_cursor, page_params, paginate
from api.routers.audit import AuditEventOut, event_out
from domain.errors import ValidationError
from models.audit import AuditEvent

router = APIRouter(prefix="/audit-log", tags=["audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=200)]
BOUND = "A date (its midnight UTC) or an instant with a time zone"


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError(
            f"{name} is a date (YYYY-MM-DD) or an instant with a time zone", param=name
        )
    return parsed


@router.get("")
async def list_audit_log(
    session: Session,
    _: Admin,
    params: Annotated[PageParams, Depends(page_params)],
    action: Text = None,
    entity_type: Text = None,
    entity_id: Text = None,
    actor: Text = None,
    occurred_gte: Annotated[
        str | None, Query(alias="occurred[gte]", max_length=40, description=BOUND)
    ] = None,
    occurred_lt: Annotated[
        str | None, Query(alias="occurred[lt]", max_length=40, description=BOUND)
    ] = None,
) -> Page[AuditEventOut]:
    """Newest first. ``actor`` is who acted (a token's subject, or ``system``).

    The query is here rather than in ``services.audit.list_events``, which cannot filter by
    actor or time yet."""
    since = _instant(occurred_gte, "occurred[gte]")
    until = _instant(occurred_lt, "occurred[lt]")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(params.limit + 1)
    starting_after = int_cursor(params.starting_after, "an audit event id")
    if starting_after is not None:
        query = query.where(AuditEvent.id < starting_after)
    for column, value in (
        (AuditEvent.action, action),
        (AuditEvent.entity_type, entity_type),
        (AuditEvent.entity_id, entity_id),
        (AuditEvent.actor, actor),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    rows = (await session.scalars(query)).all()
    return paginate(rows, params.limit, event_out, lambda item: item.id)

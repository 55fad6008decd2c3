"""The audit log with the filters operators search by, including who acted and when."""

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admin, Session
from api.pagination import Page, PageQuery, int_cursor, paginate
from api.routers.audit import AuditEventOut, event_out
from domain.errors import ValidationError
from services import audit

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
    params: PageQuery,
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
    """Newest first. ``actor`` is who acted (a token's subject, or ``system``)."""
    rows = await audit.list_events(
        session,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "an audit event id"),
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        actor=actor,
        since=_instant(occurred_gte, "occurred[gte]"),
        until=_instant(occurred_lt, "occurred[lt]"),
    )
    return paginate(rows, params.limit, event_out, lambda item: item.id)

"""The audit log, read-only, for admins."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Admin, Session
from api.pagination import Page, PageQuery, int_cursor, paginate
from models.audit import AuditEvent
from services import audit

router = APIRouter(prefix="/audit-events", tags=["audit"])


class AuditEventOut(BaseModel):
    id: int
    object: str = "audit_event"
    occurred_at: datetime
    action: str
    entity_type: str
    entity_id: str
    actor: str
    actor_role: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    metadata: dict[str, Any]
    request_id: uuid.UUID | None


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        action=event.action,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        actor=event.actor,
        actor_role=event.actor_role,
        before=event.before,
        after=event.after,
        metadata=event.metadata_,
        request_id=event.request_id,
    )


@router.get("")
async def list_audit_events(
    session: Session,
    _: Admin,
    params: PageQuery,
    entity_type: Annotated[str | None, Query()] = None,
    entity_id: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
) -> Page[AuditEventOut]:
    rows = await audit.list_events(
        session,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "an audit event id"),
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
    )
    return paginate(rows, params.limit, event_out, lambda item: item.id)

"""The one helper every state change uses to write the append-only audit log."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from models.audit import AuditEvent
from observability.logs import request_id_var


async def record(
    session: AsyncSession,
    *,
    action: str,
    entity_type: str,
    entity_id: str | uuid.UUID,
    actor: Actor,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    request_id: uuid.UUID | None = None,
) -> AuditEvent:
    event = AuditEvent(
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        actor=actor.id,
        actor_role=actor.role.value,
        before=before,
        after=after,
        metadata_=metadata or {},
        request_id=request_id or current_request_id(),
    )
    session.add(event)
    await session.flush()
    return event


def current_request_id() -> uuid.UUID | None:
    """The id of the API request being served, when it is a UUID (the column's type): the
    audit event and the request's log lines then share it."""
    value = request_id_var.get()
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def list_events(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: int | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[AuditEvent]:
    """Newest first; ``limit + 1`` rows are fetched so callers can tell ``has_more``.
    ``since`` is inclusive, ``until`` exclusive."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if starting_after is not None:
        query = query.where(AuditEvent.id < starting_after)
    if entity_type:
        query = query.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEvent.entity_id == entity_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    return (await session.scalars(query)).all()

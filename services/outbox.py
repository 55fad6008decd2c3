"""The outbox: domain events written in the caller's transaction, so an event exists exactly
when its change committed. Delivery (webhooks) reads them in id order."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from models.outbox import OutboxEvent
from services import audit


async def emit(
    session: AsyncSession,
    event_type: str,
    *,
    entity_type: str,
    entity_id: str,
    payload: dict[str, Any],
) -> OutboxEvent:
    event = OutboxEvent(
        event_type=event_type, entity_type=entity_type, entity_id=entity_id, payload=payload
    )
    session.add(event)
    await session.flush()
    return event


async def record_change(
    session: AsyncSession,
    *,
    entity_type: str,
    entity_id: uuid.UUID | str,
    action: str,
    actor: Actor,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    announce: bool,
    metadata: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Flush the change, audit ``<entity_type>.<action>``, and when ``announce`` also emit it
    as an event whose payload is the id, ``after``, the metadata and ``payload``."""
    await session.flush()
    name = f"{entity_type}.{action}"
    await audit.record(
        session,
        action=name,
        entity_type=entity_type,
        entity_id=entity_id,
        actor=actor,
        before=before,
        after=after,
        metadata=metadata,
    )
    if announce:
        await emit(
            session,
            name,
            entity_type=entity_type,
            entity_id=str(entity_id),
            payload={"id": str(entity_id), **after, **(metadata or {}), **(payload or {})},
        )

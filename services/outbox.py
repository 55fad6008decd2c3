"""The outbox: domain events written in the caller's transaction, so an event exists exactly
when its change committed. Delivery (webhooks) reads them in id order."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.outbox import OutboxEvent


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

"""Domain events, written in the same transaction as the change they announce; the webhooks
issue delivers them."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt


class OutboxEvent(CreatedAt, Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_events_undelivered", "id", postgresql_where="delivered_at IS NULL"),
        Index("ix_outbox_events_entity", "entity_type", "entity_id", "id"),
        # Webhook replays of a time range.
        Index("ix_outbox_events_created", "created_at", "id"),
    )

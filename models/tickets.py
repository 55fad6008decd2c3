"""Tickets and the log of every verification attempt."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt


class Ticket(CreatedAt, Base):
    __tablename__ = "tickets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # One ticket per booking, enforced here so concurrent issues cannot create two.
    booking_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[str] = mapped_column(String(200))
    driver_id: Mapped[str] = mapped_column(String(40))
    trip: Mapped[dict[str, Any]] = mapped_column(JSONB)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # Set when the ticket is put in an anchor batch; its proof lives in ``ticket_anchors``.
    anchor_batch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("anchor_batches.id"))

    __table_args__ = (
        CheckConstraint("status IN ('ACTIVE', 'USED', 'CANCELLED', 'EXPIRED')", name="status"),
        CheckConstraint("valid_until > valid_from", name="window"),
        Index("ix_tickets_user_status", "user_id", "status"),
        Index("ix_tickets_driver_status", "driver_id", "status"),
        Index("ix_tickets_status_valid_until", "status", "valid_until"),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_status_changed", "status", "status_changed_at"),
        # Small: only tickets waiting for the next anchor batch.
        Index(
            "ix_tickets_unanchored",
            "created_at",
            "id",
            postgresql_where=text("anchor_batch_id IS NULL"),
        ),
    )


class TicketVerification(Base):
    """Every scan, accepted or not. Kept when tickets are cleaned up, so no foreign key."""

    __tablename__ = "ticket_verifications"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column()
    driver_id: Mapped[str] = mapped_column(String(200))
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    source: Mapped[str] = mapped_column(String(8))
    # Offline uploads carry a nonce: uploading the same scan again records nothing new.
    nonce: Mapped[str | None] = mapped_column(String(100), unique=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_ticket_verifications_ticket", "ticket_id", "id"),)

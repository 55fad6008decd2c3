"""Transfers out of the platform on a rail (Stripe or the chain), and the batches partners
submit them in. See ``domain/transfers.py`` for the statuses and ``domain/rails.py`` for
the router whose decision (``rail``, ``route_reason``) each transfer keeps."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at


class TransferBatch(CreatedAt, Base):
    """A partner's batch of up to 1,000 transfers, validated whole before it was stored.
    The counts move with the items, in the same transactions: ``pending`` counts the items
    not yet final (pending, queued or processing)."""

    __tablename__ = "transfer_batches"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))
    total_count: Mapped[int] = mapped_column(Integer)
    pending_count: Mapped[int] = mapped_column(Integer)
    succeeded_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)
    # Each retry of failed items starts a run; the completion event says which.
    run_count: Mapped[int] = mapped_column(Integer, default=1)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("source IN ('json', 'csv')", name="source"),
        CheckConstraint(
            "status IN ('processing', 'completed', 'partially_completed', 'failed')",
            name="status",
        ),
        CheckConstraint(
            "pending_count >= 0 AND succeeded_count >= 0 AND failed_count >= 0"
            " AND cancelled_count >= 0"
            " AND pending_count + succeeded_count + failed_count + cancelled_count = total_count",
            name="counts",
        ),
        CheckConstraint("total_count BETWEEN 1 AND 1000", name="total_count"),
        Index("ix_transfer_batches_partner", "partner_id", "created_at"),
        Index("ix_transfer_batches_created", "created_at", "id"),
    )


class Transfer(CreatedAt, Base):
    """Money sent to ``destination`` on ``rail`` under ``idempotency_key`` (derived from the
    transfer: ``transfer-{id}``; ``-retry-{n}`` after the rail refused it and it was
    retried). ``reference`` is the partner's own id for it, unique per partner.
    ``external_id`` is the Stripe transfer (``tr_...``) or the chain transaction hash."""

    __tablename__ = "transfers"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transfer_batches.id"))
    item_index: Mapped[int | None] = mapped_column(Integer)
    partner_id: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(100))
    destination: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text)
    rail: Mapped[str] = mapped_column(String(16))
    route_reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Runs after a refusal: each takes a new idempotency key.
    key_run: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    # When a settlement window of the rail sends a QUEUED transfer (kept once it is sent:
    # the window's workflow, not the batch's, owns a transfer that has one).
    window_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The liability the payment settles (a vendor's ``payee:{vendor}``); None: the money
    # leaves the platform's float for ``external:{rail}:{destination}``.
    settles_account: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("rail IN ('stripe', 'chain')", name="rail"),
        CheckConstraint(
            "status IN ('pending', 'queued', 'processing', 'succeeded', 'failed', 'cancelled')",
            name="status",
        ),
        CheckConstraint("status <> 'queued' OR window_at IS NOT NULL", name="queued_window"),
        CheckConstraint("status <> 'succeeded' OR external_id IS NOT NULL", name="succeeded_ref"),
        CheckConstraint("(batch_id IS NULL) = (item_index IS NULL)", name="batch_item"),
        UniqueConstraint("partner_id", "reference", name="uq_transfers_partner_reference"),
        UniqueConstraint("batch_id", "item_index", name="uq_transfers_batch_item"),
        Index("ix_transfers_batch_status", "batch_id", "status"),
        Index(
            "ix_transfers_queued",
            "rail",
            "window_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_transfers_created", "created_at", "id"),
        # Reconciliation reads a rail's succeeded transfers of a period.
        Index(
            "ix_transfers_succeeded",
            "rail",
            "completed_at",
            postgresql_where=text("status = 'succeeded'"),
        ),
    )

"""Escrow holds with their money movements, and payout schedules with their payouts."""

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
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id


class EscrowHold(CreatedAt, Base):
    __tablename__ = "escrow_holds"
    # Load the database's ``updated_at`` at flush, so reading it later needs no lazy load.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    payer_id: Mapped[str] = mapped_column(String(200))
    payee_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    released_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(String(24))
    release_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(24))
    # While set, the release waits for ``resolve``.
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    required_approvals: Mapped[int] = mapped_column(Integer, default=0)
    approvals: Mapped[list[str]] = mapped_column(JSONB, default=list)
    placement_id: Mapped[str | None] = mapped_column(String(100))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "released_amount >= 0 AND refunded_amount >= 0 "
            "AND released_amount + refunded_amount <= amount",
            name="moved",
        ),
        CheckConstraint(
            "status IN ('active', 'partially_released', 'released', 'refunded', 'cancelled')",
            name="status",
        ),
        CheckConstraint(
            "reason IN ('guarantee_period', 'dispute', 'verification', 'other')", name="reason"
        ),
        Index("ix_escrow_holds_status_release_at", "status", "release_at"),
        Index("ix_escrow_holds_payee", "payee_id", "created_at"),
        Index("ix_escrow_holds_created", "created_at", "id"),
    )

    @property
    def held_amount(self) -> int:
        return self.amount - self.released_amount - self.refunded_amount


class EscrowMovement(CreatedAt, Base):
    """Money leaving a hold (released to the payee or returned to the payer), once per key:
    a retried activity finds its movement instead of moving the money again."""

    __tablename__ = "escrow_movements"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("escrow_holds.id"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    ledger_transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))

    __table_args__ = (
        CheckConstraint("kind IN ('release', 'refund', 'cancel')", name="kind"),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_escrow_movements_hold", "hold_id", "id"),
    )


class PayoutSchedule(CreatedAt, Base):
    __tablename__ = "payout_schedules"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    payee_id: Mapped[str] = mapped_column(String(200))
    # The Stripe connected account the transfer goes to.
    destination: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    trigger_event: Mapped[str] = mapped_column(String(32))
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Each run after a failure pays under a new Stripe idempotency key (see services).
    run_number: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    backoff_seconds: Mapped[int] = mapped_column(Integer, default=60)
    placement_id: Mapped[str | None] = mapped_column(String(100))
    hold_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("escrow_holds.id"))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    triggered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')",
            name="status",
        ),
        CheckConstraint(
            "trigger_event IN ('guarantee_period_end', 'milestone_reached', "
            "'contract_signed', 'manual')",
            name="trigger_event",
        ),
        CheckConstraint("max_attempts >= 1 AND backoff_seconds >= 1", name="retry_policy"),
        Index("ix_payout_schedules_status_scheduled", "status", "scheduled_for"),
        Index("ix_payout_schedules_payee", "payee_id", "created_at"),
        Index("ix_payout_schedules_created", "created_at", "id"),
    )


class Payout(CreatedAt, Base):
    """Money that left the platform for a payee: one per completed payout schedule."""

    __tablename__ = "payouts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payout_schedules.id"), unique=True)
    payee_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    stripe_transfer_id: Mapped[str] = mapped_column(String(100), unique=True)
    ledger_transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))

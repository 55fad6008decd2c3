"""Commission rules, vendor settlements with the split lines each one covers, the transfer
request a processed settlement hands to the rail router, and vendors' payout accounts."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at


class CommissionRule(CreatedAt, Base):
    """A commission: ``percentage_bps`` of the amount plus ``fixed_amount`` (minor units of
    ``currency``), for one vendor, a category or everyone, in force over
    ``[effective_from, effective_to)``. See ``domain/commissions.py``."""

    __tablename__ = "commission_rules"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(16))
    vendor_id: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    percentage_bps: Mapped[int] = mapped_column(Integer)
    fixed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("scope IN ('vendor', 'category', 'default')", name="scope"),
        CheckConstraint(
            "(scope = 'vendor' AND vendor_id IS NOT NULL AND category IS NULL)"
            " OR (scope = 'category' AND category IS NOT NULL AND vendor_id IS NULL)"
            " OR (scope = 'default' AND vendor_id IS NULL AND category IS NULL)",
            name="scope_key",
        ),
        CheckConstraint("priority BETWEEN 0 AND 1000000", name="priority"),
        CheckConstraint("percentage_bps BETWEEN 0 AND 10000", name="percentage_bps"),
        CheckConstraint("fixed_amount >= 0", name="fixed_amount"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to > effective_from", name="effective_range"
        ),
        Index("ix_commission_rules_created", "created_at", "id"),
        Index(
            "ix_commission_rules_vendor",
            "vendor_id",
            postgresql_where=text("vendor_id IS NOT NULL"),
        ),
        Index(
            "ix_commission_rules_category",
            "category",
            postgresql_where=text("category IS NOT NULL"),
        ),
        Index("ix_commission_rules_scope", "scope", "currency", "priority"),
    )


class VendorSettlement(CreatedAt, Base):
    """What a vendor is owed for the payments completed in ``[period_start, period_end)`` in
    one currency: computed once per period, held until ``hold_until``, then processed into a
    transfer request. See ``domain/vendor_settlements.py``."""

    __tablename__ = "vendor_settlements"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    vendor_id: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    gross_captured: Mapped[int] = mapped_column(BigInteger, default=0)
    commission: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    net_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    hold_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        # A period is settled once: a second compute finds this row.
        UniqueConstraint(
            "vendor_id",
            "currency",
            "period_start",
            "period_end",
            name="uq_vendor_settlements_period",
        ),
        CheckConstraint(
            "status IN ('pending_hold', 'due', 'processing', 'paid', 'failed')", name="status"
        ),
        CheckConstraint("period_end > period_start", name="period_order"),
        CheckConstraint(
            "gross_captured >= 0 AND commission >= 0 AND refunded >= 0 AND payment_count >= 0",
            name="figures",
        ),
        CheckConstraint("net_amount >= 0", name="net_amount"),
        CheckConstraint("net_amount = gross_captured - commission - refunded", name="net_sum"),
        Index("ix_vendor_settlements_created", "created_at", "id"),
        Index("ix_vendor_settlements_vendor", "vendor_id", "currency", "period_start"),
        Index("ix_vendor_settlements_hold", "status", "hold_until"),
    )


class VendorSettlementLine(Base):
    """A vendor's split line of a payment, settled by one settlement: the primary key makes
    a line part of at most one settlement, whatever the periods asked for."""

    __tablename__ = "vendor_settlement_lines"

    payment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    split_seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("vendor_settlements.id", ondelete="CASCADE")
    )
    gross_captured: Mapped[int] = mapped_column(BigInteger)
    commission: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(
            ["payment_id", "split_seq"],
            ["payment_splits.payment_id", "payment_splits.seq"],
            name="fk_vendor_settlement_lines_split",
        ),
        CheckConstraint(
            "commission >= 0 AND refunded BETWEEN 0 AND captured"
            " AND gross_captured = captured + commission",
            name="figures",
        ),
        Index("ix_vendor_settlement_lines_settlement", "settlement_id"),
    )


class SettlementTransfer(CreatedAt, Base):
    """The transfer a processed settlement asks for: ``amount`` of ``currency`` to the
    vendor. The rail router picks requests up (``status = 'requested'``, oldest first),
    sets ``rail`` and sends the transfer under ``idempotency_key``, which derives from the
    settlement, never from an attempt."""

    __tablename__ = "settlement_transfers"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    settlement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("vendor_settlements.id"), unique=True
    )
    destination: Mapped[str] = mapped_column(String(200))  # the vendor
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    rail: Mapped[str | None] = mapped_column(String(64))  # None until the router routes it
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    # The transfer the router created for it (its rail, window and sending).
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transfers.id"), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("status IN ('requested', 'routed', 'paid', 'failed')", name="status"),
        CheckConstraint("status NOT IN ('routed', 'paid') OR rail IS NOT NULL", name="routed_rail"),
        CheckConstraint(
            "status NOT IN ('routed', 'paid') OR transfer_id IS NOT NULL", name="routed_transfer"
        ),
        Index(
            "ix_settlement_transfers_requested",
            "created_at",
            postgresql_where=text("status = 'requested'"),
        ),
        Index("ix_settlement_transfers_created", "created_at", "id"),
    )


class VendorPayoutAccount(CreatedAt, Base):
    """Where a vendor is paid: a Stripe connected account (``acct_...``) or a chain address.
    The rail router reads it to route the vendor's settlement transfers."""

    __tablename__ = "vendor_payout_accounts"
    __mapper_args__ = {"eager_defaults": True}

    vendor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    destination: Mapped[str] = mapped_column(String(200))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = updated_at()

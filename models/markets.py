"""Prediction markets: their options, the commitments users make, each resolution (the
distribution of the pool) and the per-user payouts a resolution records."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id


class Market(CreatedAt, Base):
    __tablename__ = "markets"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    question: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    # Earns the creator fee (credited to their token balance).
    creator_id: Mapped[str] = mapped_column(String(200))
    house_fee_bps: Mapped[int] = mapped_column(Integer)
    creator_fee_bps: Mapped[int] = mapped_column(Integer)
    # What a resolution does when nobody backed the winning option.
    no_winners: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # ``use_alter``: markets and their options point at each other.
    winning_option_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(
            "market_options.id", use_alter=True, name="fk_markets_winning_option_id_market_options"
        )
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("kind IN ('binary', 'multi')", name="kind"),
        CheckConstraint(
            "house_fee_bps >= 0 AND creator_fee_bps >= 0 "
            "AND house_fee_bps + creator_fee_bps <= 10000",
            name="fees",
        ),
        CheckConstraint("no_winners IN ('refund', 'house')", name="no_winners"),
        CheckConstraint(
            "status IN ('open', 'resolving', 'resolved', 'disputed', 'rolled_back', 'settled')",
            name="status",
        ),
        Index("ix_markets_created", "created_at", "id"),
        Index("ix_markets_status", "status", "created_at"),
    )


class MarketOption(Base):
    __tablename__ = "market_options"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    market_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("markets.id"))
    seq: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))
    # ``yes`` or ``no`` in a binary market, so commitments may name the position instead.
    position: Mapped[str | None] = mapped_column(String(3))

    __table_args__ = (
        CheckConstraint("position IN ('yes', 'no')", name="position"),
        Index("ix_market_options_market_seq", "market_id", "seq", unique=True),
    )


class MarketResolution(CreatedAt, Base):
    """One attempt at distributing a market's pool; a rollback ends it and allows another."""

    __tablename__ = "market_resolutions"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    market_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("markets.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    # Made once by the workflow: a retried start finds its resolution.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    winning_option_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_options.id"))
    status: Mapped[str] = mapped_column(String(16))
    # ``winners``: shared among winning commitments; ``refund``/``house``: nobody won.
    outcome: Mapped[str | None] = mapped_column(String(16))
    pool: Mapped[int] = mapped_column(BigInteger, default=0)
    house_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    creator_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_out: Mapped[int] = mapped_column(BigInteger, default=0)
    winning_commitments: Mapped[int] = mapped_column(Integer, default=0)
    ledger_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id")
    )
    reversal_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id")
    )
    resolved_by: Mapped[str] = mapped_column(String(200))
    dispute_reason: Mapped[str | None] = mapped_column(Text)
    rollback_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rolled_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('distributing', 'completed', 'disputed', 'rolled_back', 'failed')",
            name="status",
        ),
        CheckConstraint("outcome IN ('winners', 'refund', 'house')", name="outcome"),
        CheckConstraint(
            "pool >= 0 AND house_fee >= 0 AND creator_fee >= 0 AND paid_out >= 0 "
            "AND house_fee + creator_fee + paid_out <= pool",
            name="amounts",
        ),
        Index("ix_market_resolutions_market_attempt", "market_id", "attempt", unique=True),
        # At most one live resolution per market: the database itself refuses a second payout.
        Index(
            "ix_market_resolutions_live",
            "market_id",
            unique=True,
            postgresql_where=text("status IN ('distributing', 'completed', 'disputed')"),
        ),
    )


class MarketCommitment(CreatedAt, Base):
    __tablename__ = "market_commitments"

    # A sequence: orders commitments and breaks ties of the remainder rule.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    market_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("markets.id"))
    option_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_options.id"))
    user_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    # How the request named the option: ``option_id``, or a binary ``position``.
    matched_by: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    payout: Mapped[int | None] = mapped_column(BigInteger)
    profit: Mapped[int | None] = mapped_column(BigInteger)
    # Fraction of the distributed pool this commitment received (0 for a loss).
    share: Mapped[Decimal | None] = mapped_column(Numeric(14, 12))
    resolution_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("market_resolutions.id"))
    ledger_transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("payout IS NULL OR payout >= 0", name="payout"),
        CheckConstraint("matched_by IN ('option_id', 'position')", name="matched_by"),
        CheckConstraint("status IN ('open', 'won', 'lost', 'refunded')", name="status"),
        Index("ix_market_commitments_market", "market_id", "id"),
        Index("ix_market_commitments_user", "user_id", "id"),
    )


class MarketPayout(CreatedAt, Base):
    """What one user staked and received in one resolution."""

    __tablename__ = "market_payouts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    resolution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("market_resolutions.id"))
    market_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("markets.id"))
    user_id: Mapped[str] = mapped_column(String(200))
    staked: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    profit: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint("staked > 0 AND amount >= 0", name="amounts"),
        CheckConstraint("status IN ('completed', 'rolled_back')", name="status"),
        Index("ix_market_payouts_resolution_user", "resolution_id", "user_id", unique=True),
        Index("ix_market_payouts_user", "user_id", "id"),
    )

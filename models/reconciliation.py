"""Reconciliation runs and the discrepancies they found. See ``domain/reconciliation.py``
for the matching and the discrepancy types, ``services/reconciliation.py`` for a run's
steps."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at

# Chain amounts are uint256 base units: wider than a bigint.
Amount = Numeric(78, 0)


class ReconciliationRun(CreatedAt, Base):
    """One reconciliation of ``period_start``..``period_end`` (end excluded) against
    ``sources``, by ``workflow_id`` (``reconciliation-{id}`` on demand, the Schedule's run
    id otherwise: a second start of the same workflow finds this row). ``source_results``
    holds each source's counts and totals as its step stored them; the run's counts are
    their sums once it completes. ``match_rate`` is a percentage (see the domain)."""

    __tablename__ = "reconciliation_runs"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sources: Mapped[list[str]] = mapped_column(JSONB)
    started_by: Mapped[str] = mapped_column(String(200))
    ledger_count: Mapped[int] = mapped_column(Integer, default=0)
    external_count: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    discrepancy_count: Mapped[int] = mapped_column(Integer, default=0)
    match_rate: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    # {currency: {"ledger": n, "external": n, "matched": n}}, the sources added up.
    totals: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # {source: {"ledger_count": n, ..., "totals": {...}}}, as each source's step stored it.
    source_results: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status"),
        CheckConstraint("trigger IN ('schedule', 'manual')", name="trigger"),
        CheckConstraint("period_start < period_end", name="period"),
        CheckConstraint(
            "ledger_count >= 0 AND external_count >= 0 AND matched_count >= 0"
            " AND discrepancy_count >= 0",
            name="counts",
        ),
        Index("ix_reconciliation_runs_created", "created_at", "id"),
        Index("ix_reconciliation_runs_period", "period_start", "period_end"),
    )


class ReconciliationDiscrepancy(CreatedAt, Base):
    """One thing a run could not match. ``expected_amount`` is what the ledger says the
    provider should show, ``actual_amount`` what it shows, both in ``currency`` as the
    provider counts it (the token's base units for the chain); either is null when that
    side has no record. An admin resolves it with a note."""

    __tablename__ = "reconciliation_discrepancies"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reconciliation_runs.id"))
    type: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    ledger_kind: Mapped[str | None] = mapped_column(String(16))
    ledger_id: Mapped[uuid.UUID | None] = mapped_column()
    expected_amount: Mapped[Decimal | None] = mapped_column(Amount)
    actual_amount: Mapped[Decimal | None] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint(
            "type IN ('missing_settlement', 'amount_mismatch', 'duplicate', 'unexpected_external')",
            name="type",
        ),
        CheckConstraint("source IN ('stripe', 'chain')", name="source"),
        CheckConstraint("ledger_kind IN ('transfer', 'payout')", name="ledger_kind"),
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL AND resolution_note IS NOT NULL)",
            name="resolution",
        ),
        Index("ix_reconciliation_discrepancies_run", "run_id", "created_at", "id"),
        Index("ix_reconciliation_discrepancies_created", "created_at", "id"),
        Index(
            "ix_reconciliation_discrepancies_open",
            "created_at",
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_reconciliation_discrepancies_external", "external_id"),
    )

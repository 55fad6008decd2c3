"""Settlement windows as data: each rail's window configuration (``domain.settlement_windows``),
and a record of every window the rail's workflow settled."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at


class SettlementWindowConfig(CreatedAt, Base):
    """A rail's windows, as ``WindowConfig.to_dict()``. A rail without a row has no windows:
    its transfers are sent as soon as they are submitted."""

    __tablename__ = "settlement_window_configs"
    __mapper_args__ = {"eager_defaults": True}

    rail: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = updated_at()


class SettlementRun(CreatedAt, Base):
    """One window of a rail settled by ``settlement-window-{rail}``: at its scheduled time
    (``trigger = 'window'``) or early by an operator (``'settle_now'``). The counts are the
    transfers it sent and how they ended."""

    __tablename__ = "settlement_runs"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rail: Mapped[str] = mapped_column(String(64))
    window_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200))
    total_count: Mapped[int] = mapped_column(Integer)
    succeeded_count: Mapped[int] = mapped_column(Integer)
    failed_count: Mapped[int] = mapped_column(Integer)
    open_count: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("trigger IN ('window', 'settle_now')", name="trigger"),
        CheckConstraint(
            "total_count >= 0 AND succeeded_count >= 0 AND failed_count >= 0 AND open_count >= 0"
            " AND succeeded_count + failed_count + open_count = total_count",
            name="counts",
        ),
        Index("ix_settlement_runs_rail", "rail", "window_at"),
        Index("ix_settlement_runs_created", "created_at", "id"),
    )

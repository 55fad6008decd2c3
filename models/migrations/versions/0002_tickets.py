"""Tickets and their verification log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("driver_id", sa.String(40), nullable=False),
        sa.Column("trip", postgresql.JSONB(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'USED', 'CANCELLED', 'EXPIRED')", name=op.f("ck_tickets_status")
        ),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_tickets_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_tickets_booking_id")),
    )
    op.create_index("ix_tickets_user_status", "tickets", ["user_id", "status"])
    op.create_index("ix_tickets_driver_status", "tickets", ["driver_id", "status"])
    op.create_index("ix_tickets_status_valid_until", "tickets", ["status", "valid_until"])
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"])
    op.create_index("ix_tickets_status_changed", "tickets", ["status", "status_changed_at"])
    op.create_table(
        "ticket_verifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("driver_id", sa.String(200), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("location", postgresql.JSONB(), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(100), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_verifications")),
        sa.UniqueConstraint("nonce", name=op.f("uq_ticket_verifications_nonce")),
    )
    op.create_index("ix_ticket_verifications_ticket", "ticket_verifications", ["ticket_id", "id"])
    # The verification log is evidence: append-only like the audit log.
    op.execute(
        "CREATE TRIGGER ticket_verifications_append_only BEFORE UPDATE OR DELETE "
        "ON ticket_verifications FOR EACH ROW EXECUTE FUNCTION refuse_change();"
    )


def downgrade() -> None:
    op.drop_table("ticket_verifications")
    op.drop_table("tickets")

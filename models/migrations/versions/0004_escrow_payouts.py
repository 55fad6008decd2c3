"""Escrow holds and their movements, payout schedules and payouts, and the outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escrow_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payer_id", sa.String(length=200), nullable=False),
        sa.Column("payee_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("released_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("dispute_reason", sa.Text(), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("approvals", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("placement_id", sa.String(length=100), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reason IN ('guarantee_period', 'dispute', 'verification', 'other')",
            name=op.f("ck_escrow_holds_reason"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'partially_released', 'released', 'refunded', 'cancelled')",
            name=op.f("ck_escrow_holds_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_escrow_holds_amount")),
        sa.CheckConstraint(
            "released_amount >= 0 AND refunded_amount >= 0 "
            "AND released_amount + refunded_amount <= amount",
            name=op.f("ck_escrow_holds_moved"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_holds")),
    )
    op.create_index("ix_escrow_holds_created", "escrow_holds", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_escrow_holds_payee", "escrow_holds", ["payee_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_escrow_holds_status_release_at", "escrow_holds", ["status", "release_at"], unique=False
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index(
        "ix_outbox_events_entity", "outbox_events", ["entity_type", "entity_id", "id"], unique=False
    )
    op.create_index(
        "ix_outbox_events_undelivered",
        "outbox_events",
        ["id"],
        unique=False,
        postgresql_where="delivered_at IS NULL",
    )
    op.create_table(
        "escrow_movements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('release', 'refund', 'cancel')", name=op.f("ck_escrow_movements_kind")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_escrow_movements_amount")),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["escrow_holds.id"], name=op.f("fk_escrow_movements_hold_id_escrow_holds")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_escrow_movements_ledger_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_movements")),
        sa.UniqueConstraint("key", name=op.f("uq_escrow_movements_key")),
    )
    op.create_index("ix_escrow_movements_hold", "escrow_movements", ["hold_id", "id"], unique=False)
    op.create_table(
        "payout_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payee_id", sa.String(length=200), nullable=False),
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("trigger_event", sa.String(length=32), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("backoff_seconds", sa.Integer(), nullable=False),
        sa.Column("placement_id", sa.String(length=100), nullable=True),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_payout_schedules_status"),
        ),
        sa.CheckConstraint(
            "trigger_event IN ('guarantee_period_end', 'milestone_reached', "
            "'contract_signed', 'manual')",
            name=op.f("ck_payout_schedules_trigger_event"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payout_schedules_amount")),
        sa.CheckConstraint(
            "max_attempts >= 1 AND backoff_seconds >= 1",
            name=op.f("ck_payout_schedules_retry_policy"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["escrow_holds.id"], name=op.f("fk_payout_schedules_hold_id_escrow_holds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_schedules")),
    )
    op.create_index(
        "ix_payout_schedules_created", "payout_schedules", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_payout_schedules_payee", "payout_schedules", ["payee_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_payout_schedules_status_scheduled",
        "payout_schedules",
        ["status", "scheduled_for"],
        unique=False,
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("payee_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("stripe_transfer_id", sa.String(length=100), nullable=False),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_payouts_ledger_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["payout_schedules.id"],
            name=op.f("fk_payouts_schedule_id_payout_schedules"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("schedule_id", name=op.f("uq_payouts_schedule_id")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_payouts_stripe_transfer_id")),
    )

    # Records of money that moved: corrections are new rows, never edits.
    for table in ("escrow_movements", "payouts"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_change();"
        )


def downgrade() -> None:
    op.drop_table("payouts")
    op.drop_index("ix_payout_schedules_status_scheduled", table_name="payout_schedules")
    op.drop_index("ix_payout_schedules_payee", table_name="payout_schedules")
    op.drop_index("ix_payout_schedules_created", table_name="payout_schedules")
    op.drop_table("payout_schedules")
    op.drop_index("ix_escrow_movements_hold", table_name="escrow_movements")
    op.drop_table("escrow_movements")
    op.drop_index(
        "ix_outbox_events_undelivered",
        table_name="outbox_events",
        postgresql_where="delivered_at IS NULL",
    )
    op.drop_index("ix_outbox_events_entity", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.drop_index("ix_escrow_holds_status_release_at", table_name="escrow_holds")
    op.drop_index("ix_escrow_holds_payee", table_name="escrow_holds")
    op.drop_index("ix_escrow_holds_created", table_name="escrow_holds")
    op.drop_table("escrow_holds")

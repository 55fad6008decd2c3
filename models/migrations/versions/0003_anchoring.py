"""Anchor batches, ticket proofs and the chain transaction sender's records.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "anchor_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("chain_id", sa.BigInteger(), nullable=True),
        sa.Column("contract_address", sa.String(42), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(66), nullable=True),
        sa.Column("confirmations", sa.Integer(), nullable=True),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')",
            name=op.f("ck_anchor_batches_status"),
        ),
        sa.CheckConstraint("leaf_count > 0", name=op.f("ck_anchor_batches_leaf_count")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anchor_batches")),
        sa.UniqueConstraint("root", name=op.f("uq_anchor_batches_root")),
    )
    op.create_index("ix_anchor_batches_status", "anchor_batches", ["status", "id"])
    op.create_table(
        "ticket_anchors",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(32), nullable=False),
        sa.Column("path", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("driver_id", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["anchor_batches.id"],
            name=op.f("fk_ticket_anchors_batch_id_anchor_batches"),
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_anchors")),
        sa.UniqueConstraint("batch_id", "leaf_index", name=op.f("uq_ticket_anchors_batch_id")),
    )
    op.add_column("tickets", sa.Column("anchor_batch_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tickets_anchor_batch_id_anchor_batches"),
        "tickets",
        "anchor_batches",
        ["anchor_batch_id"],
        ["id"],
    )
    op.create_index(
        "ix_tickets_unanchored",
        "tickets",
        ["created_at", "id"],
        postgresql_where=sa.text("anchor_batch_id IS NULL"),
    )
    op.create_table(
        "chain_transactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.String(42), nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("max_priority_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("hashes", postgresql.ARRAY(sa.String(66)), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mined_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "status IN ('SIGNED', 'SENT', 'MINED', 'REVERTED')",
            name=op.f("ck_chain_transactions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_transactions")),
        sa.UniqueConstraint("purpose", name=op.f("uq_chain_transactions_purpose")),
    )
    op.create_index("ix_chain_transactions_sender_nonce", "chain_transactions", ["sender", "nonce"])


def downgrade() -> None:
    op.drop_table("chain_transactions")
    op.drop_index("ix_tickets_unanchored", table_name="tickets")
    op.drop_constraint(
        op.f("fk_tickets_anchor_batch_id_anchor_batches"), "tickets", type_="foreignkey"
    )
    op.drop_column("tickets", "anchor_batch_id")
    op.drop_table("ticket_anchors")
    op.drop_table("anchor_batches")

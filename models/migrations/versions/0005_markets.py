"""Prediction markets: markets, options, commitments, resolutions and per-user payouts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('distributing', 'completed', 'disputed')"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        )
    ]


def upgrade() -> None:
    op.create_table(
        "markets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("question", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("creator_id", sa.String(length=200), nullable=False),
        sa.Column("house_fee_bps", sa.Integer(), nullable=False),
        sa.Column("creator_fee_bps", sa.Integer(), nullable=False),
        sa.Column("no_winners", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("winning_option_id", sa.Uuid(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('binary', 'multi')", name=op.f("ck_markets_kind")),
        sa.CheckConstraint("no_winners IN ('refund', 'house')", name=op.f("ck_markets_no_winners")),
        sa.CheckConstraint(
            "status IN ('open', 'resolving', 'resolved', 'disputed', 'rolled_back', 'settled')",
            name=op.f("ck_markets_status"),
        ),
        sa.CheckConstraint(
            "house_fee_bps >= 0 AND creator_fee_bps >= 0 "
            "AND house_fee_bps + creator_fee_bps <= 10000",
            name=op.f("ck_markets_fees"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_markets")),
    )
    op.create_index("ix_markets_created", "markets", ["created_at", "id"], unique=False)
    op.create_index("ix_markets_status", "markets", ["status", "created_at"], unique=False)
    op.create_table(
        "market_options",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("market_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("position", sa.String(length=3), nullable=True),
        sa.CheckConstraint("position IN ('yes', 'no')", name=op.f("ck_market_options_position")),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_market_options_market_id_markets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_options")),
    )
    op.create_index(
        "ix_market_options_market_seq", "market_options", ["market_id", "seq"], unique=True
    )
    # Markets and their options point at each other: this side is added once both exist.
    op.create_foreign_key(
        "fk_markets_winning_option_id_market_options",
        "markets",
        "market_options",
        ["winning_option_id"],
        ["id"],
    )
    op.create_table(
        "market_resolutions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("market_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("winning_option_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("pool", sa.BigInteger(), nullable=False),
        sa.Column("house_fee", sa.BigInteger(), nullable=False),
        sa.Column("creator_fee", sa.BigInteger(), nullable=False),
        sa.Column("paid_out", sa.BigInteger(), nullable=False),
        sa.Column("winning_commitments", sa.Integer(), nullable=False),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=True),
        sa.Column("reversal_transaction_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=False),
        sa.Column("dispute_reason", sa.Text(), nullable=True),
        sa.Column("rollback_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint(
            "outcome IN ('winners', 'refund', 'house')", name=op.f("ck_market_resolutions_outcome")
        ),
        sa.CheckConstraint(
            "status IN ('distributing', 'completed', 'disputed', 'rolled_back', 'failed')",
            name=op.f("ck_market_resolutions_status"),
        ),
        sa.CheckConstraint(
            "pool >= 0 AND house_fee >= 0 AND creator_fee >= 0 AND paid_out >= 0 "
            "AND house_fee + creator_fee + paid_out <= pool",
            name=op.f("ck_market_resolutions_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_market_resolutions_ledger_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_market_resolutions_market_id_markets")
        ),
        sa.ForeignKeyConstraint(
            ["reversal_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_market_resolutions_reversal_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["winning_option_id"],
            ["market_options.id"],
            name=op.f("fk_market_resolutions_winning_option_id_market_options"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_resolutions")),
        sa.UniqueConstraint("key", name=op.f("uq_market_resolutions_key")),
    )
    op.create_index(
        "ix_market_resolutions_live",
        "market_resolutions",
        ["market_id"],
        unique=True,
        postgresql_where=sa.text(LIVE),
    )
    op.create_index(
        "ix_market_resolutions_market_attempt",
        "market_resolutions",
        ["market_id", "attempt"],
        unique=True,
    )
    op.create_table(
        "market_commitments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("market_id", sa.Uuid(), nullable=False),
        sa.Column("option_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payout", sa.BigInteger(), nullable=True),
        sa.Column("profit", sa.BigInteger(), nullable=True),
        sa.Column("share", sa.Numeric(precision=14, scale=12), nullable=True),
        sa.Column("resolution_id", sa.Uuid(), nullable=True),
        sa.Column("ledger_transaction_id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "matched_by IN ('option_id', 'position')",
            name=op.f("ck_market_commitments_matched_by"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'won', 'lost', 'refunded')",
            name=op.f("ck_market_commitments_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_market_commitments_amount")),
        sa.CheckConstraint(
            "payout IS NULL OR payout >= 0", name=op.f("ck_market_commitments_payout")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_market_commitments_ledger_transaction_id_ledger_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_market_commitments_market_id_markets")
        ),
        sa.ForeignKeyConstraint(
            ["option_id"],
            ["market_options.id"],
            name=op.f("fk_market_commitments_option_id_market_options"),
        ),
        sa.ForeignKeyConstraint(
            ["resolution_id"],
            ["market_resolutions.id"],
            name=op.f("fk_market_commitments_resolution_id_market_resolutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_commitments")),
    )
    op.create_index(
        "ix_market_commitments_market", "market_commitments", ["market_id", "id"], unique=False
    )
    op.create_index(
        "ix_market_commitments_user", "market_commitments", ["user_id", "id"], unique=False
    )
    op.create_table(
        "market_payouts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("resolution_id", sa.Uuid(), nullable=False),
        sa.Column("market_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("staked", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("profit", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('completed', 'rolled_back')", name=op.f("ck_market_payouts_status")
        ),
        sa.CheckConstraint("staked > 0 AND amount >= 0", name=op.f("ck_market_payouts_amounts")),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_market_payouts_market_id_markets")
        ),
        sa.ForeignKeyConstraint(
            ["resolution_id"],
            ["market_resolutions.id"],
            name=op.f("fk_market_payouts_resolution_id_market_resolutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_payouts")),
    )
    op.create_index(
        "ix_market_payouts_resolution_user",
        "market_payouts",
        ["resolution_id", "user_id"],
        unique=True,
    )
    op.create_index("ix_market_payouts_user", "market_payouts", ["user_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_market_payouts_user", table_name="market_payouts")
    op.drop_index("ix_market_payouts_resolution_user", table_name="market_payouts")
    op.drop_table("market_payouts")
    op.drop_index("ix_market_commitments_user", table_name="market_commitments")
    op.drop_index("ix_market_commitments_market", table_name="market_commitments")
    op.drop_table("market_commitments")
    op.drop_index("ix_market_resolutions_market_attempt", table_name="market_resolutions")
    op.drop_index(
        "ix_market_resolutions_live",
        table_name="market_resolutions",
        postgresql_where=sa.text(LIVE),
    )
    op.drop_table("market_resolutions")
    op.drop_constraint("fk_markets_winning_option_id_market_options", "markets", type_="foreignkey")
    op.drop_index("ix_market_options_market_seq", table_name="market_options")
    op.drop_table("market_options")
    op.drop_index("ix_markets_status", table_name="markets")
    op.drop_index("ix_markets_created", table_name="markets")
    op.drop_table("markets")

"""Payments: payment methods, payments and their splits, fraud checks, refunds, Stripe events.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE payment_number_seq")
    op.execute("CREATE SEQUENCE refund_number_seq")
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("stripe_payment_method_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("brand", sa.String(length=30), nullable=True),
        sa.Column("last4", sa.String(length=4), nullable=True),
        sa.Column("exp_month", sa.Integer(), nullable=True),
        sa.Column("exp_year", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verification_status", sa.String(length=16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
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
            "NOT is_default OR status = 'active'", name=op.f("ck_payment_methods_default_active")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'removed')", name=op.f("ck_payment_methods_status")
        ),
        sa.CheckConstraint(
            "verification_status IN ('unverified', 'pending', 'verified', 'failed')",
            name=op.f("ck_payment_methods_verification_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
        sa.UniqueConstraint(
            "stripe_payment_method_id", name=op.f("uq_payment_methods_stripe_payment_method_id")
        ),
    )
    op.create_index(
        "ix_payment_methods_customer",
        "payment_methods",
        ["customer_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_payment_methods_fingerprint", "payment_methods", ["fingerprint"], unique=False
    )
    op.create_index(
        "uq_payment_methods_default",
        "payment_methods",
        ["customer_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "stripe_customers",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_stripe_customers")),
        sa.UniqueConstraint(
            "stripe_customer_id", name=op.f("uq_stripe_customers_stripe_customer_id")
        ),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.Column("payload", JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivery", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processed', 'ignored', 'dead')",
            name=op.f("ck_stripe_events_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index("ix_stripe_events_payment", "stripe_events", ["payment_id"], unique=False)
    op.create_index("ix_stripe_events_refund", "stripe_events", ["refund_id"], unique=False)
    op.create_index(
        "ix_stripe_events_status", "stripe_events", ["status", "received_at"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("payment_method_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("capture_delay_seconds", sa.Integer(), nullable=True),
        sa.Column("authorization_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=100), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=100), nullable=True),
        sa.Column("amount_authorized", sa.BigInteger(), nullable=False),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("amount_refund_pending", sa.BigInteger(), nullable=False),
        sa.Column("platform_commission", sa.BigInteger(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=True),
        sa.Column("risk_level", sa.String(length=8), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("decline_code", sa.String(length=60), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("metadata", JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
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
            "status IN ('pending', 'in_review', 'authorizing', 'authorized', 'capturing',"
            " 'completed', 'failed', 'cancelled', 'voided')",
            name=op.f("ck_payments_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount")),
        sa.CheckConstraint(
            "amount_authorized BETWEEN 0 AND amount", name=op.f("ck_payments_authorized")
        ),
        sa.CheckConstraint(
            "amount_captured BETWEEN 0 AND amount_authorized", name=op.f("ck_payments_captured")
        ),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refund_pending >= 0"
            " AND amount_refunded + amount_refund_pending <= amount_captured",
            name=op.f("ck_payments_refunds"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name=op.f("fk_payments_payment_method_id_payment_methods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("number", name=op.f("uq_payments_number")),
        sa.UniqueConstraint(
            "stripe_payment_intent_id", name=op.f("uq_payments_stripe_payment_intent_id")
        ),
    )
    op.create_index("ix_payments_created", "payments", ["created_at", "id"], unique=False)
    op.create_index("ix_payments_customer", "payments", ["customer_id", "created_at"], unique=False)
    op.create_index(
        "ix_payments_method", "payments", ["payment_method_id", "created_at"], unique=False
    )
    op.create_index("ix_payments_order", "payments", ["order_id"], unique=False)
    op.create_index("ix_payments_status", "payments", ["status", "created_at"], unique=False)
    op.create_table(
        "fraud_checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("payment_method_id", sa.Uuid(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rules", JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
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
            "risk_level IN ('LOW', 'MEDIUM', 'HIGH')", name=op.f("ck_fraud_checks_risk_level")
        ),
        sa.CheckConstraint(
            "status IN ('passed', 'pending_review', 'approved', 'rejected', 'blocked')",
            name=op.f("ck_fraud_checks_status"),
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name=op.f("ck_fraud_checks_score")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_fraud_checks_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["payment_method_id"],
            ["payment_methods.id"],
            name=op.f("fk_fraud_checks_payment_method_id_payment_methods"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_checks")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_fraud_checks_payment_id")),
    )
    op.create_index(
        "ix_fraud_checks_customer", "fraud_checks", ["customer_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_fraud_checks_level", "fraud_checks", ["risk_level", "created_at"], unique=False
    )
    op.create_index(
        "ix_fraud_checks_status", "fraud_checks", ["status", "created_at"], unique=False
    )
    op.create_table(
        "payment_splits",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.String(length=200), nullable=True),
        sa.Column("account_code", sa.String(length=200), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("commission", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount >= 0 AND commission >= 0 AND gross >= 0", name=op.f("ck_payment_splits_amounts")
        ),
        sa.CheckConstraint(
            "refunded BETWEEN 0 AND captured", name=op.f("ck_payment_splits_refunded")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_splits_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payment_id", "seq", name=op.f("pk_payment_splits")),
    )
    op.create_index("ix_payment_splits_vendor", "payment_splits", ["vendor_id"], unique=False)
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("stripe_refund_id", sa.String(length=100), nullable=True),
        sa.Column("failure_code", sa.String(length=60), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("metadata", JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
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
            "status IN ('pending_approval', 'processing', 'completed', 'failed', 'rejected')",
            name=op.f("ck_refunds_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("number", name=op.f("uq_refunds_number")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    op.create_index("ix_refunds_created", "refunds", ["created_at", "id"], unique=False)
    op.create_index("ix_refunds_order", "refunds", ["order_id"], unique=False)
    op.create_index("ix_refunds_payment", "refunds", ["payment_id", "created_at"], unique=False)
    op.create_index("ix_refunds_status", "refunds", ["status", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_refunds_status", table_name="refunds")
    op.drop_index("ix_refunds_payment", table_name="refunds")
    op.drop_index("ix_refunds_order", table_name="refunds")
    op.drop_index("ix_refunds_created", table_name="refunds")
    op.drop_table("refunds")
    op.drop_index("ix_payment_splits_vendor", table_name="payment_splits")
    op.drop_table("payment_splits")
    op.drop_index("ix_fraud_checks_status", table_name="fraud_checks")
    op.drop_index("ix_fraud_checks_level", table_name="fraud_checks")
    op.drop_index("ix_fraud_checks_customer", table_name="fraud_checks")
    op.drop_table("fraud_checks")
    op.drop_index("ix_payments_status", table_name="payments")
    op.drop_index("ix_payments_order", table_name="payments")
    op.drop_index("ix_payments_method", table_name="payments")
    op.drop_index("ix_payments_customer", table_name="payments")
    op.drop_index("ix_payments_created", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_stripe_events_status", table_name="stripe_events")
    op.drop_index("ix_stripe_events_refund", table_name="stripe_events")
    op.drop_index("ix_stripe_events_payment", table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_table("stripe_customers")
    op.drop_index(
        "uq_payment_methods_default",
        table_name="payment_methods",
        postgresql_where=sa.text("is_default"),
    )
    op.drop_index("ix_payment_methods_fingerprint", table_name="payment_methods")
    op.drop_index("ix_payment_methods_customer", table_name="payment_methods")
    op.drop_table("payment_methods")
    op.execute("DROP SEQUENCE refund_number_seq")
    op.execute("DROP SEQUENCE payment_number_seq")

"""Plans, subscriptions, invoices with their lines, the charge attempts of each invoice, and
the counter that numbers invoices without gaps."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at


class Plan(CreatedAt, Base):
    __tablename__ = "plans"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer)
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name="interval"),
        CheckConstraint("interval_count BETWEEN 1 AND 365", name="interval_count"),
        CheckConstraint("trial_days BETWEEN 0 AND 730", name="trial_days"),
        Index("ix_plans_created", "created_at", "id"),
    )


class Subscription(CreatedAt, Base):
    """The record of a subscription; its workflow ``subscription-{id}`` bills it. Period
    ``period_index`` runs from ``current_period_start`` to ``current_period_end``, both
    counted from ``billing_anchor``. ``credit_balance`` is credit owed to the customer
    (a downgrade's proration) that later invoices draw on."""

    __tablename__ = "subscriptions"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(String(200))
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id"))
    # None: the customer's default payment method when the charge is made.
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_methods.id"))
    status: Mapped[str] = mapped_column(String(16))
    billing_anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_index: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trial_days: Mapped[int] = mapped_column(Integer, default=0)
    trial_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    credit_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # When the workflow fixed the billing anchor on its own clock.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled')",
            name="status",
        ),
        CheckConstraint("current_period_end > current_period_start", name="period"),
        CheckConstraint("credit_balance >= 0", name="credit_balance"),
        Index("ix_subscriptions_customer", "customer_id", "created_at"),
        Index("ix_subscriptions_status", "status", "current_period_end"),
        Index("ix_subscriptions_trial_end", "trial_end"),
        Index("ix_subscriptions_created", "created_at", "id"),
    )


class Invoice(CreatedAt, Base):
    """A draft has no number and its lines are a preview; finalizing fixes the lines, takes
    the next number and posts the invoice to the ledger. A cycle invoice bills one period,
    and the database allows one per period."""

    __tablename__ = "invoices"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id"))
    customer_id: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_added: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_out_of_band: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_payment_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("kind IN ('cycle', 'one_off')", name="kind"),
        CheckConstraint("status IN ('draft', 'open', 'paid', 'uncollectible')", name="status"),
        CheckConstraint("kind = 'one_off' OR period_start IS NOT NULL", name="cycle_period"),
        CheckConstraint("status = 'draft' OR number IS NOT NULL", name="numbered"),
        CheckConstraint(
            "total >= 0 AND credit_applied >= 0 AND credit_added >= 0"
            " AND amount_paid BETWEEN 0 AND total",
            name="amounts",
        ),
        # Never two invoices for one period of a subscription.
        Index(
            "uq_invoices_cycle_period",
            "subscription_id",
            "period_start",
            unique=True,
            postgresql_where=text("kind = 'cycle'"),
        ),
        Index("ix_invoices_subscription", "subscription_id", "created_at"),
        Index("ix_invoices_status_due", "status", "due_at"),
        Index("ix_invoices_customer", "customer_id", "created_at"),
        Index("ix_invoices_created", "created_at", "id"),
    )


class InvoiceLine(CreatedAt, Base):
    """A line of an invoice in minor units (a credit is negative). A line with no invoice is
    pending: a plan change's proration waiting for the subscription's next invoice."""

    __tablename__ = "invoice_lines"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id"))
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(12))
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("plans.id"))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('subscription', 'proration', 'one_off')", name="kind"),
        Index("ix_invoice_lines_invoice", "invoice_id", "created_at"),
        Index(
            "ix_invoice_lines_pending",
            "subscription_id",
            postgresql_where=text("invoice_id IS NULL"),
        ),
    )


class InvoicePaymentAttempt(CreatedAt, Base):
    """One charge of an invoice at Stripe, under the key ``invoice-{id}-attempt-{number}``.
    The database allows one attempt in flight and one success per invoice."""

    __tablename__ = "invoice_payment_attempts"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    trigger: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_methods.id"))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(100))
    stripe_charge_id: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    decline_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        CheckConstraint("number >= 1 AND amount > 0", name="number_amount"),
        Index("uq_invoice_attempts_number", "invoice_id", "number", unique=True),
        Index(
            "uq_invoice_attempts_succeeded",
            "invoice_id",
            unique=True,
            postgresql_where=text("status = 'succeeded'"),
        ),
        Index(
            "uq_invoice_attempts_pending",
            "invoice_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )


class InvoiceNumberCounter(Base):
    """The last invoice number given in an account. Finalizing locks the row, so numbers are
    sequential with no gaps (a sequence would skip numbers on rollback)."""

    __tablename__ = "invoice_number_counters"

    account: Mapped[str] = mapped_column(String(50), primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)

"""Payments with their split between vendors and the platform, the customers' payment methods,
fraud checks, refunds, and the Stripe webhook events received."""

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
    Sequence,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, new_id, updated_at

# Human-readable numbers (PAY-00000042, RFD-00000007) come from these.
PAYMENT_NUMBERS = Sequence("payment_number_seq", metadata=Base.metadata)
REFUND_NUMBERS = Sequence("refund_number_seq", metadata=Base.metadata)


class StripeCustomer(CreatedAt, Base):
    """The Stripe customer that holds a Tollgate customer's payment methods."""

    __tablename__ = "stripe_customers"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(100), unique=True)


class PaymentMethod(CreatedAt, Base):
    """A tokenized payment method: Stripe keeps the card, Tollgate its id and display details."""

    __tablename__ = "payment_methods"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(String(200))
    stripe_payment_method_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    brand: Mapped[str | None] = mapped_column(String(30))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    country: Mapped[str | None] = mapped_column(String(2))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    verification_status: Mapped[str] = mapped_column(String(16))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("status IN ('active', 'removed')", name="status"),
        CheckConstraint(
            "verification_status IN ('unverified', 'pending', 'verified', 'failed')",
            name="verification_status",
        ),
        CheckConstraint("NOT is_default OR status = 'active'", name="default_active"),
        Index("ix_payment_methods_customer", "customer_id", "created_at"),
        Index("ix_payment_methods_fingerprint", "fingerprint"),
        # One default per customer, enforced by the database.
        Index(
            "uq_payment_methods_default",
            "customer_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )


class Payment(CreatedAt, Base):
    __tablename__ = "payments"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(200))
    payment_method_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_methods.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    # Seconds after authorization when the workflow captures by itself; None: by API only.
    capture_delay_seconds: Mapped[int | None] = mapped_column(Integer)
    authorization_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(100))
    amount_authorized: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # Refunds requested and not yet completed or failed: reserved against the capture.
    amount_refund_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    platform_commission: Mapped[int] = mapped_column(BigInteger, default=0)
    risk_score: Mapped[int | None] = mapped_column(Integer)
    risk_level: Mapped[str | None] = mapped_column(String(8))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    decline_code: Mapped[str | None] = mapped_column(String(60))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    authorized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "status IN ('pending', 'in_review', 'authorizing', 'authorized', 'capturing',"
            " 'completed', 'failed', 'cancelled', 'voided')",
            name="status",
        ),
        CheckConstraint("amount_authorized BETWEEN 0 AND amount", name="authorized"),
        CheckConstraint("amount_captured BETWEEN 0 AND amount_authorized", name="captured"),
        # The database itself refuses refunds beyond the capture, whatever the code does.
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refund_pending >= 0"
            " AND amount_refunded + amount_refund_pending <= amount_captured",
            name="refunds",
        ),
        Index("ix_payments_customer", "customer_id", "created_at"),
        Index("ix_payments_order", "order_id"),
        Index("ix_payments_status", "status", "created_at"),
        Index("ix_payments_method", "payment_method_id", "created_at"),
        Index("ix_payments_created", "created_at", "id"),
    )


class PaymentSplit(Base):
    """One receiver of a payment: a vendor's part after commission, or the platform's
    commission (``vendor_id`` None). ``amount`` is the planned part of the payment; what the
    capture and the refunds moved to and from its ledger account is kept beside it."""

    __tablename__ = "payment_splits"

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    vendor_id: Mapped[str | None] = mapped_column(String(200))
    account_code: Mapped[str] = mapped_column(String(200))
    gross: Mapped[int] = mapped_column(BigInteger)  # the vendor's allocation before commission
    commission: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        CheckConstraint("amount >= 0 AND commission >= 0 AND gross >= 0", name="amounts"),
        CheckConstraint("refunded BETWEEN 0 AND captured", name="refunded"),
        Index("ix_payment_splits_vendor", "vendor_id"),
    )


class FraudCheck(CreatedAt, Base):
    __tablename__ = "fraud_checks"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_methods.id"))
    score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    review_notes: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 100", name="score"),
        CheckConstraint("risk_level IN ('LOW', 'MEDIUM', 'HIGH')", name="risk_level"),
        CheckConstraint(
            "status IN ('passed', 'pending_review', 'approved', 'rejected', 'blocked')",
            name="status",
        ),
        Index("ix_fraud_checks_customer", "customer_id", "created_at"),
        Index("ix_fraud_checks_level", "risk_level", "created_at"),
        Index("ix_fraud_checks_status", "status", "created_at"),
    )


class Refund(CreatedAt, Base):
    __tablename__ = "refunds"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    order_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "status IN ('pending_approval', 'processing', 'completed', 'failed', 'rejected')",
            name="status",
        ),
        Index("ix_refunds_payment", "payment_id", "created_at"),
        Index("ix_refunds_order", "order_id"),
        Index("ix_refunds_status", "status", "created_at"),
        Index("ix_refunds_created", "created_at", "id"),
    )


class StripeEvent(Base):
    """A Stripe webhook event, stored once by its id, and how its delivery went."""

    __tablename__ = "stripe_events"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(100))
    payment_id: Mapped[uuid.UUID | None] = mapped_column()
    refund_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by an admin's retry of a dead letter: the delivery workflow's id carries it.
    delivery: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint(
            "status IN ('received', 'processed', 'ignored', 'dead')",
            name="status",
        ),
        Index("ix_stripe_events_status", "status", "received_at"),
        Index("ix_stripe_events_payment", "payment_id"),
        Index("ix_stripe_events_refund", "refund_id"),
    )

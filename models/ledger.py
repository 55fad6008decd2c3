"""Double-entry ledger tables: accounts, transactions and their postings.

Balance per currency and immutability are also enforced by triggers (see the migration), so
no code path, not even raw SQL, can write an unbalanced or edited entry.
"""

import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedAt, new_id


class LedgerAccount(CreatedAt, Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)

    __table_args__ = (
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="type"
        ),
    )


class LedgerTransaction(CreatedAt, Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # Derived from the entity that moved value (e.g. ``payout-{id}``): a retry cannot post twice.
    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)

    postings: Mapped[list["LedgerPosting"]] = relationship(
        back_populates="transaction", order_by="LedgerPosting.seq", lazy="selectin"
    )


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))
    seq: Mapped[int] = mapped_column()
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="postings")

    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_ledger_postings_account_currency", "account_id", "currency"),
        Index("ix_ledger_postings_transaction", "transaction_id", "seq", unique=True),
    )

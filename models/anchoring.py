"""Anchor batches, each ticket's place in one, and the chain transactions that publish them."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt


class AnchorBatch(CreatedAt, Base):
    """A Merkle tree of ticket hashes whose root is published by the Anchor contract.

    Never deleted: it is what a proof points to after its tickets are cleaned up.
    """

    __tablename__ = "anchor_batches"

    # Also the contract's ``batchId``.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    leaf_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    chain_id: Mapped[int | None] = mapped_column(BigInteger)
    contract_address: Mapped[str | None] = mapped_column(String(42))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    confirmations: Mapped[int | None] = mapped_column(Integer)
    # The timestamp of the anchoring block, as the contract records it.
    anchored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')", name="status"),
        CheckConstraint("leaf_count > 0", name="leaf_count"),
        Index("ix_anchor_batches_status", "status", "id"),
    )


class TicketAnchor(Base):
    """A ticket's leaf and audit path. Kept when the ticket is cleaned up (no foreign key to
    it), with the owner ids the proof endpoint needs to decide who may read it."""

    __tablename__ = "ticket_anchors"

    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("anchor_batches.id"))
    leaf_index: Mapped[int] = mapped_column(Integer)
    # SHA-256 of the ticket's signed payload: what its holder can recompute from the QR.
    leaf: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The RFC 6962 audit path: 32-byte sibling hashes, concatenated, leaf level first.
    path: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[str] = mapped_column(String(200))
    driver_id: Mapped[str] = mapped_column(String(40))

    __table_args__ = (UniqueConstraint("batch_id", "leaf_index"),)


class ChainTransaction(CreatedAt, Base):
    """One logical transaction of the serialized sender, keyed by its purpose.

    ``hashes`` holds every signed version (re-sent after a drop, or replaced with higher
    fees), because any one of them may be the one that is mined.
    """

    __tablename__ = "chain_transactions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(100), unique=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[int] = mapped_column(BigInteger)
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    # The latest signed version (public once broadcast: it holds no secret).
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    tx_hash: Mapped[str] = mapped_column(String(66))
    hashes: Mapped[list[str]] = mapped_column(ARRAY(String(66)))
    status: Mapped[str] = mapped_column(String(16))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('SIGNED', 'SENT', 'MINED', 'REVERTED')", name="status"),
        Index("ix_chain_transactions_sender_nonce", "sender", "nonce"),
    )

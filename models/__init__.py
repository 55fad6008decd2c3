"""SQLAlchemy models, one module per domain; importing this package registers them all."""

from models import (
    anchoring,
    audit,
    commissions,
    escrow,
    idempotency,
    ledger,
    markets,
    outbox,
    payments,
    reconciliation,
    settlement_windows,
    subscriptions,
    tickets,
    transfers,
    webhooks,
)
from models.base import Base

__all__ = [
    "Base",
    "anchoring",
    "audit",
    "commissions",
    "escrow",
    "idempotency",
    "ledger",
    "markets",
    "outbox",
    "payments",
    "reconciliation",
    "settlement_windows",
    "subscriptions",
    "tickets",
    "transfers",
    "webhooks",
]

"""Transfers and batch payouts: statuses, the moves between them, and the validation of a
batch's items, all pure (the one database question, which references a partner already
used, is asked by ``services.transfers`` and passed in).

A transfer is PENDING when created (or QUEUED with a ``window_at`` when a settlement window
of its rail will send it), PROCESSING while its rail is paying, then SUCCEEDED or FAILED;
a failed one can be put back to PENDING (retry), a pending or queued one CANCELLED.

A batch is PROCESSING from its creation (it was validated whole before anything was stored)
until every item is final; it then ends COMPLETED (all succeeded), PARTIALLY_COMPLETED or
FAILED (none succeeded). Retrying its failed items makes it PROCESSING again.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.errors import Conflict, TollgateError, ValidationError
from domain.ledger import MAX_POSTING_AMOUNT
from domain.rails import Rail, RouteDecision, RoutingRules, route

MAX_BATCH_ITEMS = 1000
MAX_REFERENCE_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 500
ITEM_FIELDS = ("reference", "destination", "amount", "currency", "description")
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/#-]*")


class TransferStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"  # waits for its rail's settlement window (window_at)
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BatchStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"


class BatchSource(StrEnum):
    JSON = "json"
    CSV = "csv"


OPEN = frozenset({TransferStatus.PENDING, TransferStatus.QUEUED, TransferStatus.PROCESSING})
FINAL = frozenset({TransferStatus.SUCCEEDED, TransferStatus.FAILED, TransferStatus.CANCELLED})

_MOVES: dict[TransferStatus, frozenset[TransferStatus]] = {
    # FAILED straight from PENDING: an item that could not even start (its row refused).
    TransferStatus.PENDING: frozenset(
        {
            TransferStatus.PROCESSING,
            TransferStatus.QUEUED,
            TransferStatus.CANCELLED,
            TransferStatus.FAILED,
        }
    ),
    TransferStatus.QUEUED: frozenset({TransferStatus.PROCESSING, TransferStatus.CANCELLED}),
    TransferStatus.PROCESSING: frozenset({TransferStatus.SUCCEEDED, TransferStatus.FAILED}),
    TransferStatus.FAILED: frozenset({TransferStatus.PENDING}),
    TransferStatus.SUCCEEDED: frozenset(),
    TransferStatus.CANCELLED: frozenset(),
}


def check_transfer_move(current: TransferStatus, target: TransferStatus) -> None:
    if target not in _MOVES[current]:
        raise Conflict(
            f"a {current} transfer cannot become {target}",
            code="transfer_state_conflict",
            status=current.value,
        )


def batch_outcome(succeeded: int, failed: int, cancelled: int) -> BatchStatus:
    """The status of a batch whose items are all final."""
    if failed == 0 and cancelled == 0:
        return BatchStatus.COMPLETED
    if succeeded == 0:
        return BatchStatus.FAILED
    return BatchStatus.PARTIALLY_COMPLETED


def idempotency_key(transfer_id: object, run: int = 0) -> str:
    """The provider's key of a transfer: from the entity, never an attempt. It changes only
    after the provider *refused* the transfer (a refusal may be stored under the key and
    replayed) and the transfer is retried; after outages it stays, since one of those
    attempts may have paid."""
    return f"transfer-{transfer_id}" if run == 0 else f"transfer-{transfer_id}-retry-{run}"


@dataclass(frozen=True, slots=True)
class ItemError:
    """One problem with one item: ``row`` is the item's 1-based position (for a CSV upload,
    the data row: the header is row 0)."""

    row: int
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class ValidItem:
    """An item that passed validation, with its route."""

    index: int
    reference: str
    destination: str
    amount: int
    currency: str
    description: str | None
    route: RouteDecision

    @property
    def rail(self) -> Rail:
        return self.route.rail


def _text(item: Mapping[str, Any], name: str) -> Any:
    value = item.get(name)
    return value.strip() if isinstance(value, str) else value


def check_item(
    row: int, item: Any, partner_id: str, rules: RoutingRules
) -> tuple[ValidItem | None, list[ItemError]]:
    """Every problem of one item (all its fields are checked, not only the first)."""
    if not isinstance(item, Mapping):
        return None, [ItemError(row, None, "invalid_item", "an item is an object")]
    errors: list[ItemError] = []
    unknown = sorted(str(name) for name in item if name not in ITEM_FIELDS)
    if unknown:
        errors.append(
            ItemError(row, unknown[0], "unknown_field", f"unknown field(s) {', '.join(unknown)}")
        )
    reference = _text(item, "reference")
    if not isinstance(reference, str) or not reference:
        errors.append(ItemError(row, "reference", "missing", "reference is required"))
    elif len(reference) > MAX_REFERENCE_LENGTH or not _REFERENCE.fullmatch(reference):
        errors.append(
            ItemError(
                row,
                "reference",
                "invalid",
                f"reference is 1 to {MAX_REFERENCE_LENGTH} letters, digits or _.:/#-,"
                " starting with a letter or digit",
            )
        )
    destination = _text(item, "destination")
    if not isinstance(destination, str) or not destination:
        errors.append(ItemError(row, "destination", "missing", "destination is required"))
    amount = item.get("amount")
    if amount is None or amount == "":
        errors.append(ItemError(row, "amount", "missing", "amount is required"))
    elif isinstance(amount, bool) or not isinstance(amount, int):
        errors.append(
            ItemError(row, "amount", "invalid", "amount is an integer count of minor units")
        )
    elif not 0 < amount <= MAX_POSTING_AMOUNT:
        errors.append(ItemError(row, "amount", "invalid", "amount must be positive"))
    # Not trimmed, unlike the texts: a code with spaces ("usd ") is not a currency (a CSV's
    # cells are trimmed when read).
    currency: Any = item.get("currency")
    if not isinstance(currency, str) or not currency:
        errors.append(ItemError(row, "currency", "missing", "currency is required"))
    description = _text(item, "description") or None
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH
    ):
        errors.append(
            ItemError(
                row,
                "description",
                "invalid",
                f"description is text of at most {MAX_DESCRIPTION_LENGTH} characters",
            )
        )
    decision: RouteDecision | None = None
    if isinstance(destination, str) and destination and isinstance(currency, str) and currency:
        try:
            decision = route(currency, destination, partner_id, rules)
        except TollgateError as refused:
            errors.append(ItemError(row, refused.param, refused.code, refused.message))
    if errors or decision is None or not isinstance(amount, int):
        return None, errors
    return (
        ValidItem(
            index=row - 1,
            reference=reference,
            destination=destination,
            amount=amount,
            currency=currency.upper(),
            description=description,
            route=decision,
        ),
        [],
    )


def check_items(
    items: Sequence[Any],
    partner_id: str,
    rules: RoutingRules,
    used_references: Collection[str] = (),
) -> tuple[list[ValidItem], list[ItemError]]:
    """Every item checked, every error kept: the items (when there are no errors) and the
    errors in row order. ``used_references`` are the partner's references already stored."""
    if not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise ValidationError(
            f"a batch has 1 to {MAX_BATCH_ITEMS} items, not {len(items)}",
            code="batch_size",
            param="items",
        )
    valid: list[ValidItem] = []
    errors: list[ItemError] = []
    first_row: dict[str, int] = {}
    for row, item in enumerate(items, start=1):
        checked, problems = check_item(row, item, partner_id, rules)
        errors.extend(problems)
        reference = _text(item, "reference") if isinstance(item, Mapping) else None
        if isinstance(reference, str) and reference:
            if reference in first_row:
                errors.append(
                    ItemError(
                        row,
                        "reference",
                        "duplicate_reference",
                        f"reference {reference!r} is also on row {first_row[reference]}",
                    )
                )
            else:
                first_row[reference] = row
                if reference in used_references:
                    errors.append(
                        ItemError(
                            row,
                            "reference",
                            "reference_used",
                            f"reference {reference!r} was used by an earlier transfer of"
                            f" {partner_id}",
                        )
                    )
        if checked is not None:
            valid.append(checked)
    return (valid if not errors else []), errors


def item_references(items: Sequence[Any]) -> list[str]:
    """The references of the items, as they will be compared (stripped)."""
    found = []
    for item in items:
        if isinstance(item, Mapping):
            reference = _text(item, "reference")
            if isinstance(reference, str) and reference:
                found.append(reference)
    return found

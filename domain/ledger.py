"""Double-entry rules: what makes a ledger transaction acceptable, with no I/O."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import ValidationError
from domain.money import Money

MAX_POSTING_AMOUNT = 2**62  # keeps every sum inside PostgreSQL's bigint


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


@dataclass(frozen=True, slots=True)
class PostingLine:
    """One side of a movement: a positive amount debits the account, a negative one credits it."""

    account_code: str
    money: Money


def imbalances(postings: Iterable[PostingLine]) -> dict[str, int]:
    """Sum per currency of the postings that do not net to zero."""
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.money.currency] += posting.money.amount
    return {currency: total for currency, total in totals.items() if total != 0}


def check_transaction(postings: Sequence[PostingLine]) -> None:
    """Raise ``ValidationError`` unless the postings form a balanced double-entry transaction."""
    if len(postings) < 2:
        raise ValidationError("A transaction needs at least two postings", param="postings")
    for index, posting in enumerate(postings):
        if posting.money.amount == 0:
            raise ValidationError("Postings must not be zero", param=f"postings[{index}].amount")
        if abs(posting.money.amount) > MAX_POSTING_AMOUNT:
            raise ValidationError("Posting amount too large", param=f"postings[{index}].amount")
    unbalanced = imbalances(postings)
    if unbalanced:
        detail = ", ".join(
            f"{currency} {total:+d}" for currency, total in sorted(unbalanced.items())
        )
        raise ValidationError(
            f"Postings must sum to zero per currency (off by {detail})",
            code="unbalanced_transaction",
            param="postings",
        )


def transfer(source: str, destination: str, money: Money) -> list[PostingLine]:
    """The two postings that move ``money`` from ``source`` to ``destination``."""
    if money.amount <= 0:
        raise ValidationError("A transfer moves a positive amount", param="amount")
    return [PostingLine(destination, money), PostingLine(source, -money)]

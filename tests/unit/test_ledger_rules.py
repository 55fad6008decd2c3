"""Double-entry rules of ``domain.ledger`` and ``domain.money``."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.ledger import PostingLine, check_transaction, imbalances, transfer
from domain.money import Money

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "USDC"])
ACCOUNTS = st.sampled_from(["cash", "escrow", "vendor:1", "vendor:2", "fees"])
AMOUNTS = st.integers(min_value=1, max_value=10**12)


@given(st.lists(st.tuples(ACCOUNTS, ACCOUNTS, AMOUNTS, CURRENCIES), min_size=1, max_size=50))
def test_any_sequence_of_transfers_conserves_money_per_currency(moves: list) -> None:
    postings: list[PostingLine] = []
    for source, destination, amount, currency in moves:
        lines = transfer(source, destination, Money(amount, currency))
        check_transaction(lines)
        postings.extend(lines)
    assert imbalances(postings) == {}


@given(
    st.lists(st.tuples(ACCOUNTS, st.integers(-(10**9), 10**9), CURRENCIES), min_size=2, max_size=8)
)
def test_check_accepts_exactly_the_balanced_transactions(lines: list) -> None:
    postings = [PostingLine(a, Money(amount, c)) for a, amount, c in lines]
    balanced = all(amount != 0 for _, amount, _ in lines) and not imbalances(postings)
    if balanced:
        check_transaction(postings)
    else:
        with pytest.raises(ValidationError):
            check_transaction(postings)


def test_unbalanced_transaction_is_refused_with_the_currency_that_is_off() -> None:
    with pytest.raises(ValidationError) as caught:
        check_transaction(
            [PostingLine("cash", Money(100, "USD")), PostingLine("fees", Money(-99, "USD"))]
        )
    assert caught.value.code == "unbalanced_transaction"
    assert "USD +1" in caught.value.message


def test_balanced_in_total_but_not_per_currency_is_refused() -> None:
    with pytest.raises(ValidationError):
        check_transaction(
            [PostingLine("cash", Money(100, "USD")), PostingLine("cash", Money(-100, "EUR"))]
        )


def test_single_posting_and_zero_postings_are_refused() -> None:
    with pytest.raises(ValidationError):
        check_transaction([PostingLine("cash", Money(0, "USD"))])
    with pytest.raises(ValidationError):
        check_transaction(
            [PostingLine("cash", Money(0, "USD")), PostingLine("fees", Money(0, "USD"))]
        )


def test_money_refuses_floats_unknown_currencies_and_mixing() -> None:
    with pytest.raises(ValidationError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money(1, "XXX")
    with pytest.raises(ValidationError):
        Money(1, "USD") + Money(1, "EUR")
    assert Money(5, "usd") == Money(5, "USD")
    assert Money(-1234, "USD").format() == "-12.34 USD"
    assert Money(1500, "JPY").format() == "1500 JPY"


def test_transfer_moves_only_positive_amounts() -> None:
    with pytest.raises(ValidationError):
        transfer("a", "b", Money(0, "USD"))

"""Reconciliation's matching, table-driven: each case a ledger side and a provider side, and
the counts and discrepancies expected; then the period edges, the match rate and the
period checks."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from domain.errors import ValidationError
from domain.reconciliation import (
    DiscrepancyType,
    ExternalRecord,
    LedgerRecord,
    check_note,
    check_period,
    match_rate,
    previous_day,
    reconcile,
    sum_totals,
)

HASH = "0x" + "ab" * 32


def ledger(external_id: str, amount: int = 1_000, **fields: object) -> LedgerRecord:
    values: dict[str, object] = {
        "kind": "transfer",
        "id": f"id-{external_id}",
        "external_id": external_id,
        "amount": amount,
        "currency": "USD",
    }
    values.update(fields)
    return LedgerRecord(**values)  # type: ignore[arg-type]


def seen(external_id: str, amount: int = 1_000, **fields: object) -> ExternalRecord:
    values: dict[str, object] = {
        "external_id": external_id,
        "amount": amount,
        "currency": "USD",
        "ref": f"txn-{external_id}",
    }
    values.update(fields)
    return ExternalRecord(**values)  # type: ignore[arg-type]


@dataclass
class Case:
    name: str
    ledger: list[LedgerRecord]
    external: list[ExternalRecord]
    matched: int
    found: list[tuple[DiscrepancyType, str]] = field(default_factory=list)
    counts: tuple[int, int] | None = None  # (ledger, external) when not their lengths


CASES = [
    Case("nothing at all", [], [], 0),
    Case("one pair", [ledger("tr_1")], [seen("tr_1")], 1),
    Case(
        "many pairs, in any order",
        [ledger(f"tr_{i}", 100 + i) for i in range(50)],
        [seen(f"tr_{i}", 100 + i) for i in reversed(range(50))],
        50,
    ),
    Case(
        "the amount differs",
        [ledger("tr_1", 1_000)],
        [seen("tr_1", 999)],
        0,
        [(DiscrepancyType.AMOUNT_MISMATCH, "tr_1")],
    ),
    Case(
        "the currency differs",
        [ledger("tr_1")],
        [seen("tr_1", currency="EUR")],
        0,
        [(DiscrepancyType.AMOUNT_MISMATCH, "tr_1")],
    ),
    Case(
        "currencies compare whatever their case",
        [ledger("tr_1", currency="usd")],
        [seen("tr_1", currency="USD")],
        1,
    ),
    Case(
        "the provider has no record",
        [ledger("tr_1"), ledger("tr_2")],
        [seen("tr_2")],
        1,
        [(DiscrepancyType.MISSING_SETTLEMENT, "tr_1")],
    ),
    Case(
        "the ledger has no record",
        [ledger("tr_1")],
        [seen("tr_1"), seen("tr_9")],
        1,
        [(DiscrepancyType.UNEXPECTED_EXTERNAL, "tr_9")],
    ),
    Case(
        "two ledger records claim one transfer",
        [ledger("tr_1"), ledger("tr_1", kind="payout", id="payout-1")],
        [seen("tr_1")],
        0,
        [(DiscrepancyType.DUPLICATE, "tr_1")],
    ),
    Case(
        "the provider has two records of one transfer",
        [ledger("tr_1")],
        [seen("tr_1"), seen("tr_1", ref="txn-again")],
        0,
        [(DiscrepancyType.DUPLICATE, "tr_1")],
    ),
    Case(
        "two Transfer logs in one chain transaction",
        [ledger(HASH, 12_340_000, currency="USDC")],
        [
            seen(HASH, 12_340_000, currency="USDC", ref=f"{HASH}:0"),
            seen(HASH, 12_340_000, currency="USDC", ref=f"{HASH}:1"),
        ],
        0,
        [(DiscrepancyType.DUPLICATE, HASH)],
    ),
    Case(
        "chain hashes match whatever their case",
        [ledger(HASH.upper().replace("0X", "0x"), currency="USDC")],
        [seen(HASH, currency="USDC")],
        1,
    ),
    Case(
        "two unclaimed records of one id are one unexpected",
        [],
        [seen("tr_9"), seen("tr_9", ref="txn-again")],
        0,
        [(DiscrepancyType.UNEXPECTED_EXTERNAL, "tr_9")],
    ),
    Case(
        "all four at once",
        [ledger("tr_ok"), ledger("tr_gone"), ledger("tr_off", 5), ledger("tr_2x"), ledger("tr_2x")],
        [seen("tr_ok"), seen("tr_off", 6), seen("tr_2x"), seen("tr_who")],
        1,
        [
            (DiscrepancyType.MISSING_SETTLEMENT, "tr_gone"),
            (DiscrepancyType.AMOUNT_MISMATCH, "tr_off"),
            (DiscrepancyType.DUPLICATE, "tr_2x"),
            (DiscrepancyType.UNEXPECTED_EXTERNAL, "tr_who"),
        ],
    ),
    Case(
        "a ledger record outside the period is not reported, nor its pair",
        [ledger("tr_1", in_period=False), ledger("tr_2", in_period=False)],
        [seen("tr_1")],
        0,
        counts=(0, 1),
    ),
    Case(
        "a provider record outside the period matches one inside",
        [ledger("tr_1")],
        [seen("tr_1", in_period=False)],
        1,
        counts=(1, 0),
    ),
    Case(
        "an unclaimed provider record outside the period is the next run's",
        [],
        [seen("tr_9", in_period=False)],
        0,
        counts=(0, 0),
    ),
    Case(
        "missing, inside the period, though the window was wider",
        [ledger("tr_1")],
        [seen("tr_0", in_period=False)],
        0,
        [(DiscrepancyType.MISSING_SETTLEMENT, "tr_1")],
        counts=(1, 0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_matching(case: Case) -> None:
    outcome = reconcile(case.ledger, case.external)

    assert outcome.matched_count == case.matched
    assert sorted((d.type, d.external_id) for d in outcome.discrepancies) == sorted(case.found)
    assert (outcome.ledger_count, outcome.external_count) == (
        case.counts or (len(case.ledger), len(case.external))
    )


def test_a_discrepancy_says_what_each_side_shows() -> None:
    outcome = reconcile(
        [ledger("tr_off", 1_000), ledger("tr_gone", 700, kind="payout", id="p-1")],
        [seen("tr_off", 990, ref="txn_1"), seen("tr_who", 55)],
    )
    found = {d.type: d for d in outcome.discrepancies}

    mismatch = found[DiscrepancyType.AMOUNT_MISMATCH]
    assert (mismatch.expected_amount, mismatch.actual_amount, mismatch.currency) == (
        1_000,
        990,
        "USD",
    )
    assert (mismatch.ledger_kind, mismatch.ledger_id) == ("transfer", "id-tr_off")
    assert "txn_1" in mismatch.detail
    missing = found[DiscrepancyType.MISSING_SETTLEMENT]
    assert (missing.ledger_kind, missing.ledger_id, missing.expected_amount) == (
        "payout",
        "p-1",
        700,
    )
    assert missing.actual_amount is None
    unexpected = found[DiscrepancyType.UNEXPECTED_EXTERNAL]
    assert (unexpected.ledger_id, unexpected.expected_amount, unexpected.actual_amount) == (
        None,
        None,
        55,
    )


def test_totals_are_by_currency_and_count_the_period_only() -> None:
    outcome = reconcile(
        [
            ledger("tr_1", 100),
            ledger("tr_2", 200),
            ledger("tr_3", 50, currency="EUR"),
            ledger("tr_4", 1, in_period=False),
        ],
        [seen("tr_1", 100), seen("tr_2", 201), seen("tr_3", 50, currency="EUR"), seen("tr_4", 1)],
    )

    assert {c: t.as_dict() for c, t in outcome.totals.items()} == {
        "USD": {"ledger": 300, "external": 302, "matched": 100},
        "EUR": {"ledger": 50, "external": 50, "matched": 50},
    }
    assert sum_totals(
        [{"USD": {"ledger": 1, "external": 2, "matched": 1}}, {"USD": {"ledger": 3}}]
    ) == {"USD": {"ledger": 4, "external": 2, "matched": 1}}


def test_a_hundred_thousand_records_match_in_one_pass() -> None:
    records = [ledger(f"tr_{i}", 100 + i % 900) for i in range(100_000)]
    provider = [seen(f"tr_{i}", 100 + i % 900) for i in range(100_000)]

    outcome = reconcile(records, provider)

    assert (outcome.matched_count, outcome.discrepancy_count) == (100_000, 0)


@pytest.mark.parametrize(
    ("matched", "discrepancies", "rate"),
    [
        (0, 0, Decimal(100)),
        (10, 0, Decimal(100)),
        (0, 3, Decimal(0)),
        (1, 1, Decimal(50)),
        (2, 1, Decimal("66.6666")),
        (999_999, 1, Decimal("99.9999")),
        (9_999_999, 1, Decimal("99.9999")),  # never rounded up to 100
    ],
)
def test_match_rate(matched: int, discrepancies: int, rate: Decimal) -> None:
    assert match_rate(matched, discrepancies) == rate


NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


def test_the_previous_utc_day() -> None:
    assert previous_day(NOW) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    # 00:30 in UTC is still the 20th's day before in UTC, though the 21st at UTC+1.
    late = datetime(2026, 11, 21, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert previous_day(late)[0] == datetime(2026, 11, 19, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "param"),
    [
        (NOW, NOW, "period_start"),
        (NOW, NOW - timedelta(hours=1), "period_start"),
        (NOW + timedelta(hours=1), NOW + timedelta(hours=2), "period_start"),
        (NOW - timedelta(days=40), NOW, "period_end"),
        (NOW.replace(tzinfo=None), NOW, "period_start"),
        (NOW - timedelta(hours=1), NOW.replace(tzinfo=None), "period_end"),
    ],
)
def test_periods_refused(start: datetime, end: datetime, param: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_period(start, end, now=NOW)
    assert refused.value.param == param


def test_a_period_may_end_ahead_and_comes_back_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    start, end = check_period(
        datetime(2026, 11, 21, 1, 0, tzinfo=paris), NOW + timedelta(hours=1), now=NOW
    )
    assert start == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    assert start.tzinfo is UTC and end.tzinfo is UTC


@pytest.mark.parametrize("note", [None, "", "   ", 12, "x" * 2001])
def test_a_resolution_needs_a_note(note: object) -> None:
    with pytest.raises(ValidationError):
        check_note(note)


def test_a_note_is_trimmed() -> None:
    assert check_note("  refunded by hand  ") == "refunded by hand"

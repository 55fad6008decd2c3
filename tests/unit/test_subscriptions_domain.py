"""The pure rules of subscriptions: billing period boundaries counted from an anchor (with
month ends clamped and never drifting), proration rounded half up, an invoice's totals
against the customer's credit, and the dunning schedule."""

import calendar
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.subscriptions import (
    DEFAULT_RETRY_DAYS,
    Interval,
    check_retry_days,
    invoice_totals,
    next_retry_at,
    period_boundary,
    prorate,
    proration,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# period_boundary


@pytest.mark.parametrize(
    ("anchor", "interval", "count", "index", "expected"),
    [
        # index 0 is the anchor itself, whatever the interval
        (utc(2024, 3, 10, 12), Interval.DAY, 1, 0, utc(2024, 3, 10, 12)),
        (utc(2024, 3, 10, 12), Interval.MONTH, 3, 0, utc(2024, 3, 10, 12)),
        # days and weeks, with counts
        (utc(2024, 3, 10, 12), Interval.DAY, 1, 1, utc(2024, 3, 11, 12)),
        (utc(2024, 3, 10, 12), Interval.DAY, 3, 2, utc(2024, 3, 16, 12)),
        (utc(2024, 2, 28), Interval.DAY, 1, 1, utc(2024, 2, 29)),
        (utc(2023, 2, 28), Interval.DAY, 1, 1, utc(2023, 3, 1)),
        (utc(2024, 3, 10, 12), Interval.WEEK, 1, 1, utc(2024, 3, 17, 12)),
        (utc(2024, 3, 10, 12), Interval.WEEK, 2, 3, utc(2024, 4, 21, 12)),
        # months, with counts and across a year end
        (utc(2024, 1, 15, 9, 30), Interval.MONTH, 1, 1, utc(2024, 2, 15, 9, 30)),
        (utc(2024, 1, 15), Interval.MONTH, 1, 12, utc(2025, 1, 15)),
        (utc(2024, 11, 15), Interval.MONTH, 1, 2, utc(2025, 1, 15)),
        (utc(2024, 1, 15), Interval.MONTH, 3, 1, utc(2024, 4, 15)),
        (utc(2024, 1, 15), Interval.MONTH, 3, 4, utc(2025, 1, 15)),
        # month ends: Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 (counted from the anchor: no drift)
        (utc(2023, 1, 31), Interval.MONTH, 1, 1, utc(2023, 2, 28)),
        (utc(2023, 1, 31), Interval.MONTH, 1, 2, utc(2023, 3, 31)),
        (utc(2023, 1, 31), Interval.MONTH, 1, 3, utc(2023, 4, 30)),
        (utc(2023, 1, 31), Interval.MONTH, 1, 4, utc(2023, 5, 31)),
        # in a leap year Feb 29
        (utc(2024, 1, 31), Interval.MONTH, 1, 1, utc(2024, 2, 29)),
        (utc(2024, 1, 31), Interval.MONTH, 1, 2, utc(2024, 3, 31)),
        (utc(2024, 1, 30), Interval.MONTH, 1, 1, utc(2024, 2, 29)),
        (utc(2023, 8, 31), Interval.MONTH, 6, 1, utc(2024, 2, 29)),
        # years, and an anchor on Feb 29
        (utc(2023, 6, 1), Interval.YEAR, 1, 1, utc(2024, 6, 1)),
        (utc(2023, 6, 1), Interval.YEAR, 2, 3, utc(2029, 6, 1)),
        (utc(2024, 2, 29), Interval.YEAR, 1, 1, utc(2025, 2, 28)),
        (utc(2024, 2, 29), Interval.YEAR, 1, 3, utc(2027, 2, 28)),
        (utc(2024, 2, 29), Interval.YEAR, 1, 4, utc(2028, 2, 29)),
        (utc(2024, 2, 29), Interval.YEAR, 2, 2, utc(2028, 2, 29)),
    ],
)
def test_period_boundary(
    anchor: datetime, interval: Interval, count: int, index: int, expected: datetime
) -> None:
    assert period_boundary(anchor, interval, count, index) == expected


def test_period_boundaries_keep_the_time_of_day_and_the_zone() -> None:
    anchor = utc(2023, 1, 31, 23, 59)
    boundary = period_boundary(anchor, Interval.MONTH, 1, 1)
    assert boundary == utc(2023, 2, 28, 23, 59)
    assert boundary.tzinfo is UTC


@given(
    anchor=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    interval=st.sampled_from(list(Interval)),
    count=st.integers(min_value=1, max_value=12),
    index=st.integers(min_value=0, max_value=40),
)
def test_property_periods_are_consecutive_and_increasing(
    anchor: datetime, interval: Interval, count: int, index: int
) -> None:
    start = period_boundary(anchor, interval, count, index)
    end = period_boundary(anchor, interval, count, index + 1)
    assert end > start
    if interval in (Interval.MONTH, Interval.YEAR):
        # A clamped day never drifts: the anchor's day, or the month's last day if shorter.
        assert start.day == min(anchor.day, calendar.monthrange(start.year, start.month)[1])
        assert (start.hour, start.minute, start.second) == (
            anchor.hour,
            anchor.minute,
            anchor.second,
        )


# prorate and proration

START = utc(2024, 4, 1)
END = utc(2024, 5, 1)  # 30 days
MIDDLE = utc(2024, 4, 16)


@pytest.mark.parametrize(
    ("amount", "at", "expected"),
    [
        (3_000, MIDDLE, 1_500),
        # exact halves round half up
        (1, MIDDLE, 1),
        (3, MIDDLE, 2),
        (1_001, MIDDLE, 501),
        (2, MIDDLE, 1),
        # a quarter of 5 is 1.25 -> 1, three quarters 3.75 -> 4
        (5, utc(2024, 4, 23, 12), 1),
        (5, utc(2024, 4, 8, 12), 4),
        # at the start: the whole amount; at or after the end: nothing
        (3_000, START, 3_000),
        (3_000, END, 0),
        (3_000, END + timedelta(days=3), 0),
        # before the start: clamped to the whole amount, never more
        (3_000, START - timedelta(days=10), 3_000),
        (0, MIDDLE, 0),
    ],
)
def test_prorate(amount: int, at: datetime, expected: int) -> None:
    assert prorate(amount, START, END, at) == expected


def test_prorate_rounds_half_up_on_odd_periods() -> None:
    # A 3-second period, 1 second left of 3 units -> 1 exactly; of 2 units -> 0.67 -> 1;
    # of 1 unit -> 0.33 -> 0.
    start = utc(2024, 1, 1)
    end = start + timedelta(seconds=3)
    at = start + timedelta(seconds=2)
    assert prorate(3, start, end, at) == 1
    assert prorate(2, start, end, at) == 1
    assert prorate(1, start, end, at) == 0
    # 3 of 6 seconds left of 7 units is 3.5 -> 4
    end = start + timedelta(seconds=6)
    assert prorate(7, start, end, start + timedelta(seconds=3)) == 4


@pytest.mark.parametrize("end", [START, START - timedelta(seconds=1)])
def test_a_period_without_length_is_refused(end: datetime) -> None:
    with pytest.raises(ValidationError) as refused:
        prorate(100, START, end, START)
    assert refused.value.param == "period"


def test_proration_credits_the_old_plan_and_charges_the_new() -> None:
    parts = proration(3_000, 1_000, START, END, MIDDLE)
    assert (parts.credit, parts.charge) == (1_500, 500)
    at_start = proration(3_000, 9_000, START, END, START)
    assert (at_start.credit, at_start.charge) == (3_000, 9_000)
    at_end = proration(3_000, 9_000, START, END, END)
    assert (at_end.credit, at_end.charge) == (0, 0)


@given(
    old=st.integers(min_value=0, max_value=10**12),
    new=st.integers(min_value=0, max_value=10**12),
    length=st.integers(min_value=1, max_value=400 * 86_400),
    offset=st.integers(min_value=-500 * 86_400, max_value=500 * 86_400),
)
def test_property_proration_parts_stay_within_the_amounts(
    old: int, new: int, length: int, offset: int
) -> None:
    start = utc(2024, 1, 1)
    end = start + timedelta(seconds=length)
    at = start + timedelta(seconds=offset)
    parts = proration(old, new, start, end, at)
    assert 0 <= parts.credit <= old
    assert 0 <= parts.charge <= new
    # Within half a unit of the exact share of the time left.
    left = min(max((end - at).total_seconds(), 0), length)
    assert abs(parts.credit * length - old * left) <= length / 2
    assert abs(parts.charge * length - new * left) <= length / 2


# invoice_totals


def test_invoice_totals_examples() -> None:
    plain = invoice_totals([3_000], 0)
    assert (plain.subtotal, plain.credit_applied, plain.credit_added, plain.total) == (
        3_000,
        0,
        0,
        3_000,
    )
    partly_credited = invoice_totals([3_000, -500], 1_000)
    assert (partly_credited.subtotal, partly_credited.credit_applied) == (2_500, 1_000)
    assert (partly_credited.credit_added, partly_credited.total) == (0, 1_500)
    fully_credited = invoice_totals([1_000], 5_000)
    assert (fully_credited.credit_applied, fully_credited.total) == (1_000, 0)
    negative = invoice_totals([1_000, -9_000, 500], 200)
    assert (negative.subtotal, negative.credit_applied) == (-7_500, 0)
    assert (negative.credit_added, negative.total) == (7_500, 0)
    assert invoice_totals([], 0).total == 0


def test_a_negative_credit_balance_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        invoice_totals([100], -1)
    assert refused.value.param == "credit_balance"


@given(
    lines=st.lists(st.integers(min_value=-(10**9), max_value=10**9), max_size=12),
    balance=st.integers(min_value=0, max_value=10**10),
)
def test_property_invoice_totals_invariants(lines: list[int], balance: int) -> None:
    totals = invoice_totals(lines, balance)
    assert totals.subtotal == sum(lines)
    assert totals.total >= 0
    assert totals.total == max(totals.subtotal, 0) - totals.credit_applied
    assert 0 <= totals.credit_applied <= balance
    assert totals.credit_added == max(-totals.subtotal, 0)
    # Credit is only applied to a positive subtotal and only added from a negative one.
    assert totals.credit_applied == 0 or totals.credit_added == 0
    balance_after = balance + totals.credit_added - totals.credit_applied
    assert balance_after >= 0
    # Nothing is lost: what is charged plus the credit used equals the positive subtotal.
    assert totals.total + totals.credit_applied == max(totals.subtotal, 0)


# dunning schedule


def test_default_schedule_retries_on_days_1_3_5_7_after_the_first_failure() -> None:
    first = utc(2024, 6, 1, 8)
    dates = [next_retry_at(first, DEFAULT_RETRY_DAYS, failed) for failed in range(1, 6)]
    assert dates == [
        first + timedelta(days=1),
        first + timedelta(days=3),
        first + timedelta(days=5),
        first + timedelta(days=7),
        None,  # the 4th retry (the 5th failure) exhausted the schedule
    ]
    assert next_retry_at(first, DEFAULT_RETRY_DAYS, 9) is None


def test_next_retry_needs_a_failure() -> None:
    with pytest.raises(ValidationError):
        next_retry_at(utc(2024, 6, 1), DEFAULT_RETRY_DAYS, 0)


def test_a_custom_schedule() -> None:
    first = utc(2024, 6, 1)
    assert next_retry_at(first, (2, 10), 1) == utc(2024, 6, 3)
    assert next_retry_at(first, (2, 10), 2) == utc(2024, 6, 11)
    assert next_retry_at(first, (2, 10), 3) is None
    assert next_retry_at(first, (), 1) is None


@pytest.mark.parametrize("days", [[1, 3, 5, 7], [1], [2, 4, 30], (1, 2, 3)])
def test_valid_retry_days_are_kept(days: list[int]) -> None:
    assert check_retry_days(days) == tuple(days)


@pytest.mark.parametrize(
    "days",
    [[3, 1], [1, 3, 3, 5], [1, 1], [0, 1, 2], [0], [-1, 2], [1, 5, 4], [2, -3]],
)
def test_retry_days_not_positive_and_strictly_increasing_are_refused(days: list[int]) -> None:
    with pytest.raises(ValidationError) as refused:
        check_retry_days(days)
    assert refused.value.param == "retry_days"


@given(st.lists(st.integers(min_value=-5, max_value=30), max_size=8))
def test_property_check_retry_days(days: list[int]) -> None:
    valid = all(day > 0 for day in days) and all(a < b for a, b in pairwise(days))
    if valid:
        assert check_retry_days(days) == tuple(days)
    else:
        with pytest.raises(ValidationError):
            check_retry_days(days)

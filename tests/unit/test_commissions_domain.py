"""Commission rules without a database: validation, which rule applies (vendor over category
over default, then priority, then the latest start), the half-open effective dates, the
integer commission (half up, plus the fixed part, capped at the amount), conflicts, and the
figures of a vendor settlement's line."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.commissions import (
    CommissionRule,
    RuleScope,
    applies,
    best_applicable,
    calculate,
    conflicts,
    percentage_part,
)
from domain.errors import Conflict, ValidationError
from domain.vendor_settlements import (
    SettlementStatus,
    captured_commission,
    check_period,
    check_processable,
    hold_until,
    line_figures,
)

JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)
MID_JAN = datetime(2025, 1, 15, tzinfo=UTC)


def rule(
    name: str,
    scope: RuleScope = RuleScope.DEFAULT,
    *,
    vendor_id: str | None = None,
    category: str | None = None,
    priority: int = 0,
    start: datetime = JAN,
    end: datetime | None = None,
    bps: int = 1_000,
    fixed: int = 0,
    currency: str = "USD",
    active: bool = True,
) -> CommissionRule:
    return CommissionRule(
        id=name,
        scope=scope,
        vendor_id=vendor_id,
        category=category,
        priority=priority,
        effective_from=start,
        effective_to=end,
        percentage_bps=bps,
        fixed_amount=fixed,
        currency=currency,
        active=active,
    )


def vendor(name: str, vendor_id: str = "v1", **kwargs: Any) -> CommissionRule:
    return rule(name, RuleScope.VENDOR, vendor_id=vendor_id, **kwargs)


def category(name: str, category: str = "books", **kwargs: Any) -> CommissionRule:
    return rule(name, RuleScope.CATEGORY, category=category, **kwargs)


# Validation


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"scope": "weekly"}, "scope"),
        ({"scope": RuleScope.VENDOR}, "vendor_id"),
        ({"scope": RuleScope.VENDOR, "vendor_id": " v1"}, "vendor_id"),
        ({"scope": RuleScope.VENDOR, "vendor_id": "v1", "category": "books"}, "category"),
        ({"scope": RuleScope.CATEGORY}, "category"),
        ({"scope": RuleScope.CATEGORY, "category": "books", "vendor_id": "v1"}, "vendor_id"),
        ({"vendor_id": "v1"}, "vendor_id"),
        ({"category": "books"}, "category"),
        ({"priority": -1}, "priority"),
        ({"priority": True}, "priority"),
        ({"percentage_bps": 10_001}, "percentage_bps"),
        ({"percentage_bps": -1}, "percentage_bps"),
        ({"fixed_amount": -1}, "fixed_amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"effective_from": datetime(2025, 1, 1)}, "effective_from"),
        ({"effective_to": datetime(2025, 2, 1)}, "effective_to"),
        ({"effective_to": JAN}, "effective_to"),
        ({"effective_to": JAN - timedelta(seconds=1)}, "effective_to"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(changes: dict[str, Any], param: str) -> None:
    fields: dict[str, Any] = {
        "scope": RuleScope.DEFAULT,
        "vendor_id": None,
        "category": None,
        "priority": 0,
        "effective_from": JAN,
        "effective_to": None,
        "percentage_bps": 1_000,
        "fixed_amount": 0,
        "currency": "USD",
    }
    with pytest.raises(ValidationError) as refused:
        CommissionRule(**{**fields, **changes})
    assert refused.value.param == param


def test_the_currency_is_made_canonical_and_the_key_follows_the_scope() -> None:
    assert rule("d", currency="eur").currency == "EUR"
    assert vendor("v").key == "v1"
    assert category("c").key == "books"
    assert rule("d").key is None


# Which rule applies

V_LOW = vendor("v-low", priority=1)
V_HIGH = vendor("v-high", priority=5)
V_OTHER = vendor("v-other", vendor_id="v2", priority=9)
C_BOOKS = category("c-books", priority=100)
C_TOYS = category("c-toys", category="toys", priority=100)
D_OLD = rule("d-old", priority=3, start=JAN)
D_NEW = rule("d-new", priority=3, start=MID_JAN)
D_LOW = rule("d-low", priority=0)
V_EXPIRED = vendor("v-expired", priority=50, end=MID_JAN)
V_INACTIVE = vendor("v-inactive", priority=60, active=False)
V_EUR = vendor("v-eur", priority=70, currency="EUR")
ALL = [V_LOW, V_HIGH, V_OTHER, C_BOOKS, C_TOYS, D_OLD, D_NEW, D_LOW, V_EXPIRED, V_INACTIVE]


@pytest.mark.parametrize(
    ("rules", "vendor_id", "category_", "at", "currency", "expected"),
    [
        # A vendor rule wins over a category rule of any priority.
        (ALL, "v1", "books", FEB, None, "v-high"),
        # Within the vendor scope the highest priority wins.
        ([V_LOW, V_HIGH], "v1", None, FEB, None, "v-high"),
        # Another vendor's rule never applies: the category rule does.
        (ALL, "v3", "books", FEB, None, "c-books"),
        # No vendor, no matching category: the defaults; equal priority, latest start wins.
        (ALL, "v3", "garden", FEB, None, "d-new"),
        ([D_OLD, D_NEW, D_LOW], None, None, FEB, None, "d-new"),
        # Before the later default started, the earlier one is the only one in force.
        ([D_OLD, D_NEW, D_LOW], None, None, JAN + timedelta(days=3), None, "d-old"),
        # An expired vendor rule applies before its end, not after (end exclusive).
        ([V_EXPIRED, V_LOW], "v1", None, MID_JAN - timedelta(microseconds=1), None, "v-expired"),
        ([V_EXPIRED, V_LOW], "v1", None, MID_JAN, None, "v-low"),
        # An inactive rule never applies, whatever its priority.
        ([V_INACTIVE, D_LOW], "v1", None, FEB, None, "d-low"),
        # The currency filter: the EUR rule applies in EUR only.
        ([V_EUR, V_LOW], "v1", None, FEB, "EUR", "v-eur"),
        ([V_EUR, V_LOW], "v1", None, FEB, "USD", "v-low"),
        ([V_EUR, V_LOW], "v1", None, FEB, None, "v-eur"),
        # Nothing in force yet, or nothing at all.
        (ALL, "v1", "books", JAN - timedelta(seconds=1), None, None),
        ([], "v1", "books", FEB, None, None),
        ([V_LOW, C_TOYS], "v9", "books", FEB, None, None),
    ],
)
def test_best_applicable_precedence(
    rules: list[CommissionRule],
    vendor_id: str | None,
    category_: str | None,
    at: datetime,
    currency: str | None,
    expected: str | None,
) -> None:
    found = best_applicable(rules, vendor_id, category_, at, currency)
    assert (found.id if found else None) == expected
    # The order of the rules does not matter.
    again = best_applicable(list(reversed(rules)), vendor_id, category_, at, currency)
    assert (again.id if again else None) == expected


def test_an_exact_tie_is_broken_by_the_smallest_id_whatever_the_order() -> None:
    a, b = rule("a", priority=2), rule("b", priority=2)
    assert best_applicable([b, a], None, None, FEB).id == "a"  # type: ignore[union-attr]
    assert best_applicable([a, b], None, None, FEB).id == "a"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (JAN - timedelta(microseconds=1), False),
        (JAN, True),  # effective_from is inclusive
        (FEB - timedelta(microseconds=1), True),
        (FEB, False),  # effective_to is exclusive
    ],
)
def test_effective_dates_are_half_open(at: datetime, expected: bool) -> None:
    assert applies(rule("d", end=FEB), None, None, at) is expected


def test_an_open_ended_rule_applies_forever_and_naive_times_are_refused() -> None:
    assert applies(rule("d"), None, None, datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError):
        applies(rule("d"), None, None, datetime(2025, 2, 1))


def test_a_scope_matches_only_its_key() -> None:
    assert applies(vendor("v"), "v1", None, FEB)
    assert not applies(vendor("v"), None, None, FEB)
    assert not applies(vendor("v"), "v2", "books", FEB)
    assert applies(category("c"), "v9", "books", FEB)
    assert not applies(category("c"), "v9", None, FEB)
    assert applies(rule("d"), None, None, FEB)


# The commission


@pytest.mark.parametrize(
    ("amount", "bps", "fixed", "expected"),
    [
        (10_000, 1_000, 0, 1_000),
        (10_000, 0, 0, 0),
        (10_000, 10_000, 0, 10_000),
        (5, 1_000, 0, 1),  # 0.5 rounds half up
        (4, 1_000, 0, 0),  # 0.4 rounds down
        (15, 1_000, 0, 2),  # 1.5 rounds half up
        (14, 1_000, 0, 1),
        (1, 5_000, 0, 1),  # 0.5
        (1, 4_999, 0, 0),
        (10_000, 250, 30, 280),  # 2.5 % plus 30
        (100, 1_000, 95, 100),  # 10 + 95 capped at the amount
        (20, 0, 30, 20),  # a fixed part larger than the amount is capped
        (0, 1_000, 30, 0),  # nothing to take from
    ],
)
def test_calculate_rounds_half_up_adds_the_fixed_part_and_caps(
    amount: int, bps: int, fixed: int, expected: int
) -> None:
    assert calculate(rule("d", bps=bps, fixed=fixed), amount) == expected


def test_the_percentage_part_alone_rounds_half_up() -> None:
    assert percentage_part(12_345, 1_234) == 1_523  # 1,523.373
    assert percentage_part(50, 100) == 1  # 0.5


def test_a_negative_or_non_integer_amount_is_refused() -> None:
    for amount in (-1, 1.5, True):
        with pytest.raises(ValidationError):
            calculate(rule("d"), amount)  # type: ignore[arg-type]


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    bps=st.integers(min_value=0, max_value=10_000),
    fixed=st.integers(min_value=0, max_value=10**15),
)
def test_property_the_commission_is_between_zero_and_the_amount(
    amount: int, bps: int, fixed: int
) -> None:
    taken = calculate(rule("d", bps=bps, fixed=fixed), amount)
    assert 0 <= taken <= amount
    # Exact: within half a unit of the true percentage, plus the fixed part, unless capped.
    if taken < amount:
        assert abs((taken - fixed) * 10_000 - amount * bps) <= 5_000


# Conflicts


@pytest.mark.parametrize(
    ("new", "existing", "expected"),
    [
        # Same scope, key, currency and priority, overlapping: a conflict.
        (vendor("n"), [vendor("e")], ["e"]),
        (vendor("n", start=MID_JAN, end=MAR), [vendor("e", end=FEB)], ["e"]),
        (rule("n", start=FEB), [rule("e")], ["e"]),  # the existing one has no end
        (category("n", end=FEB), [category("e", start=MID_JAN, end=MAR)], ["e"]),
        # Touching intervals (one ends when the other starts) do not overlap.
        (vendor("n", start=FEB, end=MAR), [vendor("e", end=FEB)], []),
        (vendor("n", end=FEB), [vendor("e", start=FEB)], []),
        # Anything else different: no conflict.
        (vendor("n", priority=1), [vendor("e")], []),
        (vendor("n", vendor_id="v2"), [vendor("e")], []),
        (vendor("n", currency="EUR"), [vendor("e")], []),
        (category("n", vendor_id=None), [vendor("e")], []),
        (category("n", category="toys"), [category("e")], []),
        (vendor("n"), [vendor("e", active=False)], []),
        (vendor("n", active=False), [vendor("e")], []),
        # A rule never conflicts with itself; only the conflicting ones are listed.
        (vendor("e"), [vendor("e")], []),
        (rule("n"), [rule("a"), rule("b", priority=1), rule("c", start=FEB)], ["a", "c"]),
    ],
)
def test_conflicts(
    new: CommissionRule, existing: list[CommissionRule], expected: list[str]
) -> None:
    assert [found.id for found in conflicts(new, existing)] == expected


def test_replace_revalidates_a_rule() -> None:
    with pytest.raises(ValidationError):
        replace(rule("d"), percentage_bps=20_000)


# Vendor settlements: the figures of a line, the period and the hold


def test_a_line_counts_the_commission_in_proportion_to_the_capture() -> None:
    full = line_figures(
        commission=600,
        captured=5_400,
        refunded=1_080,
        payment_amount=10_000,
        payment_captured=10_000,
    )
    assert (full.gross_captured, full.commission, full.captured, full.refunded, full.net) == (
        6_000,
        600,
        5_400,
        1_080,
        4_320,
    )
    # Half the payment captured: half the commission (rounded half up).
    assert captured_commission(601, 5_000, 10_000) == 301  # 300.5
    assert captured_commission(599, 5_000, 10_000) == 300  # 299.5
    assert captured_commission(600, 0, 10_000) == 0


def test_a_period_is_ordered_ended_and_bounded() -> None:
    check_period(JAN, FEB, FEB)
    for start, end, now, code in [
        (FEB, JAN, MAR, "validation_failed"),
        (JAN, JAN, MAR, "validation_failed"),
        (JAN, MAR, FEB, "period_not_ended"),
        (JAN, JAN + timedelta(days=367), JAN + timedelta(days=400), "validation_failed"),
        (datetime(2025, 1, 1), FEB, MAR, "validation_failed"),
    ]:
        with pytest.raises(ValidationError) as refused:
            check_period(start, end, now)
        assert refused.value.code == code


def test_the_hold_and_who_may_be_processed() -> None:
    assert hold_until(FEB, 7) == FEB + timedelta(days=7)
    assert hold_until(FEB, 0) == FEB
    with pytest.raises(ValidationError):
        hold_until(FEB, -1)
    check_processable(SettlementStatus.DUE, FEB, FEB)
    check_processable(SettlementStatus.PENDING_HOLD, FEB, FEB)
    for status, now in [
        (SettlementStatus.PENDING_HOLD, FEB - timedelta(microseconds=1)),
        (SettlementStatus.FAILED, MAR),
        (SettlementStatus.PROCESSING, MAR),
    ]:
        with pytest.raises(Conflict) as refused:
            check_processable(status, FEB, now)
        assert refused.value.code == "settlement_not_due"

"""The integer arithmetic of payments: proportional sharing, commissions, the split plan of a
payment between vendors and the platform, and the rule that refunds stay within the capture."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict, ValidationError
from domain.payments import (
    BPS,
    Allocation,
    SplitLine,
    check_refundable,
    commission,
    plan_splits,
    split_proportionally,
)

weights_st = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=20)


# split_proportionally


def test_split_sums_exactly_and_follows_the_weights() -> None:
    assert split_proportionally(100, [1, 1, 1]) == [34, 33, 33]
    assert split_proportionally(10_000, [7_000, 2_000, 1_000]) == [7_000, 2_000, 1_000]
    assert split_proportionally(5_000, [7_000, 2_000, 1_000]) == [3_500, 1_000, 500]
    assert split_proportionally(0, [3, 4]) == [0, 0]


def test_largest_remainders_get_the_leftover_units() -> None:
    # 10 over [1, 2, 3] (total 6): exact shares 1.67, 3.33, 5.0 -> floors 1, 3, 5, one unit
    # left, which goes to the largest remainder (the first line's 0.67), not the 0.33.
    assert split_proportionally(10, [1, 2, 3]) == [2, 3, 5]


def test_ties_between_remainders_go_to_the_earlier_position() -> None:
    # Each exact share is 0.5: the single unit goes to the first line.
    assert split_proportionally(1, [1, 1]) == [1, 0]
    # Two units over four equal lines: the first two lines.
    assert split_proportionally(2, [5, 5, 5, 5]) == [1, 1, 0, 0]
    # Equal remainders later in the list lose to earlier ones, whatever their weight.
    assert split_proportionally(3, [2, 2, 2, 2, 2, 2]) == [1, 1, 1, 0, 0, 0]


def test_zero_weights_get_nothing() -> None:
    assert split_proportionally(10, [0, 5, 0, 5]) == [0, 5, 0, 5]
    assert split_proportionally(3, [0, 1, 0, 1]) == [0, 2, 0, 1]
    assert split_proportionally(0, [0, 0]) == [0, 0]


def test_an_amount_over_nothing_is_refused() -> None:
    with pytest.raises(ValidationError):
        split_proportionally(5, [0, 0])
    with pytest.raises(ValidationError):
        split_proportionally(5, [])


@pytest.mark.parametrize(("amount", "weights"), [(-1, [1, 2]), (10, [3, -1]), (-5, [0])])
def test_negative_amounts_and_weights_are_refused(amount: int, weights: list[int]) -> None:
    with pytest.raises(ValidationError) as refused:
        split_proportionally(amount, weights)
    assert refused.value.param == "amount"


@given(amount=st.integers(min_value=0, max_value=10**12), weights=weights_st)
def test_property_parts_sum_to_the_amount(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    parts = split_proportionally(amount, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == amount
    assert all(part >= 0 for part in parts)
    # Each part is within one unit of its exact share.
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part * total - amount * weight) < total


@given(data=st.data(), weights=weights_st)
def test_property_parts_never_exceed_their_weights(data: st.DataObject, weights: list[int]) -> None:
    amount = data.draw(st.integers(min_value=0, max_value=sum(weights)))
    if sum(weights) == 0:
        assert split_proportionally(0, weights) == [0] * len(weights)
        return
    parts = split_proportionally(amount, weights)
    assert all(part <= weight for part, weight in zip(parts, weights, strict=True))
    assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)


@given(amount=st.integers(min_value=0, max_value=10**9), weights=weights_st)
def test_property_a_larger_weight_never_gets_less(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    parts = split_proportionally(amount, weights)
    for i, (w_i, p_i) in enumerate(zip(weights, parts, strict=True)):
        for w_j, p_j in zip(weights[i + 1 :], parts[i + 1 :], strict=True):
            if w_i >= w_j:
                assert p_i >= p_j  # ties go to the earlier position
            else:
                assert p_i <= p_j


# commission


def test_commission_rounds_half_up() -> None:
    assert commission(1_000, 1_000) == 100  # 10%
    assert commission(5, 1_000) == 1  # 0.5 -> 1
    assert commission(4, 1_000) == 0  # 0.4 -> 0
    assert commission(15, 1_000) == 2  # 1.5 -> 2
    assert commission(25, 1_000) == 3  # 2.5 -> 3 (half up, not to even)
    assert commission(14, 1_000) == 1  # 1.4 -> 1
    assert commission(1, 5_000) == 1  # 0.5 -> 1
    assert commission(1, 4_999) == 0  # 0.4999 -> 0


def test_commission_adds_the_fixed_part_and_is_capped_at_the_amount() -> None:
    assert commission(1_000, 1_000, fixed=30) == 130
    assert commission(100, 1_000, fixed=95) == 100  # 10 + 95 capped at 100
    assert commission(100, BPS) == 100  # 100%
    assert commission(100, BPS, fixed=1) == 100
    assert commission(0, 1_000, fixed=50) == 0
    assert commission(1_000, 0) == 0


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    bps=st.integers(min_value=0, max_value=BPS),
    fixed=st.integers(min_value=0, max_value=10**6),
)
def test_property_commission_is_within_the_amount_and_nearest(
    amount: int, bps: int, fixed: int
) -> None:
    cut = commission(amount, bps, fixed)
    assert 0 <= cut <= amount
    if fixed == 0:
        # The nearest unit to amount * bps / BPS, halves up.
        assert 2 * abs(cut * BPS - amount * bps) <= BPS
        assert 2 * (amount * bps - cut * BPS) < BPS


# plan_splits


def test_plan_splits_vendor_lines_are_net_of_commission_and_the_platform_takes_the_rest() -> None:
    lines = plan_splits(
        10_000,
        [Allocation("vendor-a", 6_000, 1_000), Allocation("vendor-b", 3_000, 500, 25)],
    )
    assert lines == [
        SplitLine("vendor-a", gross=6_000, commission=600, amount=5_400),
        SplitLine("vendor-b", gross=3_000, commission=175, amount=2_825),
        # 1,000 not allocated, plus 600 + 175 of commission.
        SplitLine(None, gross=1_000, commission=775, amount=1_775),
    ]
    assert sum(line.amount for line in lines) == 10_000


def test_plan_splits_without_allocations_gives_everything_to_the_platform() -> None:
    assert plan_splits(2_500, []) == [SplitLine(None, gross=2_500, commission=0, amount=2_500)]


def test_plan_splits_fully_allocated_leaves_the_platform_its_commissions_only() -> None:
    lines = plan_splits(1_000, [Allocation("v1", 500, 0), Allocation("v2", 500, 2_000)])
    assert [line.amount for line in lines] == [500, 400, 100]
    assert lines[-1] == SplitLine(None, gross=0, commission=100, amount=100)


def test_plan_splits_refuses_a_vendor_twice() -> None:
    with pytest.raises(ValidationError) as refused:
        plan_splits(1_000, [Allocation("v1", 100, 0), Allocation("v1", 200, 0)])
    assert refused.value.code == "validation_failed"
    assert refused.value.param == "allocations"


def test_plan_splits_refuses_allocations_over_the_amount() -> None:
    with pytest.raises(ValidationError) as refused:
        plan_splits(1_000, [Allocation("v1", 600, 0), Allocation("v2", 401, 0)])
    assert refused.value.code == "allocations_exceed_amount"
    assert refused.value.param == "allocations"


@pytest.mark.parametrize(
    "allocation",
    [
        Allocation("v1", 100, -1),
        Allocation("v1", 100, BPS + 1),
        Allocation("v1", 100, 100, -5),
    ],
)
def test_plan_splits_refuses_bad_commissions(allocation: Allocation) -> None:
    with pytest.raises(ValidationError) as refused:
        plan_splits(1_000, [allocation])
    assert refused.value.param == "allocations"


def test_plan_splits_refuses_a_negative_allocation() -> None:
    # A negative part would make room for another vendor beyond the payment (6,000 of 5,000).
    with pytest.raises(ValidationError) as refused:
        plan_splits(5_000, [Allocation("v1", 6_000, 0), Allocation("v2", -1_000, 0)])
    assert refused.value.param == "allocations"


allocation_st = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**7),
        st.integers(min_value=0, max_value=BPS),
        st.integers(min_value=0, max_value=1_000),
    ),
    max_size=8,
)


@given(extra=st.integers(min_value=0, max_value=10**7), parts=allocation_st)
def test_property_plan_splits_sums_to_the_amount(
    extra: int, parts: list[tuple[int, int, int]]
) -> None:
    allocations = [
        Allocation(f"v{index}", amount, bps, fixed)
        for index, (amount, bps, fixed) in enumerate(parts)
    ]
    amount = sum(a.amount for a in allocations) + extra
    if amount == 0:
        return
    lines = plan_splits(amount, allocations)
    assert sum(line.amount for line in lines) == amount
    assert [line.vendor_id for line in lines] == [a.vendor_id for a in allocations] + [None]
    for line, allocation in zip(lines[:-1], allocations, strict=True):
        assert line.gross == allocation.amount
        assert line.amount == line.gross - line.commission >= 0
    platform = lines[-1]
    assert platform.gross == extra
    assert platform.commission == sum(line.commission for line in lines[:-1])
    assert all(line.amount >= 0 and line.commission >= 0 for line in lines)


# check_refundable


def test_a_refund_within_what_is_left_fits() -> None:
    check_refundable(10_000, 0, 0, 10_000)
    check_refundable(10_000, 4_000, 3_000, 3_000)


def test_a_refund_beyond_what_is_left_is_a_conflict() -> None:
    with pytest.raises(Conflict) as refused:
        check_refundable(10_000, 4_000, 3_000, 3_001)
    assert refused.value.code == "refund_exceeds_captured"
    assert refused.value.param == "amount"
    assert refused.value.details["refundable"] == 3_000


def test_open_refunds_count_against_the_capture() -> None:
    with pytest.raises(Conflict) as refused:
        check_refundable(10_000, 0, 10_000, 1)
    assert refused.value.details["refundable"] == 0


@pytest.mark.parametrize("amount", [0, -1])
def test_a_refund_refunds_a_positive_amount(amount: int) -> None:
    with pytest.raises(ValidationError) as refused:
        check_refundable(10_000, 0, 0, amount)
    assert refused.value.param == "amount"


def test_nothing_captured_is_not_refundable() -> None:
    with pytest.raises(Conflict) as refused:
        check_refundable(0, 0, 0, 1)
    assert refused.value.code == "not_captured"

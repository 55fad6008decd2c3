"""How ``domain.markets`` shares a resolved pool, checked over random markets."""

import uuid
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Conflict, ValidationError
from domain.markets import (
    BPS,
    CommitmentStatus,
    MarketKind,
    MarketStatus,
    MatchedBy,
    NoWinners,
    OptionRef,
    Outcome,
    Position,
    Stake,
    check_market_move,
    check_option_labels,
    distribute,
    match_option,
    per_user,
)

OPTIONS = [uuid.UUID(int=n) for n in range(1, 5)]
USERS = st.sampled_from([f"user-{n}" for n in range(6)])


@st.composite
def markets(draw: st.DrawFn) -> tuple[list[Stake], uuid.UUID, int, int]:
    count = draw(st.integers(min_value=0, max_value=40))
    stakes = [
        Stake(
            commitment_id=draw(st.integers(1, 10**9)) * 100 + n,  # distinct, in random order
            user_id=draw(USERS),
            option_id=draw(st.sampled_from(OPTIONS)),
            amount=draw(st.one_of(st.integers(1, 100), st.integers(1, 10**12))),
        )
        for n in range(count)
    ]
    house = draw(st.integers(0, BPS))
    creator = draw(st.integers(0, BPS - house))
    return stakes, draw(st.sampled_from(OPTIONS)), house, creator


@given(markets(), st.sampled_from(list(NoWinners)))
def test_value_is_conserved_exactly(market: tuple, no_winners: NoWinners) -> None:
    stakes, winner, house, creator = market
    result = distribute(
        stakes, winner, house_fee_bps=house, creator_fee_bps=creator, no_winners=no_winners
    )
    assert result.pool == sum(stake.amount for stake in stakes)
    assert result.paid_out + result.house_fee + result.creator_fee == result.pool
    assert sum(total.payout for total in per_user(result.allocations)) == result.paid_out
    assert all(allocation.payout >= 0 for allocation in result.allocations)
    assert [a.commitment_id for a in result.allocations] == [s.commitment_id for s in stakes]


@given(markets())
def test_winners_get_their_proportional_share_within_one_unit_after_exact_fees(
    market: tuple,
) -> None:
    stakes, winner, house, creator = market
    result = distribute(
        stakes, winner, house_fee_bps=house, creator_fee_bps=creator, no_winners=NoWinners.REFUND
    )
    winning = [stake for stake in stakes if stake.option_id == winner]
    if not winning:
        assert result.outcome is Outcome.REFUND
        return
    pool = result.pool
    # Fees are the basis points of the pool, rounded down.
    assert result.house_fee == pool * house // BPS
    assert result.creator_fee == pool * creator // BPS
    assert pool * house - BPS < result.house_fee * BPS <= pool * house
    shared = pool - result.house_fee - result.creator_fee
    winning_stake = sum(stake.amount for stake in winning)
    for allocation, stake in zip(result.allocations, stakes, strict=True):
        if stake.option_id != winner:
            assert (allocation.status, allocation.payout) == (CommitmentStatus.LOST, 0)
            assert allocation.profit == -stake.amount
            continue
        exact = Fraction(shared * stake.amount, winning_stake)
        assert allocation.status is CommitmentStatus.WON
        assert abs(allocation.payout - exact) < 1
        assert allocation.profit == allocation.payout - stake.amount
        assert abs(Fraction(allocation.share) - Fraction(stake.amount, winning_stake)) <= Fraction(
            1, 10**12
        )


@given(markets())
def test_the_remainder_rule_does_not_depend_on_the_order_of_commitments(market: tuple) -> None:
    stakes, winner, house, creator = market
    forward = distribute(
        stakes, winner, house_fee_bps=house, creator_fee_bps=creator, no_winners=NoWinners.REFUND
    )
    backward = distribute(
        stakes[::-1],
        winner,
        house_fee_bps=house,
        creator_fee_bps=creator,
        no_winners=NoWinners.REFUND,
    )
    assert {a.commitment_id: a.payout for a in forward.allocations} == {
        a.commitment_id: a.payout for a in backward.allocations
    }


def test_leftover_units_go_to_the_largest_remainders_then_the_lowest_ids() -> None:
    yes, no = OPTIONS[:2]
    stakes = [
        Stake(3, "c", yes, 1),
        Stake(1, "a", yes, 1),
        Stake(2, "b", yes, 1),
        Stake(4, "d", no, 2),
    ]
    # Pool 5, no fees: 5 shared by three equal stakes is 1 each and 2 left over.
    result = distribute(
        stakes, yes, house_fee_bps=0, creator_fee_bps=0, no_winners=NoWinners.REFUND
    )
    assert {a.commitment_id: a.payout for a in result.allocations} == {1: 2, 2: 2, 3: 1, 4: 0}


def test_fees_come_first_and_go_nowhere_else() -> None:
    yes, no = OPTIONS[:2]
    stakes = [Stake(1, "a", yes, 300), Stake(2, "b", no, 700)]
    result = distribute(
        stakes, yes, house_fee_bps=250, creator_fee_bps=100, no_winners=NoWinners.REFUND
    )
    assert (result.house_fee, result.creator_fee, result.paid_out) == (25, 10, 965)
    assert result.allocations[0].profit == 665
    assert result.winners == 1


def test_no_winners_refunds_every_stake_whole_or_the_house_keeps_the_pool() -> None:
    yes, no, other = OPTIONS[:3]
    stakes = [Stake(1, "a", yes, 30), Stake(2, "a", no, 70)]
    refunded = distribute(
        stakes, other, house_fee_bps=500, creator_fee_bps=500, no_winners=NoWinners.REFUND
    )
    assert refunded.outcome is Outcome.REFUND
    assert [(a.status, a.payout, a.profit) for a in refunded.allocations] == [
        (CommitmentStatus.REFUNDED, 30, 0),
        (CommitmentStatus.REFUNDED, 70, 0),
    ]
    assert (refunded.house_fee, refunded.creator_fee) == (0, 0)
    kept = distribute(
        stakes, other, house_fee_bps=500, creator_fee_bps=500, no_winners=NoWinners.HOUSE
    )
    assert (kept.outcome, kept.house_fee, kept.paid_out) == (Outcome.HOUSE, 100, 0)


def test_per_user_adds_up_every_commitment_of_a_user() -> None:
    yes, no = OPTIONS[:2]
    stakes = [Stake(1, "a", yes, 10), Stake(2, "a", no, 10), Stake(3, "b", no, 20)]
    result = distribute(
        stakes, yes, house_fee_bps=0, creator_fee_bps=0, no_winners=NoWinners.REFUND
    )
    totals = {
        total.user_id: (total.staked, total.payout, total.profit)
        for total in per_user(result.allocations)
    }
    assert totals == {"a": (20, 40, 20), "b": (20, 0, -20)}


@pytest.mark.parametrize(("house", "creator"), [(-1, 0), (0, BPS + 1), (6000, 5000)])
def test_fees_outside_the_pool_are_refused(house: int, creator: int) -> None:
    with pytest.raises(ValidationError):
        distribute(
            [],
            OPTIONS[0],
            house_fee_bps=house,
            creator_fee_bps=creator,
            no_winners=NoWinners.REFUND,
        )


def test_an_option_is_named_by_id_or_in_binary_markets_by_position() -> None:
    yes, no = OptionRef(OPTIONS[0], Position.YES), OptionRef(OPTIONS[1], Position.NO)
    binary = [yes, no]
    assert match_option(MarketKind.BINARY, binary, option_id=None, position=Position.NO) == (
        no,
        MatchedBy.POSITION,
    )
    assert match_option(MarketKind.BINARY, binary, option_id=yes.id, position=None) == (
        yes,
        MatchedBy.OPTION_ID,
    )
    multi = [OptionRef(option, None) for option in OPTIONS]
    refused = [
        (MarketKind.MULTI, multi, None, Position.YES),
        (MarketKind.BINARY, binary, OPTIONS[3], None),
        (MarketKind.BINARY, binary, yes.id, Position.YES),
        (MarketKind.BINARY, binary, None, None),
    ]
    for kind, options, option_id, position in refused:
        with pytest.raises(ValidationError):
            match_option(kind, options, option_id=option_id, position=position)


def test_option_labels() -> None:
    assert check_option_labels(MarketKind.BINARY, []) == ["Yes", "No"]
    assert check_option_labels(MarketKind.MULTI, [" red", "blue "]) == ["red", "blue"]
    for kind, labels in (
        (MarketKind.BINARY, ["a", "b", "c"]),
        (MarketKind.MULTI, ["only"]),
        (MarketKind.MULTI, ["Red", "red"]),
        (MarketKind.MULTI, ["red", " "]),
    ):
        with pytest.raises(ValidationError):
            check_option_labels(kind, labels)


def test_a_settled_market_moves_no_more() -> None:
    check_market_move(MarketStatus.DISPUTED, MarketStatus.ROLLED_BACK)
    with pytest.raises(Conflict):
        check_market_move(MarketStatus.SETTLED, MarketStatus.DISPUTED)
    with pytest.raises(Conflict):
        check_market_move(MarketStatus.OPEN, MarketStatus.RESOLVED)

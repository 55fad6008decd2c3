"""Prediction markets: their states, the moves allowed between them, how a commitment names
its option, and how a resolved pool is shared, in whole token units, with no I/O."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from domain.errors import Conflict, ValidationError

TOKEN = "TOKEN"
BPS = 10_000
MAX_OPTIONS = 50
# Shares are stored with this many decimals (Numeric(14, 12)).
SHARE_PLACES = Decimal("1e-12")


class MarketKind(StrEnum):
    BINARY = "binary"
    MULTI = "multi"


class MarketStatus(StrEnum):
    OPEN = "open"
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    DISPUTED = "disputed"
    ROLLED_BACK = "rolled_back"
    SETTLED = "settled"


class ResolutionStatus(StrEnum):
    DISTRIBUTING = "distributing"
    COMPLETED = "completed"
    DISPUTED = "disputed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class CommitmentStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    REFUNDED = "refunded"


class Position(StrEnum):
    YES = "yes"
    NO = "no"


class MatchedBy(StrEnum):
    OPTION_ID = "option_id"
    POSITION = "position"


class NoWinners(StrEnum):
    """What a resolution does when nobody backed the winning option."""

    REFUND = "refund"
    HOUSE = "house"


class Outcome(StrEnum):
    WINNERS = "winners"
    REFUND = "refund"
    HOUSE = "house"


# A market takes a resolution while open, or again after its last one was rolled back.
RESOLVABLE = frozenset({MarketStatus.OPEN, MarketStatus.ROLLED_BACK})

MARKET_MOVES: dict[MarketStatus, frozenset[MarketStatus]] = {
    MarketStatus.OPEN: frozenset({MarketStatus.RESOLVING}),
    # A resolution that failed for good gives the market back as it was.
    MarketStatus.RESOLVING: frozenset(
        {MarketStatus.RESOLVED, MarketStatus.OPEN, MarketStatus.ROLLED_BACK}
    ),
    MarketStatus.RESOLVED: frozenset(
        {MarketStatus.DISPUTED, MarketStatus.ROLLED_BACK, MarketStatus.SETTLED}
    ),
    MarketStatus.DISPUTED: frozenset({MarketStatus.RESOLVED, MarketStatus.ROLLED_BACK}),
    MarketStatus.ROLLED_BACK: frozenset({MarketStatus.RESOLVING}),
    MarketStatus.SETTLED: frozenset(),
}

RESOLUTION_MOVES: dict[ResolutionStatus, frozenset[ResolutionStatus]] = {
    ResolutionStatus.DISTRIBUTING: frozenset({ResolutionStatus.COMPLETED, ResolutionStatus.FAILED}),
    ResolutionStatus.COMPLETED: frozenset(
        {ResolutionStatus.DISPUTED, ResolutionStatus.ROLLED_BACK}
    ),
    ResolutionStatus.DISPUTED: frozenset(
        {ResolutionStatus.COMPLETED, ResolutionStatus.ROLLED_BACK}
    ),
    ResolutionStatus.ROLLED_BACK: frozenset(),
    ResolutionStatus.FAILED: frozenset(),
}


def check_market_move(current: MarketStatus, target: MarketStatus) -> None:
    if target not in MARKET_MOVES[current]:
        raise Conflict(
            f"a {current.value} market cannot become {target.value}",
            code="market_state_conflict",
            status=current.value,
        )


def check_resolution_move(current: ResolutionStatus, target: ResolutionStatus) -> None:
    if target not in RESOLUTION_MOVES[current]:
        raise Conflict(
            f"a {current.value} distribution cannot become {target.value}",
            code="distribution_state_conflict",
            status=current.value,
        )


def check_fees(house_fee_bps: int, creator_fee_bps: int) -> None:
    for name, bps in (("house_fee_bps", house_fee_bps), ("creator_fee_bps", creator_fee_bps)):
        if not 0 <= bps <= BPS:
            raise ValidationError(f"{name} is 0 to {BPS} basis points", param=name)
    if house_fee_bps + creator_fee_bps > BPS:
        raise ValidationError("the fees together cannot exceed the pool", param="creator_fee_bps")


def fee(pool: int, bps: int) -> int:
    """``bps`` basis points of ``pool``, rounded down: the rest of a unit stays with winners."""
    return pool * bps // BPS


@dataclass(frozen=True, slots=True)
class OptionRef:
    id: uuid.UUID
    position: Position | None


def match_option(
    kind: MarketKind,
    options: Sequence[OptionRef],
    *,
    option_id: uuid.UUID | None,
    position: Position | None,
) -> tuple[OptionRef, MatchedBy]:
    """The option a request names, by id or (binary markets only) by yes/no position."""
    if (option_id is None) == (position is None):
        raise ValidationError("name exactly one of option_id and position", param="option_id")
    if option_id is not None:
        for option in options:
            if option.id == option_id:
                return option, MatchedBy.OPTION_ID
        raise ValidationError(f"option {option_id} is not in this market", param="option_id")
    if kind is not MarketKind.BINARY:
        raise ValidationError(
            "a position (yes/no) names an option of a binary market only; use option_id",
            param="position",
        )
    for option in options:
        if option.position is position:
            return option, MatchedBy.POSITION
    raise ValidationError(f"no {position} option in this market", param="position")


def check_option_labels(kind: MarketKind, labels: Sequence[str]) -> list[str]:
    """The labels of a new market's options: binary markets have yes and no (default labels
    ``Yes`` and ``No``), multi-option markets 2 to ``MAX_OPTIONS`` distinct labels."""
    cleaned = [label.strip() for label in labels]
    if kind is MarketKind.BINARY:
        if not cleaned:
            return ["Yes", "No"]
        if len(cleaned) != 2:
            raise ValidationError("a binary market has two options: yes, then no", param="options")
    elif not 2 <= len(cleaned) <= MAX_OPTIONS:
        raise ValidationError(f"a market has 2 to {MAX_OPTIONS} options", param="options")
    if any(not label for label in cleaned):
        raise ValidationError("an option needs a label", param="options")
    if len({label.casefold() for label in cleaned}) != len(cleaned):
        raise ValidationError("option labels must differ", param="options")
    return cleaned


@dataclass(frozen=True, slots=True)
class Stake:
    commitment_id: int
    user_id: str
    option_id: uuid.UUID
    amount: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one commitment gets: ``share`` is its fraction of what was shared out."""

    commitment_id: int
    user_id: str
    stake: int
    status: CommitmentStatus
    payout: int
    share: Decimal

    @property
    def profit(self) -> int:
        return self.payout - self.stake


@dataclass(frozen=True, slots=True)
class Distribution:
    outcome: Outcome
    pool: int
    house_fee: int
    creator_fee: int
    allocations: list[Allocation]

    @property
    def paid_out(self) -> int:
        return sum(allocation.payout for allocation in self.allocations)

    @property
    def winners(self) -> int:
        return sum(a.status is CommitmentStatus.WON for a in self.allocations)


def _ratio(part: int, whole: int) -> Decimal:
    # A fixed precision, whatever the caller's decimal context.
    with localcontext() as context:
        context.prec = 40
        return (Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES)


def distribute(
    stakes: Sequence[Stake],
    winning_option_id: uuid.UUID,
    *,
    house_fee_bps: int,
    creator_fee_bps: int,
    no_winners: NoWinners,
) -> Distribution:
    """Share the pool among the commitments on the winning option.

    Fees first (each rounded down), then the rest in proportion to stake: each winner gets
    the floor of its exact share, and the units left over (fewer than the winners) go one
    each to the largest remainders, ties to the lowest commitment id. So payouts plus fees
    equal the pool exactly and no winner is a unit or more from its exact share.

    Nobody on the winning option: every stake is refunded whole (no fees), or with
    ``NoWinners.HOUSE`` the house keeps the pool.
    """
    check_fees(house_fee_bps, creator_fee_bps)
    for stake in stakes:
        if stake.amount <= 0:
            raise ValidationError("a stake is a positive amount", param="amount")
    pool = sum(stake.amount for stake in stakes)
    winning = [stake for stake in stakes if stake.option_id == winning_option_id]
    if not winning:
        if no_winners is NoWinners.HOUSE:
            lost = [_settled(stake, CommitmentStatus.LOST, 0, Decimal(0)) for stake in stakes]
            return Distribution(Outcome.HOUSE, pool, pool, 0, lost)
        refunds = [
            _settled(stake, CommitmentStatus.REFUNDED, stake.amount, _ratio(stake.amount, pool))
            for stake in stakes
        ]
        return Distribution(Outcome.REFUND, pool, 0, 0, refunds)
    house = fee(pool, house_fee_bps)
    creator = fee(pool, creator_fee_bps)
    shared = pool - house - creator
    payouts = _largest_remainder(winning, shared)
    winning_stake = sum(stake.amount for stake in winning)
    allocations = [
        _settled(
            stake,
            CommitmentStatus.WON,
            payouts[stake.commitment_id],
            _ratio(stake.amount, winning_stake),
        )
        if stake.option_id == winning_option_id
        else _settled(stake, CommitmentStatus.LOST, 0, Decimal(0))
        for stake in stakes
    ]
    return Distribution(Outcome.WINNERS, pool, house, creator, allocations)


def _largest_remainder(winning: Sequence[Stake], shared: int) -> dict[int, int]:
    total = sum(stake.amount for stake in winning)
    payouts: dict[int, int] = {}
    remainders: list[tuple[int, int]] = []
    for stake in winning:
        whole, remainder = divmod(shared * stake.amount, total)
        payouts[stake.commitment_id] = whole
        remainders.append((-remainder, stake.commitment_id))
    left = shared - sum(payouts.values())
    for _, commitment_id in sorted(remainders)[:left]:
        payouts[commitment_id] += 1
    return payouts


def _settled(stake: Stake, status: CommitmentStatus, payout: int, share: Decimal) -> Allocation:
    return Allocation(stake.commitment_id, stake.user_id, stake.amount, status, payout, share)


@dataclass(frozen=True, slots=True)
class UserTotal:
    user_id: str
    staked: int
    payout: int

    @property
    def profit(self) -> int:
        return self.payout - self.staked


def per_user(allocations: Iterable[Allocation]) -> list[UserTotal]:
    """Each user's stake and payout over all their commitments, ordered by user id."""
    staked: dict[str, int] = {}
    paid: dict[str, int] = {}
    for allocation in allocations:
        staked[allocation.user_id] = staked.get(allocation.user_id, 0) + allocation.stake
        paid[allocation.user_id] = paid.get(allocation.user_id, 0) + allocation.payout
    return [UserTotal(user, staked[user], paid[user]) for user in sorted(staked)]

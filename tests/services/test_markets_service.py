"""Prediction markets on a real PostgreSQL: grants and commitments through the ledger, one
distribution per resolution, disputes, rollback, the saga's compensation, and the trails."""

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, ValidationError
from domain.markets import TOKEN, MarketKind, NoWinners, Position
from models.ledger import LedgerTransaction
from models.markets import Market, MarketCommitment, MarketPayout, MarketResolution
from services import ledger, markets

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)


def user(name: str) -> Actor:
    return Actor(name, Role.CUSTOMER)


async def new_market(
    session: AsyncSession,
    kind: MarketKind = MarketKind.BINARY,
    options: list[str] | None = None,
    no_winners: NoWinners = NoWinners.REFUND,
) -> tuple[Market, list[uuid.UUID]]:
    market = await markets.create_market(
        session,
        question="Will it rain on Friday?",
        kind=kind,
        options=options or [],
        creator_id=f"creator-{uuid.uuid4().hex[:8]}",
        house_fee_bps=200,
        creator_fee_bps=100,
        no_winners=no_winners,
        actor=ADMIN,
    )
    return market, [option.id for option in await markets.options_of(session, market.id)]


async def funded(session: AsyncSession, amount: int = 1_000) -> str:
    name = f"user-{uuid.uuid4().hex[:8]}"
    await markets.grant_tokens(session, user_id=name, amount=amount, reason="welcome", actor=ADMIN)
    return name


async def pool_balance(session: AsyncSession, market: Market) -> int:
    return (await ledger.balances(session, markets.pool_account(market.id))).get(TOKEN, 0)


async def resolve(session: AsyncSession, market: Market, option_id: uuid.UUID) -> MarketResolution:
    started = await markets.start_resolution(
        session, market.id, option_id=option_id, key=f"key-{uuid.uuid4()}", actor=SYSTEM
    )
    return await markets.distribute_resolution(session, started.id, actor=SYSTEM)


async def test_commitments_move_tokens_to_the_pool_by_option_or_position(
    session: AsyncSession,
) -> None:
    market, (yes, no) = await new_market(session)
    alice = await funded(session)

    by_position = await markets.commit(
        session,
        market.id,
        user_id=alice,
        amount=300,
        option_id=None,
        position=Position.NO,
        actor=user(alice),
    )
    by_id = await markets.commit(
        session, market.id, user_id=alice, amount=200, option_id=yes, position=None,
        actor=user(alice),
    )  # fmt: skip

    assert (by_position.option_id, by_position.matched_by) == (no, "position")
    assert (by_id.option_id, by_id.matched_by) == (yes, "option_id")
    assert await markets.token_balance(session, alice) == 500
    assert await pool_balance(session, market) == 500
    assert await markets.option_totals(session, market.id) == {yes: 200, no: 300}
    trail = await markets.commitment_trail(session, by_position.id)
    assert [event.action for event in trail] == ["market_commitment.created"]
    assert trail[0].metadata_ == {"matched_by": "position", "requested": {"position": "no"}}


@pytest.mark.parametrize(
    ("amount", "option", "position", "error"),
    [
        (5_000, "yes", None, Conflict),  # more than the balance
        (10, None, None, ValidationError),  # names no option
        (10, "yes", Position.YES, ValidationError),  # names two
        (10, "other", None, ValidationError),  # an option of another market
    ],
)
async def test_a_refused_commitment_changes_nothing(
    session: AsyncSession, amount: int, option: str | None, position: Position | None, error: type
) -> None:
    market, (yes, _) = await new_market(session)
    _, (other, _) = await new_market(session)
    alice = await funded(session)
    option_id = {"yes": yes, "other": other, None: None}[option]

    with pytest.raises(error):
        await markets.commit(
            session,
            market.id,
            user_id=alice,
            amount=amount,
            option_id=option_id,
            position=position,
            actor=user(alice),
        )

    assert await markets.token_balance(session, alice) == 1_000
    assert await pool_balance(session, market) == 0


async def test_a_multi_option_market_takes_no_position(session: AsyncSession) -> None:
    market, _ = await new_market(session, MarketKind.MULTI, ["red", "green", "blue"])
    alice = await funded(session)
    with pytest.raises(ValidationError):
        await markets.commit(
            session, market.id, user_id=alice, amount=1, option_id=None, position=Position.YES,
            actor=user(alice),
        )  # fmt: skip


async def test_a_distribution_pays_winners_fees_and_creator_exactly_once(
    session: AsyncSession,
) -> None:
    market, (yes, no) = await new_market(session)
    alice, bob, carol = [await funded(session) for _ in range(3)]
    for name, option, amount in ((alice, yes, 100), (bob, yes, 200), (carol, no, 700)):
        await markets.commit(
            session, market.id, user_id=name, amount=amount, option_id=option, position=None,
            actor=user(name),
        )  # fmt: skip

    resolution = await resolve(session, market, yes)
    again = await markets.distribute_resolution(session, resolution.id, actor=SYSTEM)

    assert again is resolution
    assert (resolution.status, resolution.outcome) == ("completed", "winners")
    # Pool 1000: 2% house (20), 1% creator (10), 970 shared 1:2.
    assert (resolution.house_fee, resolution.creator_fee, resolution.paid_out) == (20, 10, 970)
    assert await markets.token_balance(session, alice) == 900 + 323
    assert await markets.token_balance(session, bob) == 800 + 647
    assert await markets.token_balance(session, carol) == 300
    assert await markets.token_balance(session, market.creator_id) == 10
    assert await pool_balance(session, market) == 0
    refs = await session.scalar(
        select(func.count()).where(
            LedgerTransaction.external_ref == f"market-distribution-{resolution.id}"
        )
    )
    assert refs == 1
    rows = {
        c.user_id: (c.status, c.payout, c.profit)
        for c in await markets.list_commitments(session, market.id, limit=10)
    }
    assert rows == {alice: ("won", 323, 223), bob: ("won", 647, 447), carol: ("lost", 0, -700)}
    payouts = await markets.list_payouts(session, limit=10, resolution_id=resolution.id)
    assert {(p.user_id, p.amount, p.status) for p in payouts} == {
        (alice, 323, "completed"),
        (bob, 647, "completed"),
        (carol, 0, "completed"),
    }
    assert market.status == "resolved"


async def test_a_second_resolution_of_a_resolved_market_is_refused(session: AsyncSession) -> None:
    market, (yes, no) = await new_market(session)
    alice = await funded(session)
    await markets.commit(
        session, market.id, user_id=alice, amount=100, option_id=yes, position=None,
        actor=user(alice),
    )  # fmt: skip
    await resolve(session, market, yes)

    with pytest.raises(Conflict):
        await markets.start_resolution(
            session, market.id, option_id=no, key="another", actor=SYSTEM
        )
    with pytest.raises(Conflict):
        await markets.commit(
            session, market.id, user_id=alice, amount=1, option_id=yes, position=None,
            actor=user(alice),
        )  # fmt: skip
    # Paid once: 100 staked, 97 back after 3% of fees.
    assert await markets.token_balance(session, alice) == 997


async def test_nobody_on_the_winner_refunds_everyone(session: AsyncSession) -> None:
    market, (red, _, blue) = await new_market(session, MarketKind.MULTI, ["red", "green", "blue"])
    alice = await funded(session)
    await markets.commit(
        session, market.id, user_id=alice, amount=400, option_id=red, position=None,
        actor=user(alice),
    )  # fmt: skip

    resolution = await resolve(session, market, blue)

    assert (resolution.outcome, resolution.paid_out, resolution.house_fee) == ("refund", 400, 0)
    assert await markets.token_balance(session, alice) == 1_000


async def test_dispute_then_rollback_compensates_and_allows_a_new_resolution(
    session: AsyncSession,
) -> None:
    market, (yes, no) = await new_market(session)
    alice, bob = await funded(session), await funded(session)
    first = await markets.commit(
        session, market.id, user_id=alice, amount=100, option_id=yes, position=None,
        actor=user(alice),
    )  # fmt: skip
    await markets.commit(
        session, market.id, user_id=bob, amount=300, option_id=None, position=Position.NO,
        actor=user(bob),
    )  # fmt: skip
    wrong = await resolve(session, market, yes)

    await markets.dispute(session, wrong.id, reason="it did not rain", actor=ADMIN)
    assert (market.status, wrong.status) == ("disputed", "disputed")
    await markets.rollback(session, wrong.id, reason="wrong outcome", actor=ADMIN)
    repeated = await markets.rollback(session, wrong.id, reason="wrong outcome", actor=ADMIN)

    assert repeated.status == "rolled_back" and market.status == "rolled_back"
    assert await markets.token_balance(session, alice) == 900
    assert await markets.token_balance(session, bob) == 700
    assert await pool_balance(session, market) == 400
    assert await markets.token_balance(session, market.creator_id) == 0
    payouts = await markets.list_payouts(session, limit=10, resolution_id=wrong.id)
    assert {p.status for p in payouts} == {"rolled_back"}

    right = await resolve(session, market, no)

    assert (right.attempt, right.status) == (2, "completed")
    assert await markets.token_balance(session, alice) == 900
    assert await markets.token_balance(session, bob) == 700 + 388
    trail = [event.action for event in await markets.commitment_trail(session, first.id)]
    assert trail == [
        "market_commitment.created",
        "market_commitment.settled",
        "market_commitment.rolled_back",
        "market_commitment.settled",
    ]
    history = await markets.list_payouts(session, limit=10, user_id=bob)
    assert [(p.resolution_id, p.amount, p.status) for p in history] == [
        (right.id, 388, "completed"),
        (wrong.id, 0, "rolled_back"),
    ]


async def test_abandoning_a_failed_distribution_gives_the_market_back(
    session: AsyncSession,
) -> None:
    market, (yes, _) = await new_market(session)
    started = await markets.start_resolution(
        session, market.id, option_id=yes, key=f"key-{uuid.uuid4()}", actor=SYSTEM
    )
    assert market.status == "resolving"

    failed = await markets.abandon_resolution(session, started.id, error="boom", actor=SYSTEM)

    assert (failed.status, failed.error, market.status) == ("failed", "boom", "open")
    retried = await resolve(session, market, yes)
    assert (retried.attempt, retried.status) == (2, "completed")
    kept = await markets.abandon_resolution(session, retried.id, error="late", actor=SYSTEM)
    assert kept.status == "completed"


async def test_the_database_refuses_two_live_resolutions(session: AsyncSession) -> None:
    market, (yes, _) = await new_market(session)
    await resolve(session, market, yes)
    session.add(
        MarketResolution(
            market_id=market.id,
            attempt=2,
            key=f"key-{uuid.uuid4()}",
            winning_option_id=yes,
            status="distributing",
            pool=0,
            house_fee=0,
            creator_fee=0,
            paid_out=0,
            winning_commitments=0,
            resolved_by="sneaky",
        )
    )
    with pytest.raises(Exception, match="ix_market_resolutions_live"):
        await session.flush()


async def test_settled_after_the_window_and_then_final(session: AsyncSession) -> None:
    market, (yes, _) = await new_market(session)
    resolution = await resolve(session, market, yes)
    await markets.settle(session, resolution.id, actor=SYSTEM)
    assert market.status == "settled"
    with pytest.raises(Conflict):
        await markets.dispute(session, resolution.id, reason="late", actor=ADMIN)


async def test_no_payout_rows_for_an_empty_market(session: AsyncSession) -> None:
    market, (yes, _) = await new_market(session)
    resolution = await resolve(session, market, yes)
    assert (resolution.pool, resolution.ledger_transaction_id) == (0, None)
    count = await session.scalar(
        select(func.count()).where(MarketPayout.resolution_id == resolution.id)
    )
    assert count == 0
    assert (
        await session.scalar(select(func.count()).where(MarketCommitment.market_id == market.id))
        == 0
    )

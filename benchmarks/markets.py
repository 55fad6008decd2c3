"""Prediction-market figures on a real PostgreSQL 16: the time to resolve a market with
``TOLLGATE_BENCH_COMMITMENTS`` (100,000) commitments from ``TOLLGATE_BENCH_MARKET_USERS``
(2,000) users, i.e. the resolution's two activities (start, then the distribution: one
ledger transaction, every commitment marked, a payout row per user, an audit event per
commitment), each one database transaction as the workflow runs them.

The commitments are seeded in bulk (one statement, all funded by one ledger transaction), so
the seeding is not what is measured. The distribution's ledger transaction has a posting per
user paid, and the ledger's balance trigger (deferred, per row) re-sums the whole transaction
for each posting: its cost grows with the square of the users paid (20,000 users: minutes).
"""

import asyncio
import os
import time
import uuid

from sqlalchemy import func, select, text

from benchmarks.figures import Figure, emit
from devstack import postgres
from devstack.net import free_port
from domain.actors import SYSTEM
from domain.ledger import AccountType, transfer
from domain.markets import TOKEN, MarketKind, NoWinners
from domain.money import Money
from models.engine import make_engine, make_sessionmaker
from models.markets import MarketCommitment, MarketPayout
from models.migrate import upgrade
from services import ledger, markets

COMMITMENTS = int(os.environ.get("TOLLGATE_BENCH_COMMITMENTS", "100000"))
USERS = int(os.environ.get("TOLLGATE_BENCH_MARKET_USERS", "2000"))

# Stakes from 1 to 1,000 tokens, spread deterministically.
_STAKE = "1 + (g * 7919) % 1000"

_SEED_ACCOUNTS = """
INSERT INTO ledger_accounts (id, code, name, type, metadata)
SELECT gen_random_uuid(), 'tokens:bench-user-' || u, 'bench user', 'liability', '{}'::jsonb
FROM generate_series(0, :users - 1) AS u
ON CONFLICT (code) DO NOTHING
"""

_SEED_COMMITMENTS = f"""
INSERT INTO market_commitments (market_id, option_id, user_id, amount, matched_by, status,
                                ledger_transaction_id)
SELECT :market_id, (CAST(:options AS uuid[]))[1 + g % 3], 'bench-user-' || (g % :users),
       {_STAKE}, 'option_id', 'open', :txn_id
FROM generate_series(0, :count - 1) AS g
"""


async def seed(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A three-option market with its commitments; returns it and its winning option."""
    sessions = make_sessionmaker(make_engine(url))
    async with sessions() as session, session.begin():
        market = await markets.create_market(
            session,
            question="Which line carries the most riders this week?",
            kind=MarketKind.MULTI,
            options=["red", "green", "blue"],
            creator_id="bench-creator",
            house_fee_bps=200,
            creator_fee_bps=100,
            no_winners=NoWinners.REFUND,
            actor=SYSTEM,
        )
        options = [option.id for option in await markets.options_of(session, market.id)]
        await ledger.ensure_account(
            session,
            code=markets.ISSUANCE_ACCOUNT,
            name="issued",
            type=AccountType.EQUITY,
            actor=SYSTEM,
        )
        pool = sum(1 + (g * 7919) % 1000 for g in range(COMMITMENTS))
        funding = await ledger.post_transaction(
            session,
            postings=transfer(
                markets.ISSUANCE_ACCOUNT, markets.pool_account(market.id), Money(pool, TOKEN)
            ),
            actor=SYSTEM,
            description="benchmark commitments",
        )
        await session.execute(text(_SEED_ACCOUNTS), {"users": USERS})
        await session.execute(
            text(_SEED_COMMITMENTS),
            {
                "market_id": market.id,
                "options": options,
                "users": USERS,
                "txn_id": funding.id,
                "count": COMMITMENTS,
            },
        )
    async with sessions() as session:
        await session.execute(text("ANALYZE"))
    return market.id, options[1]


async def resolve(url: str, market_id: uuid.UUID, winner: uuid.UUID) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    async with sessions() as session, session.begin():
        resolution = await markets.start_resolution(
            session, market_id, option_id=winner, key=f"bench-{uuid.uuid4()}", actor=SYSTEM
        )
    async with sessions() as session, session.begin():
        resolution = await markets.distribute_resolution(session, resolution.id, actor=SYSTEM)
    elapsed = time.perf_counter() - started
    async with sessions() as session:
        settled = await session.scalar(
            select(func.count()).where(
                MarketCommitment.market_id == market_id, MarketCommitment.status != "open"
            )
        )
        payouts = await session.scalar(
            select(func.count()).where(MarketPayout.resolution_id == resolution.id)
        )
        pool_left = (await ledger.balances(session, markets.pool_account(market_id)))[TOKEN]
    await engine.dispose()
    assert settled == COMMITMENTS and pool_left == 0, (settled, pool_left)
    assert resolution.paid_out + resolution.house_fee + resolution.creator_fee == resolution.pool
    emit(
        f"markets: resolved a market of {COMMITMENTS:,} commitments ({USERS:,} users, "
        f"{resolution.winning_commitments:,} winning, pool {resolution.pool:,} tokens, "
        f"{payouts:,} payout rows) in {elapsed:.2f} s "
        f"({COMMITMENTS / elapsed:,.0f} commitments per second)",
        Figure(f"resolution of {COMMITMENTS:,} commitments", elapsed, "s"),
        Figure("resolution, commitments", COMMITMENTS / elapsed, "/s", better="higher"),
    )


async def main() -> None:
    port = free_port()
    with postgres.temporary_server(port):
        await asyncio.to_thread(postgres.ensure_database, port, "bench")
        url = postgres.url(port, "bench")
        await asyncio.to_thread(upgrade, url)
        market_id, winner = await seed(url)
        await resolve(url, market_id, winner)


if __name__ == "__main__":
    asyncio.run(main())

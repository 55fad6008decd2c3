"""The market resolution workflow on the time-skipping server with the real activities on a
test database: the ledger is the witness that a market is paid once."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.markets import MarketActivities
from domain.actors import Actor, Role
from domain.errors import ValidationError
from domain.markets import MarketKind, NoWinners
from models.engine import make_engine, make_sessionmaker
from models.ledger import LedgerTransaction
from models.markets import MarketResolution
from services import markets
from workflows.markets import MarketResolutionWorkflow
from workflows.types import (
    DisputeMarket,
    MarketResolutionInput,
    MarketResolutionStatus,
    MarketStepInput,
    ResolveMarket,
    RollbackMarket,
)

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)


@dataclass
class Market:
    id: uuid.UUID
    yes: uuid.UUID
    no: uuid.UUID
    # user → tokens staked on yes / on no (each granted 1,000)
    stakes: dict[str, tuple[int, int]]


async def make_market(sessionmaker: async_sessionmaker[AsyncSession]) -> Market:
    stakes = {"alice": (100, 0), "bob": (300, 200), "carol": (0, 400)}
    async with sessionmaker() as session, session.begin():
        market = await markets.create_market(
            session,
            question="Will the ferry leave on time?",
            kind=MarketKind.BINARY,
            options=[],
            creator_id="creator",
            house_fee_bps=0,
            creator_fee_bps=0,
            no_winners=NoWinners.REFUND,
            actor=ADMIN,
        )
        yes, no = (option.id for option in await markets.options_of(session, market.id))
        for name, (on_yes, on_no) in stakes.items():
            who = Actor(name, Role.CUSTOMER)
            await markets.grant_tokens(
                session, user_id=name, amount=1_000, reason="test", actor=ADMIN
            )
            for option, amount in ((yes, on_yes), (no, on_no)):
                if amount:
                    await markets.commit(
                        session, market.id, user_id=name, amount=amount, option_id=option,
                        position=None, actor=who,
                    )  # fmt: skip
    return Market(market.id, yes, no, stakes)


@dataclass
class Harness:
    env: WorkflowEnvironment
    sessionmaker: async_sessionmaker[AsyncSession]
    task_queue: str

    async def start(self, market: Market, option: uuid.UUID) -> WorkflowHandle:
        return await self.env.client.start_workflow(
            MarketResolutionWorkflow.run,
            MarketResolutionInput(market_id=market.id, dispute_window_seconds=3600),
            id=f"market-resolution-{market.id}",
            task_queue=self.task_queue,
            start_signal="resolve",
            start_signal_args=[ResolveMarket(option_id=option, by="ops-1")],
        )

    async def balances(self, market: Market) -> dict[str, int]:
        async with self.sessionmaker() as session:
            return {name: await markets.token_balance(session, name) for name in market.stakes}

    async def distributions(self, market: Market) -> int:
        """Ledger transactions that paid out this market, reversed or not."""
        async with self.sessionmaker() as session:
            ids = select(MarketResolution.id).where(MarketResolution.market_id == market.id)
            refs = [f"market-distribution-{rid}" for rid in await session.scalars(ids)]
            count = await session.scalar(
                select(func.count()).where(LedgerTransaction.external_ref.in_(refs))
            )
            return int(count or 0)


async def until(
    handle: WorkflowHandle, done: Callable[[MarketResolutionStatus], bool]
) -> MarketResolutionStatus:
    """Poll the ``status`` query (in real time: queries do not skip time)."""
    for _ in range(400):
        status: MarketResolutionStatus = await handle.query(MarketResolutionWorkflow.status)
        if done(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workflow never got there: {status}")


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def worker(harness: Harness, activities: list) -> Worker:
    return Worker(
        harness.env.client,
        task_queue=harness.task_queue,
        workflows=[MarketResolutionWorkflow],
        activities=activities,
    )


def real(sessionmaker: async_sessionmaker[AsyncSession]) -> list:
    acts = MarketActivities(sessionmaker)
    return [
        acts.load,
        acts.start_resolution,
        acts.distribute,
        acts.abandon,
        acts.dispute,
        acts.uphold,
        acts.rollback,
        acts.settle,
    ]


@pytest.fixture
def harness(
    time_skipping_env: WorkflowEnvironment, sessionmaker: async_sessionmaker[AsyncSession]
) -> Harness:
    return Harness(time_skipping_env, sessionmaker, f"markets-{uuid.uuid4()}")


async def test_resolving_twice_pays_once(harness: Harness) -> None:
    market = await make_market(harness.sessionmaker)
    async with worker(harness, real(harness.sessionmaker)):
        handle = await harness.start(market, market.yes)
        await handle.signal(MarketResolutionWorkflow.resolve, ResolveMarket(option_id=market.no))
        # Again through a second start with the same id: the same workflow, not a second one.
        again = await harness.start(market, market.yes)
        result: MarketResolutionStatus = await handle.result()

    assert again.result_run_id == handle.result_run_id
    assert (result.status, result.winning_option_id, result.paid_out) == (
        "settled",
        market.yes,
        1_000,
    )
    assert await harness.distributions(market) == 1
    # Pool 1,000 to the yes side (alice 100, bob 300): 250 and 750.
    assert await harness.balances(market) == {"alice": 1_150, "bob": 1_250, "carol": 600}


async def test_rollback_then_a_new_resolution_pays_the_right_side(harness: Harness) -> None:
    market = await make_market(harness.sessionmaker)
    async with worker(harness, real(harness.sessionmaker)):
        handle = await harness.start(market, market.yes)
        first_run = handle.result_run_id
        await handle.signal(MarketResolutionWorkflow.dispute, DisputeMarket(reason="photo finish"))
        await handle.signal(MarketResolutionWorkflow.rollback, RollbackMarket(reason="wrong side"))
        latest = harness.env.client.get_workflow_handle_for(MarketResolutionWorkflow.run, handle.id)
        await until(latest, lambda status: status.status == "rolled_back")
        assert await harness.balances(market) == {"alice": 900, "bob": 500, "carol": 600}
        await latest.signal(MarketResolutionWorkflow.resolve, ResolveMarket(option_id=market.no))
        await until(latest, lambda status: status.status == "resolved")
        # The time-skipping server does not skip time for a result after a continue-as-new:
        # skip past the dispute window explicitly.
        await harness.env.sleep(7200)
        result = await latest.result()
        described = await latest.describe()

    assert (result.status, result.winning_option_id) == ("settled", market.no)
    # The rollback's cycle continued as new.
    assert described.run_id != first_run
    assert await harness.distributions(market) == 2
    async with harness.sessionmaker() as session:
        resolutions = await markets.list_resolutions(session, market.id)
    assert [(r.attempt, r.status) for r in resolutions] == [(1, "rolled_back"), (2, "completed")]
    assert resolutions[0].reversal_transaction_id is not None
    # Pool 1,000 to the no side (bob 200, carol 400).
    assert await harness.balances(market) == {"alice": 900, "bob": 833, "carol": 1_267}


@pytest.mark.parametrize("crash", ["mid_transaction", "after_commit"])
async def test_a_crash_mid_distribution_resumes_without_duplicates(
    harness: Harness, crash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = await make_market(harness.sessionmaker)
    acts = MarketActivities(harness.sessionmaker)
    real_audit = markets._audit_commitments
    crashed = asyncio.Event()

    async def dies_once_before_commit(*args: object, **kwargs: object) -> None:
        # The ledger transaction is posted and the commitments marked: then the worker dies.
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("worker lost mid-distribution")
        await real_audit(*args, **kwargs)  # type: ignore[arg-type]

    @activity.defn(name="market_distribute")
    async def distribute(request: MarketStepInput) -> object:
        state = await acts._distribute(request)
        if crash == "after_commit" and not crashed.is_set():
            crashed.set()
            # Committed, then silent: the heartbeat timeout gives the work to another attempt.
            await asyncio.Event().wait()
        return state

    if crash == "mid_transaction":
        monkeypatch.setattr(markets, "_audit_commitments", dies_once_before_commit)
    activities = [a for a in real(harness.sessionmaker) if a.__name__ != "distribute"]
    async with worker(harness, [*activities, distribute]):
        handle = await harness.start(market, market.yes)
        result: MarketResolutionStatus = await handle.result()

    assert crashed.is_set()
    assert result.status == "settled"
    assert await harness.distributions(market) == 1
    assert await harness.balances(market) == {"alice": 1_150, "bob": 1_250, "carol": 600}


async def test_a_distribution_failing_for_good_is_compensated(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = await make_market(harness.sessionmaker)
    real_distribute = markets.distribute_resolution
    failing = True

    async def refused(*args: object, **kwargs: object) -> MarketResolution:
        if failing:
            raise ValidationError("the pool cannot be shared")
        return await real_distribute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(markets, "distribute_resolution", refused)
    async with worker(harness, real(harness.sessionmaker)):
        handle = await harness.start(market, market.yes)
        status = await until(handle, lambda status: status.resolution_status == "failed")
        assert (status.status, status.last_error) == (
            "open",
            "ValidationError: the pool cannot be shared",
        )
        assert await harness.balances(market) == {"alice": 900, "bob": 500, "carol": 600}
        failing = False
        await handle.signal(MarketResolutionWorkflow.resolve, ResolveMarket(option_id=market.yes))
        result: MarketResolutionStatus = await handle.result()

    assert (result.status, result.resolution_status) == ("settled", "completed")
    assert await harness.distributions(market) == 1
    assert await harness.balances(market) == {"alice": 1_150, "bob": 1_250, "carol": 600}

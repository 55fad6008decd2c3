"""The hourly liquidity check on the time-skipping server: the real evaluation step on a test
database, the providers' balances from name-matched stubs on their own task queues. The
runway alert is recorded once when the runway falls under 2 days, not again on the next
check, and a recovery once; a provider that does not answer leaves its rail out."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.liquidity import LiquidityActivities
from models.outbox import OutboxEvent
from models.transfers import Transfer
from worker import WORKFLOW_RUNNER
from workflows.liquidity import LiquidityCheckWorkflow
from workflows.types import (
    LiquidityCheckInput,
    LiquidityCheckResult,
    ProviderBalance,
    ProviderBalanceInput,
    ProviderFunds,
)


@dataclass
class Providers:
    """Stub balances: Stripe's USD ``stripe_usd``; the chain float ``chain_usdc``, or a node
    that does not answer while ``chain_down``."""

    stripe_usd: int = 0
    chain_usdc: int = 0
    chain_down: bool = False
    chain_reads: int = 0
    seen: list[str] = field(default_factory=list)

    @activity.defn(name="liquidity_stripe_balance")
    async def stripe_balance(self, _: ProviderBalanceInput) -> ProviderBalance:
        return ProviderBalance(
            rail="stripe", funds=[ProviderFunds(currency="USD", available=self.stripe_usd)]
        )

    @activity.defn(name="liquidity_chain_balance")
    async def chain_balance(self, _: ProviderBalanceInput) -> ProviderBalance:
        self.chain_reads += 1
        if self.chain_down:
            raise RuntimeError("chain node unavailable")
        return ProviderBalance(
            rail="chain", funds=[ProviderFunds(currency="USDC", available=self.chain_usdc)]
        )


@dataclass
class Check:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    providers: Providers
    request: LiquidityCheckInput
    queue: str

    async def run(self) -> LiquidityCheckResult:
        return await self.env.client.execute_workflow(
            LiquidityCheckWorkflow.run,
            self.request,
            id=f"liquidity-check-{uuid.uuid4()}",
            task_queue=self.queue,
        )

    async def events(self) -> list[tuple[str, str]]:
        async with self.db() as session:
            rows = await session.execute(
                select(OutboxEvent.event_type, OutboxEvent.entity_id)
                .where(OutboxEvent.entity_type == "liquidity")
                .order_by(OutboxEvent.id)
            )
            return [(event_type, entity) for event_type, entity in rows]


def sent(rail: str, currency: str, amount: int, days_ago: float) -> Transfer:
    transfer_id = uuid.uuid4()
    return Transfer(
        id=transfer_id,
        partner_id="liquidity-partner",
        reference=f"liq-{transfer_id.hex[:16]}",
        destination="acct_1Liquidity" if rail == "stripe" else "0x" + "cd" * 20,
        amount=amount,
        currency=currency,
        rail=rail,
        route_reason="test",
        status="succeeded",
        attempts=0,
        key_run=0,
        idempotency_key=f"transfer-{transfer_id}",
        external_id=f"ext-{transfer_id.hex[:8]}",
        completed_at=datetime.now(UTC) - timedelta(days=days_ago),
    )


@pytest.fixture
async def check(
    time_skipping_env: WorkflowEnvironment, db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Check]:
    # 7,000 USD on Stripe and 7,000 USDC on the chain sent over the last week: 1,000 a day.
    async with db() as session, session.begin():
        session.add_all(
            [sent("stripe", "USD", 100_000, day + 0.5) for day in range(7)]
            + [sent("chain", "USDC", 1_000_000_000, day + 0.5) for day in range(7)]
        )
    providers = Providers(stripe_usd=1_000_000, chain_usdc=10_000_000_000)
    queue = f"liquidity-{uuid.uuid4()}"
    request = LiquidityCheckInput(
        rails=["stripe", "chain"],
        window_days=7,
        alert_days=2.0,
        stripe_task_queue=f"liquidity-stripe-{uuid.uuid4()}",
        chain_task_queue=f"liquidity-chain-{uuid.uuid4()}",
    )
    async with (
        Worker(
            time_skipping_env.client,
            task_queue=queue,
            workflows=[LiquidityCheckWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
            activities=[LiquidityActivities(db).evaluate],
        ),
        Worker(
            time_skipping_env.client,
            task_queue=request.stripe_task_queue,
            activities=[providers.stripe_balance],
        ),
        Worker(
            time_skipping_env.client,
            task_queue=request.chain_task_queue,
            activities=[providers.chain_balance],
            max_concurrent_activities=1,
        ),
    ):
        yield Check(time_skipping_env, db, providers, request, queue)


async def test_runway_low_is_recorded_once_when_it_falls_under_two_days(check: Check) -> None:
    healthy = await check.run()
    assert healthy.status == "ok" and healthy.alerts == [] and healthy.unavailable == {}
    assert [(p.rail, p.currency, p.runway_days, p.low) for p in healthy.positions] == [
        ("chain", "USDC", 10.0, False),
        ("stripe", "USD", 10.0, False),
    ]

    # Stripe's balance drops to 1.5 days of volume.
    check.providers.stripe_usd = 150_000
    dropped = await check.run()
    assert dropped.status == "low"
    assert [(a.event_type, a.rail, a.currency) for a in dropped.alerts] == [
        ("liquidity.runway_low", "stripe", "USD")
    ]

    # Still low an hour later: nothing new.
    again = await check.run()
    assert again.status == "low" and again.alerts == []
    assert [p.runway_days for p in again.positions if p.rail == "stripe"] == [1.5]
    assert await check.events() == [("liquidity.runway_low", "stripe:USD")]

    # Topped up: recovered, once.
    check.providers.stripe_usd = 500_000
    recovered = await check.run()
    assert recovered.status == "ok"
    assert [a.event_type for a in recovered.alerts] == ["liquidity.runway_recovered"]
    assert (await check.run()).alerts == []
    assert await check.events() == [
        ("liquidity.runway_low", "stripe:USD"),
        ("liquidity.runway_recovered", "stripe:USD"),
    ]


async def test_a_provider_that_does_not_answer_leaves_its_rail_out(check: Check) -> None:
    check.providers.chain_down = True
    check.providers.stripe_usd = 100_000

    result = await check.run()

    assert check.providers.chain_reads == 5  # retried, then given up for this run
    assert result.status == "low"
    assert list(result.unavailable) == ["chain"]
    assert "chain node unavailable" in result.unavailable["chain"]
    assert [(p.rail, p.low) for p in result.positions] == [("stripe", True)]
    # The chain's last state is unknown: no alert either way.
    assert await check.events() == [("liquidity.runway_low", "stripe:USD")]

    check.providers.stripe_usd = 1_000_000
    degraded = await check.run()
    assert degraded.status == "degraded"

"""Recorded histories of the operational workflows the Schedules run, made with the real
database and Stripe activities against a throw-away database and Stripe sandbox; the chain
float is read by a name-matched stub (the chain has its own recordings):

- ``LiquidityCheck``: Stripe's balance falls under the runway threshold (``runway_low``
  recorded); then the chain's node does not answer (its rail left out after its retries)
  while Stripe, topped up, recovers (``runway_recovered`` recorded, status ``degraded``);
- ``PurgeExpiredTickets``: two finished, anchored tickets past retention removed;
- ``RestartMissingWorkflows``: a hold and a payout schedule whose workflows are missing,
  started again.

Called by ``tests.replay.record``; ``python -m tests.replay.record_operations`` records
these alone."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.liquidity import LiquidityActivities, StripeBalanceActivities
from activities.recovery import RecoveryActivities
from activities.tickets import TicketActivities
from devstack import postgres
from devstack.binaries import find
from devstack.net import free_port
from domain.actors import SYSTEM, Actor, Role
from domain.escrow import HoldReason, TriggerEvent
from domain.money import Money
from domain.tickets.signing import KeyRing
from integrations.temporal import add_search_attributes
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.transfers import Transfer
from services import anchoring, escrow, payouts, tickets
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox
from worker import WORKFLOW_RUNNER
from workflows.liquidity import LiquidityCheckWorkflow
from workflows.recovery import RestartMissingWorkflowsWorkflow
from workflows.search_attributes import ALL
from workflows.tickets import PurgeExpiredTicketsWorkflow
from workflows.types import (
    LiquidityCheckInput,
    LiquidityCheckResult,
    ProviderBalance,
    ProviderBalanceInput,
    ProviderFunds,
    PurgeInput,
    RecoveryInput,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]
RING = KeyRing.generate("record-1")
BOOKING_SERVICE = Actor("booking-svc", Role.PLATFORM_ADMIN)
TX = "0x" + "ab" * 32
CONTRACT = "0x" + "cd" * 20


@asynccontextmanager
async def _database() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    port = free_port()
    with postgres.temporary_server(port):
        postgres.ensure_database(port, "record")
        database_url = postgres.url(port, "record")
        await asyncio.to_thread(upgrade, database_url)
        engine = make_engine(database_url)
        try:
            yield make_sessionmaker(engine)
        finally:
            await engine.dispose()


@dataclass
class ChainFloat:
    """The chain float (10,000 USDC), or a node that does not answer while ``down``."""

    usdc: int = 10_000_000_000
    down: bool = False

    @activity.defn(name="liquidity_chain_balance")
    async def chain_balance(self, _: ProviderBalanceInput) -> ProviderBalance:
        if self.down:
            raise RuntimeError("chain node at http://127.0.0.1:8545 is unavailable")
        return ProviderBalance(
            rail="chain", funds=[ProviderFunds(currency="USDC", available=self.usdc)]
        )


def _sent(rail: str, currency: str, amount: int, days_ago: float) -> Transfer:
    """A transfer that left the platform ``days_ago`` (the runway's volume)."""
    transfer_id = uuid.uuid4()
    return Transfer(
        id=transfer_id,
        partner_id="recorded-liquidity",
        reference=f"recorded-{transfer_id.hex[:16]}",
        destination="acct_recordedLiquidity" if rail == "stripe" else "0x" + "cd" * 20,
        amount=amount,
        currency=currency,
        rail=rail,
        route_reason="recorded",
        status="succeeded",
        attempts=0,
        key_run=0,
        idempotency_key=f"transfer-{transfer_id}",
        external_id=f"ext-{transfer_id.hex[:8]}",
        completed_at=datetime.now(UTC) - timedelta(days=days_ago),
    )


async def record_operations(env: WorkflowEnvironment, save: Save) -> None:
    with tempfile.TemporaryDirectory() as logs, run_stripe_sandbox(Path(logs)) as sandbox:
        async with _database() as db:
            await _record_liquidity(env, db, sandbox, save)
            await _record_ticket_purge(env, db, save)
            await _record_recovery(env, db, save)


async def _record_liquidity(
    env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    sandbox: StripeSandbox,
    save: Save,
) -> None:
    # 1,000 USD a day on Stripe and 1,000 USDC a day on the chain over the last week.
    async with db() as session, session.begin():
        session.add_all(
            [_sent("stripe", "USD", 100_000, day + 0.5) for day in range(7)]
            + [_sent("chain", "USDC", 1_000_000_000, day + 0.5) for day in range(7)]
        )
    chain = ChainFloat()
    queue = f"record-liquidity-{uuid.uuid4()}"
    request = LiquidityCheckInput(
        rails=["stripe", "chain"],
        window_days=7,
        alert_days=2.0,
        stripe_task_queue=f"record-liquidity-stripe-{uuid.uuid4()}",
        chain_task_queue=f"record-liquidity-chain-{uuid.uuid4()}",
    )
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=[LiquidityCheckWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
            activities=[LiquidityActivities(db).evaluate],
        ),
        Worker(
            env.client,
            task_queue=request.stripe_task_queue,
            activities=[
                StripeBalanceActivities(sandbox.client(timeout_seconds=2.0)).stripe_balance
            ],
        ),
        Worker(
            env.client,
            task_queue=request.chain_task_queue,
            activities=[chain.chain_balance],
            max_concurrent_activities=1,
        ),
    ):

        async def check(name: str) -> LiquidityCheckResult:
            handle = await env.client.start_workflow(
                LiquidityCheckWorkflow.run,
                request,
                id=f"liquidity-check-{name}",
                task_queue=queue,
            )
            result = await handle.result()
            await save(handle, name)
            return result

        # 1,500 USD on Stripe: a day and a half of volume.
        sandbox.fund(150_000)
        low = await check("liquidity_check_runway_low")
        assert low.status == "low", low
        assert [(a.event_type, a.rail) for a in low.alerts] == [("liquidity.runway_low", "stripe")]

        # Topped up to 5,000 USD while the chain's node is away.
        sandbox.fund(350_000)
        chain.down = True
        recovered = await check("liquidity_check_chain_unavailable")
        assert recovered.status == "degraded", recovered
        assert list(recovered.unavailable) == ["chain"], recovered
        assert [a.event_type for a in recovered.alerts] == ["liquidity.runway_recovered"]


async def _ticket(session: AsyncSession, booking: str, ended_days_ago: float) -> uuid.UUID:
    until = datetime.now(UTC) - timedelta(days=ended_days_ago)
    issued = await tickets.issue(
        session,
        booking_id=booking,
        user_id="rider-recorded",
        driver_id="drv-recorded",
        trip={},
        valid_from=until - timedelta(hours=2),
        valid_until=until,
        ring=RING,
        actor=BOOKING_SERVICE,
    )
    return issued.ticket.id


async def _record_ticket_purge(
    env: WorkflowEnvironment, db: async_sessionmaker[AsyncSession], save: Save
) -> None:
    """Two expired tickets past the 30 days' retention, anchored and confirmed, removed; a
    recent one kept."""
    async with db() as session, session.begin():
        for booking, days_ago in (("old-1", 40), ("old-2", 35), ("recent", 1)):
            ticket_id = await _ticket(session, f"bk-recorded-{booking}", days_ago)
            await tickets.expire(session, ticket_id, actor=SYSTEM)
        batch = await anchoring.create_batch(session, max_leaves=1000, actor=SYSTEM)
        assert batch is not None
        await anchoring.mark_submitted(
            session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
        )
        await anchoring.record_confirmations(
            session,
            batch.id,
            tx_hash=TX,
            block_number=7,
            block_hash=TX,
            confirmations=1,
            anchored_at=datetime.now(UTC),
            confirmed=True,
            actor=SYSTEM,
        )
    queue = f"record-ticket-purge-{uuid.uuid4()}"
    steps = TicketActivities(db, retention=timedelta(days=30))
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[PurgeExpiredTicketsWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[steps.purge_expired_tickets],
    ):
        handle = await env.client.start_workflow(
            PurgeExpiredTicketsWorkflow.run,
            PurgeInput(),
            id="purge-expired-tickets-recorded",
            task_queue=queue,
        )
        result = await handle.result()
        assert result.deleted == 2, result
        await save(handle, "purge_expired_tickets")


async def _record_recovery(
    env: WorkflowEnvironment, db: async_sessionmaker[AsyncSession], save: Save
) -> None:
    """A hold still holding money and an open payout schedule, neither with its workflow:
    both started again (on a queue nobody polls: the recording is of the safety net)."""
    later = datetime.now(UTC) + timedelta(days=30)
    async with db() as session, session.begin():
        hold = await escrow.create_hold(
            session,
            payer_id="payer-recorded",
            payee_id="payee-recorded",
            money=Money(5_000, "USD"),
            reason=HoldReason.OTHER,
            release_at=later,
            actor=SYSTEM,
        )
        schedule = await payouts.create_schedule(
            session,
            payee_id="payee-recorded",
            destination="acct_recorded",
            money=Money(5_000, "USD"),
            trigger_event=TriggerEvent.MANUAL,
            scheduled_for=later,
            actor=SYSTEM,
        )
    queue = f"record-recovery-{uuid.uuid4()}"
    restarted_queue = f"record-recovery-restarted-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[RestartMissingWorkflowsWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[RecoveryActivities(db, env.client).restart_missing_workflows],
    ):
        handle = await env.client.start_workflow(
            RestartMissingWorkflowsWorkflow.run,
            RecoveryInput(task_queue=restarted_queue, stripe_task_queue="unused"),
            id="restart-missing-workflows-recorded",
            task_queue=queue,
        )
        result = await handle.result()
        assert (result.restarted_holds, result.restarted_payouts) == (1, 1), result
        await save(handle, "restart_missing_workflows")
    for workflow_id in (f"escrow-hold-{hold.id}", f"payout-schedule-{schedule.id}"):
        await env.client.get_workflow_handle(workflow_id).terminate(reason="recorded")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_operations(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

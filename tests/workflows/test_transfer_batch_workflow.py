"""The transfer batch workflow on the time-skipping server, with the real activities: a test
database and the Stripe sandbox (faults injected there with ``next``). The chain rail's token
activities are name-matched stubs on their own task queue. Batches are created as the API
creates them, then run by ``transfer-batch-{id}``; backoffs run in skipped time."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.transfers import StripeTransferSendActivities, TransferActivities
from domain.actors import Actor, Role
from domain.errors import NotFound
from domain.rails import RoutingRules
from domain.transfers import BatchSource
from models.outbox import OutboxEvent
from models.transfers import Transfer, TransferBatch
from services import ledger, transfers
from tests.fixtures.stripe_sandbox import StripeSandbox
from tests.fixtures.waiting import until
from worker import WORKFLOW_RUNNER
from workflows.transfers import TransferBatchWorkflow
from workflows.types import (
    CancelTransferBatch,
    RetryFailedTransfers,
    TokenTransferInput,
    TokenTransferResult,
    TransferBatchInput,
    TransferBatchStatus,
)

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)
RULES = RoutingRules()
ACCOUNT = "acct_1BatchPayee"
Handle = WorkflowHandle[TransferBatchWorkflow, TransferBatchStatus]


def tx_hash(transfer_id: uuid.UUID) -> str:
    return f"0x{transfer_id.hex:0>64}"


@dataclass
class ChainStub:
    """The chain rail's token activities: sent PENDING, then MINED, then CONFIRMED; a
    destination in ``revert`` is mined and reverted; while ``hold`` is unset nothing is mined."""

    sent: list[TokenTransferInput] = field(default_factory=list)
    checks: dict[uuid.UUID, int] = field(default_factory=dict)
    revert: set[str] = field(default_factory=set)
    hold: asyncio.Event | None = None

    @activity.defn(name="send_token_transfer")
    async def send_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        self.sent.append(request)
        return TokenTransferResult(status="PENDING", tx_hash=tx_hash(request.transfer_id))

    @activity.defn(name="check_token_transfer")
    async def check_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        looks = self.checks[request.transfer_id] = self.checks.get(request.transfer_id, 0) + 1
        hashed = tx_hash(request.transfer_id)
        if self.hold is not None and not self.hold.is_set():
            return TokenTransferResult(status="PENDING", tx_hash=hashed)
        if request.destination in self.revert:
            return TokenTransferResult(
                status="REVERTED", tx_hash=hashed, error="the transfer reverted: nothing moved"
            )
        status = "MINED" if looks == 1 else "CONFIRMED"
        return TokenTransferResult(
            status=status,
            tx_hash=hashed,
            confirmations=looks - 1,
            amount=request.amount,
            destination=request.destination,
        )


@dataclass
class Run:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    sandbox: StripeSandbox
    queue: str
    stripe_queue: str
    chain_queue: str
    chain: ChainStub

    async def batch(self, items: list[dict[str, Any]]) -> TransferBatch:
        """Created and committed as the API does, before its workflow starts."""
        partner = f"partner-{uuid.uuid4().hex[:8]}"
        async with self.db() as session, session.begin():
            return await transfers.create_batch(
                session,
                partner_id=partner,
                items=items,
                source=BatchSource.JSON,
                rules=RULES,
                actor=ADMIN,
            )

    def workflow_input(self, batch: TransferBatch, **options: Any) -> TransferBatchInput:
        return TransferBatchInput(
            batch_id=batch.id,
            stripe_task_queue=self.stripe_queue,
            chain_task_queue=self.chain_queue,
            chain_poll_seconds=1,
            **options,
        )

    async def start(self, batch: TransferBatch, **options: Any) -> Handle:
        return await self.env.client.start_workflow(
            TransferBatchWorkflow.run,
            self.workflow_input(batch, **options),
            id=f"transfer-batch-{batch.id}",
            task_queue=self.queue,
        )

    async def items(self, batch: TransferBatch) -> list[Transfer]:
        async with self.db() as session:
            return list(await transfers.list_items(session, batch.id, limit=1000))

    async def stored(self, batch: TransferBatch) -> TransferBatch:
        async with self.db() as session:
            return await transfers.get_batch(session, batch.id)

    async def events(self, *types: str) -> list[str]:
        async with self.db() as session:
            rows = await session.scalars(
                select(OutboxEvent.event_type)
                .where(OutboxEvent.event_type.in_(types))
                .order_by(OutboxEvent.id)
            )
            return list(rows)

    async def balance(self, code: str, currency: str) -> int:
        async with self.db() as session:
            try:
                return (await ledger.balances(session, code)).get(currency, 0)
            except NotFound:
                return 0


@pytest.fixture
async def run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    # A short client timeout, so an injected ``timeout`` fault outlasts it.
    client = stripe_sandbox.client(timeout_seconds=1.0)
    steps = TransferActivities(db)
    chain = ChainStub()
    run = Run(
        time_skipping_env,
        db,
        stripe_sandbox,
        f"transfers-{uuid.uuid4()}",
        f"transfers-stripe-{uuid.uuid4()}",
        f"transfers-chain-{uuid.uuid4()}",
        chain,
    )
    async with (
        Worker(
            time_skipping_env.client,
            task_queue=run.queue,
            workflows=[TransferBatchWorkflow],
            workflow_runner=WORKFLOW_RUNNER,
            activities=[
                steps.begin,
                steps.start,
                steps.succeed,
                steps.fail,
                steps.cancel,
                steps.finish,
            ],
        ),
        Worker(
            time_skipping_env.client,
            task_queue=run.stripe_queue,
            activities=[StripeTransferSendActivities(db, client).send],
        ),
        Worker(
            time_skipping_env.client,
            task_queue=run.chain_queue,
            activities=[chain.send_token_transfer, chain.check_token_transfer],
            max_concurrent_activities=1,
        ),
    ):
        try:
            yield run
        finally:
            stripe_sandbox.clear_faults()


def stripe_items(count: int, currency: str = "USD", amount: int = 1_000) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    return [
        {
            "reference": f"{tag}-{i}",
            "destination": f"{ACCOUNT}{tag}{i}",
            "amount": amount + i,
            "currency": currency,
        }
        for i in range(count)
    ]


def chain_items(count: int, currency: str = "USDC") -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    return [
        {
            "reference": f"{tag}-chain-{i}",
            "destination": "0x" + f"{tag}{i:02d}".rjust(40, "a"),
            "amount": 2_000_000 + i,
            "currency": currency,
        }
        for i in range(count)
    ]


async def test_a_batch_whose_items_fail_transiently_completes(run: Run) -> None:
    run.sandbox.fund(100_000)
    batch = await run.batch(stripe_items(5))
    float_before = await run.balance(transfers.STRIPE_FLOAT_ACCOUNT, "USD")
    # Four answers of the sandbox are outages: two 500s, a 429, and a response held past
    # the client's timeout (the money moved; only the retry under the same key learns it).
    run.sandbox.set_faults(next=["500", "429", "timeout", "500"], timeout_seconds=3)

    result = await (await run.start(batch)).result()

    assert (result.status, result.succeeded, result.failed, result.percent_done) == (
        "completed",
        5,
        0,
        100.0,
    )
    assert run.sandbox.set_faults()["next"] == []
    items = await run.items(batch)
    assert {item.status for item in items} == {"succeeded"}
    assert sum(item.attempts for item in items) == 4
    for item in items:
        # Exactly one Stripe transfer per item, under the item's own key.
        [moved] = run.sandbox.movements(idempotency_key=f"transfer-{item.id}")
        assert (moved["kind"], moved["object_id"], moved["amount"]) == (
            "transfer",
            item.external_id,
            item.amount,
        )
    stored = await run.stored(batch)
    assert (stored.status, stored.succeeded_count, stored.pending_count) == ("completed", 5, 0)
    paid = sum(item.amount for item in items)
    assert await run.balance(transfers.STRIPE_FLOAT_ACCOUNT, "USD") == float_before - paid
    assert await run.events("transfer.succeeded", "transfer_batch.completed") == [
        *["transfer.succeeded"] * 5,
        "transfer_batch.completed",
    ]


async def test_a_refused_item_fails_at_once_and_the_batch_ends_partially_completed(
    run: Run,
) -> None:
    run.sandbox.fund(10_000)
    # Nothing in the sandbox was ever funded in ZAR: Stripe refuses that transfer.
    batch = await run.batch([*stripe_items(2), *stripe_items(1, currency="ZAR")])

    result = await (await run.start(batch)).result()

    assert (result.status, result.succeeded, result.failed) == ("partially_completed", 2, 1)
    paid, _, refused = await run.items(batch)
    assert paid.status == "succeeded"
    assert (refused.status, refused.attempts) == ("failed", 1)  # not retried
    assert refused.last_error is not None and "insufficient funds" in refused.last_error
    # A retry will need a new key: Stripe may have stored the refusal under the old one.
    assert refused.idempotency_key == f"transfer-{refused.id}-retry-1"
    assert run.sandbox.movements(idempotency_key=f"transfer-{refused.id}") == []
    assert await run.events("transfer.failed", "transfer_batch.completed") == [
        "transfer.failed",
        "transfer_batch.completed",
    ]

    # Once the balance is there, retrying the failed items (as the API does: the rows, then
    # a signal that starts a new run of the finished workflow) completes the batch.
    run.sandbox.fund(10_000, currency="zar")
    async with run.db() as session, session.begin():
        retried = await transfers.retry_failed(session, batch.id, actor=ADMIN)
    assert retried.transfer_ids == [refused.id]
    handle = await run.env.client.start_workflow(
        TransferBatchWorkflow.run,
        run.workflow_input(batch),
        id=f"transfer-batch-{batch.id}",
        task_queue=run.queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal="retry_failed",
        start_signal_args=[RetryFailedTransfers(by="ops-1")],
    )
    again = await handle.result()

    assert (again.status, again.succeeded, again.failed) == ("completed", 3, 0)
    retried_item = (await run.items(batch))[2]
    assert retried_item.status == "succeeded"
    [moved] = run.sandbox.movements(idempotency_key=f"transfer-{refused.id}-retry-1")
    assert moved["object_id"] == retried_item.external_id
    stored = await run.stored(batch)
    assert (stored.status, stored.run_count) == ("completed", 2)


async def test_an_item_failing_on_every_attempt_fails_after_the_last_one(run: Run) -> None:
    run.sandbox.fund(10_000)
    batch = await run.batch(stripe_items(1))
    run.sandbox.set_faults(next=["500", "500", "500"])

    result = await (await run.start(batch, max_attempts=3)).result()

    assert (result.status, result.failed) == ("failed", 1)
    [item] = await run.items(batch)
    assert (item.status, item.attempts) == ("failed", 3)
    assert item.last_error is not None and item.last_error.startswith("ProviderError")
    # Outages, not a refusal: the key stays (one attempt may have paid).
    assert item.idempotency_key == f"transfer-{item.id}"


async def test_chain_items_are_sent_and_confirmed_or_fail_when_reverted(run: Run) -> None:
    confirmed, reverted = chain_items(2)
    usd = chain_items(1, currency="USD")[0] | {"amount": 1_234}
    run.chain.revert.add(reverted["destination"])
    batch = await run.batch([confirmed, reverted, usd])

    result = await (await run.start(batch)).result()

    assert (result.status, result.succeeded, result.failed) == ("partially_completed", 2, 1)
    first, second, third = await run.items(batch)
    assert (first.rail, first.status, first.external_id) == (
        "chain",
        "succeeded",
        tx_hash(first.id),
    )
    assert second.status == "failed"
    assert second.last_error is not None and "REVERTED" in second.last_error
    # Amounts go to the token in its base units (6 decimals): 12.34 USD is 12,340,000.
    sent = {request.transfer_id: request.amount for request in run.chain.sent}
    assert sent == {first.id: 2_000_000, second.id: 2_000_001, third.id: 12_340_000}
    assert await run.balance(
        transfers.external_account("chain", confirmed["destination"]), "USDC"
    ) == (2_000_000)


async def test_cancel_stops_the_items_not_started(run: Run) -> None:
    run.chain.hold = asyncio.Event()
    batch = await run.batch(chain_items(3))
    handle = await run.start(batch, concurrency=1)

    async def first_sent() -> bool:
        return len(run.chain.sent) == 1

    await until(first_sent, "sent the first item")
    await handle.signal(TransferBatchWorkflow.cancel, CancelTransferBatch(by="ops-1"))

    async def cancel_seen() -> bool:
        return (await handle.query(TransferBatchWorkflow.status)).cancel_requested

    await until(cancel_seen, "saw the cancel")
    run.chain.hold.set()
    result = await handle.result()

    assert (result.status, result.succeeded, result.cancelled) == ("partially_completed", 1, 2)
    assert [item.status for item in await run.items(batch)] == [
        "succeeded",
        "cancelled",
        "cancelled",
    ]
    assert len(run.chain.sent) == 1

"""Recorded histories of the transfer batch workflow, made with the real database and Stripe
activities against a throw-away database and Stripe sandbox; the chain rail's token
activities are name-matched stubs (the chain has its own recordings). Called by
``tests.replay.record``; ``python -m tests.replay.record_transfers`` records these alone."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.transfers import StripeTransferSendActivities, TransferActivities
from devstack import postgres
from devstack.binaries import find
from devstack.net import free_port
from domain.actors import Actor, Role
from domain.rails import RoutingRules
from domain.transfers import BatchSource
from integrations.temporal import add_search_attributes
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.transfers import TransferBatch
from services import transfers
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox
from worker import WORKFLOW_RUNNER
from workflows.search_attributes import ALL
from workflows.transfers import TransferBatchWorkflow
from workflows.types import (
    CancelTransferBatch,
    RetryFailedTransfers,
    TokenTransferInput,
    TokenTransferResult,
    TransferBatchInput,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]
ADMIN = Actor("recorded", Role.PLATFORM_ADMIN)


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


class ChainStubs:
    """Sent PENDING, mined on the first look, confirmed on the second; the first transfer
    waits until ``released``."""

    def __init__(self) -> None:
        self.looks: dict[uuid.UUID, int] = {}
        self.released = asyncio.Event()
        self.first_sent = asyncio.Event()
        self.sent: list[uuid.UUID] = []

    @activity.defn(name="send_token_transfer")
    async def send_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        self.sent.append(request.transfer_id)
        self.first_sent.set()
        return TokenTransferResult(status="PENDING", tx_hash=f"0x{request.transfer_id.hex:0>64}")

    @activity.defn(name="check_token_transfer")
    async def check_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        tx_hash = f"0x{request.transfer_id.hex:0>64}"
        if not self.released.is_set():
            return TokenTransferResult(status="PENDING", tx_hash=tx_hash)
        looks = self.looks[request.transfer_id] = self.looks.get(request.transfer_id, 0) + 1
        return TokenTransferResult(
            status="MINED" if looks == 1 else "CONFIRMED",
            tx_hash=tx_hash,
            confirmations=looks - 1,
            amount=request.amount,
            destination=request.destination,
        )


def _items(count: int, currency: str = "USD", chain: bool = False) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    return [
        {
            "reference": f"recorded-{tag}-{i}",
            "destination": ("0x" + f"{tag}{i:02d}".rjust(40, "b"))
            if chain
            else f"acct_recorded{tag}{i}",
            "amount": 1_000 + i,
            "currency": currency,
        }
        for i in range(count)
    ]


async def record_transfers(env: WorkflowEnvironment, save: Save) -> None:
    """A batch whose transfers meet a 500 and a 429 then all succeed; a batch with a refused
    item (partially completed), then its failed item retried in a new run (completed); a
    chain batch cancelled while its first item waits for its confirmation."""
    with tempfile.TemporaryDirectory() as logs, run_stripe_sandbox(Path(logs)) as sandbox:
        async with _database() as db:
            await _record(env, db, sandbox, save)


async def _record(
    env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    sandbox: StripeSandbox,
    save: Save,
) -> None:
    client = sandbox.client(timeout_seconds=2.0)
    queue = f"record-transfers-{uuid.uuid4()}"
    stripe_queue = f"record-transfers-stripe-{uuid.uuid4()}"
    chain_queue = f"record-transfers-chain-{uuid.uuid4()}"
    steps = TransferActivities(db)
    chain = ChainStubs()

    async def batch(items: list[dict[str, Any]]) -> TransferBatch:
        async with db() as session, session.begin():
            return await transfers.create_batch(
                session,
                partner_id=f"partner-{uuid.uuid4().hex[:8]}",
                items=items,
                source=BatchSource.JSON,
                rules=RoutingRules(),
                actor=ADMIN,
            )

    def request(made: TransferBatch, **options: Any) -> TransferBatchInput:
        return TransferBatchInput(
            batch_id=made.id,
            stripe_task_queue=stripe_queue,
            chain_task_queue=chain_queue,
            chain_poll_seconds=1,
            **options,
        )

    async with (
        Worker(
            env.client,
            task_queue=queue,
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
            env.client,
            task_queue=stripe_queue,
            activities=[StripeTransferSendActivities(db, client).send],
        ),
        Worker(
            env.client,
            task_queue=chain_queue,
            activities=[chain.send_token_transfer, chain.check_token_transfer],
            max_concurrent_activities=1,
        ),
    ):
        sandbox.fund(100_000)
        made = await batch(_items(3))
        sandbox.set_faults(next=["500", "429"])
        try:
            handle = await env.client.start_workflow(
                TransferBatchWorkflow.run,
                request(made),
                id="transfer-batch-recorded-transient",
                task_queue=queue,
            )
            await handle.result()
        finally:
            sandbox.clear_faults()
        await save(handle, "transfer_batch_transient_faults")

        # Never funded in ZAR: that item is refused; then funded and retried.
        made = await batch([*_items(2), *_items(1, currency="ZAR")])
        handle = await env.client.start_workflow(
            TransferBatchWorkflow.run,
            request(made),
            id="transfer-batch-recorded-retried",
            task_queue=queue,
        )
        await handle.result()
        await save(handle, "transfer_batch_partially_completed")
        sandbox.fund(10_000, currency="zar")
        async with db() as session, session.begin():
            await transfers.retry_failed(session, made.id, actor=ADMIN)
        retried = await env.client.start_workflow(
            TransferBatchWorkflow.run,
            request(made),
            id="transfer-batch-recorded-retried",
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal="retry_failed",
            start_signal_args=[RetryFailedTransfers(by="recorded")],
        )
        await retried.result()
        await save(
            env.client.get_workflow_handle(retried.id, run_id=retried.result_run_id),
            "transfer_batch_retried_run",
        )

        made = await batch(_items(3, currency="USDC", chain=True))
        handle = await env.client.start_workflow(
            TransferBatchWorkflow.run,
            request(made, concurrency=1),
            id="transfer-batch-recorded-cancelled",
            task_queue=queue,
        )
        await chain.first_sent.wait()
        await handle.signal(TransferBatchWorkflow.cancel, CancelTransferBatch(by="recorded"))
        for _ in range(400):
            if (await handle.query(TransferBatchWorkflow.status)).cancel_requested:
                break
            await asyncio.sleep(0.05)
        chain.released.set()
        await handle.result()
        await save(handle, "transfer_batch_chain_cancelled")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_transfers(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

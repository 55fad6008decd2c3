"""Each reconciliation source's step against the real provider and a real PostgreSQL: Stripe's
balance transactions read page by page from the sandbox through the production client
(a rate-limited page asked again), and the token's ``Transfer`` events from the sender read
from anvil by the blocks of the period; matched against ledger transfers, with each kind of
discrepancy found and stored on the run."""

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import (
    ChainReconciliationActivities,
    ReconciliationActivities,
    StripeReconciliationActivities,
)
from domain.actors import SYSTEM
from domain.reconciliation import RunTrigger, external_key
from domain.transfers import idempotency_key
from integrations.chain import contract, make_web3
from integrations.chain_blocks import BlockClock
from integrations.stripe_balance import transfer_transactions
from integrations.stripe_client import create_transfer
from models.transfers import Transfer
from services import reconciliation
from settings import ANVIL_DEV_PRIVATE_KEY
from tests.fixtures.chain import Deployment
from tests.fixtures.stripe_sandbox import StripeSandbox
from workflows.types import ReconcileSourceInput, ReconciliationFinishInput

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
SENDER = Account.from_key(ANVIL_DEV_PRIVATE_KEY).address


async def add_transfer(
    db: Sessions, external_id: str, amount: int, currency: str = "USD", rail: str = "stripe"
) -> uuid.UUID:
    transfer_id = uuid.uuid4()
    async with db() as session, session.begin():
        await session.execute(
            insert(Transfer).values(
                id=transfer_id,
                partner_id="partner-sources",
                reference=f"ref-{transfer_id.hex[:12]}",
                destination="acct_sources" if rail == "stripe" else "0x" + "cd" * 20,
                amount=amount,
                currency=currency,
                rail=rail,
                route_reason="test",
                status="succeeded",
                attempts=1,
                key_run=0,
                idempotency_key=idempotency_key(transfer_id),
                external_id=external_id,
                completed_at=datetime.now(UTC),
            )
        )
    return transfer_id


async def new_run(db: Sessions, start: datetime, end: datetime, source: str) -> uuid.UUID:
    async with db() as session, session.begin():
        run = await reconciliation.create_run(
            session,
            period_start=start,
            period_end=end,
            trigger=RunTrigger.MANUAL,
            sources=[source],
            actor=SYSTEM,
        )
        return run.id


async def found(db: Sessions, run_id: uuid.UUID) -> dict[str, tuple[str, Any, Any]]:
    async with db() as session:
        rows = await reconciliation.list_discrepancies(session, limit=100, run_id=run_id)
    return {
        external_key(row.external_id): (
            row.type,
            reconciliation.amount(row.expected_amount),
            reconciliation.amount(row.actual_amount),
        )
        for row in rows
    }


async def next_second() -> datetime:
    """Now, once the clock turned to a new second: Stripe's times are whole seconds."""
    now = datetime.now(UTC)
    await asyncio.sleep(math.ceil(now.timestamp()) - now.timestamp() + 0.05)
    return now


async def test_stripe_balance_transactions_are_read_page_by_page(
    stripe_sandbox: StripeSandbox,
) -> None:
    client = stripe_sandbox.client(timeout_seconds=5.0)
    stripe_sandbox.fund(10_000)
    start = await next_second()
    made = [
        await create_transfer(
            client,
            amount=100 + i,
            currency="usd",
            destination="acct_pages",
            idempotency_key=f"pages-{uuid.uuid4()}",
            metadata={},
        )
        for i in range(5)
    ]
    pages: list[int] = []
    stripe_sandbox.set_faults(next=["429"])  # the first page is rate limited once
    try:
        read = await transfer_transactions(
            client,
            created_gte=math.floor(start.timestamp()),
            created_lt=math.ceil(datetime.now(UTC).timestamp()) + 1,
            on_page=pages.append,
            page_size=2,
            first_pause=0.01,
        )
    finally:
        stripe_sandbox.clear_faults()

    ours = [txn for txn in read if txn.source in made]
    assert sorted((txn.source, txn.amount, txn.currency) for txn in ours) == sorted(
        (transfer_id, 100 + i, "USD") for i, transfer_id in enumerate(made)
    )
    assert all(txn.id.startswith("txn_") for txn in ours)
    assert pages[:3] == [2, 4, 5] and len(pages) >= 3


async def test_stripes_step_finds_each_kind_of_discrepancy(
    stripe_sandbox: StripeSandbox, db: Sessions
) -> None:
    client = stripe_sandbox.client(timeout_seconds=5.0)
    stripe_sandbox.fund(100_000)
    start = await next_second()

    async def pay(amount: int) -> str:
        return await create_transfer(
            client,
            amount=amount,
            currency="usd",
            destination="acct_recon",
            idempotency_key=f"recon-{uuid.uuid4()}",
            metadata={},
        )

    matched = [await pay(1_000 + i) for i in range(3)]
    deleted, off, stray = await pay(500), await pay(700), await pay(42)
    stripe_sandbox.delete_object(deleted)
    for i, transfer_id in enumerate(matched):
        await add_transfer(db, transfer_id, 1_000 + i)
    deleted_id = await add_transfer(db, deleted, 500)
    await add_transfer(db, off, 701)
    run_id = await new_run(db, start, datetime.now(UTC) + timedelta(minutes=1), "stripe")
    steps = StripeReconciliationActivities(db, client)

    result = await ActivityEnvironment().run(
        steps.reconcile_stripe,
        ReconcileSourceInput(run_id=run_id, source="stripe", margin_seconds=60),
    )
    finished = await ActivityEnvironment().run(
        ReconciliationActivities(db).finish, ReconciliationFinishInput(run_id=run_id)
    )

    assert (result.ledger_count, result.external_count) == (5, 5)
    assert (result.matched_count, result.discrepancy_count) == (3, 3)
    assert await found(db, run_id) == {
        deleted: ("missing_settlement", 500, None),
        off: ("amount_mismatch", 701, 700),
        stray: ("unexpected_external", None, 42),
    }
    async with db() as session:
        [missing] = await reconciliation.list_discrepancies(
            session, limit=10, run_id=run_id, type="missing_settlement"
        )
    assert (missing.ledger_kind, missing.ledger_id) == ("transfer", deleted_id)
    assert (finished.status, finished.matched_count, finished.match_rate) == (
        "completed",
        3,
        "50.0000",
    )


async def test_the_chains_step_reads_the_senders_transfers_by_block(
    deployment: Deployment, db: Sessions
) -> None:
    w3 = make_web3(deployment.node.rpc_url)
    token = contract(w3, "TestUSD", deployment.token_address)

    def send(to: str, amount: int) -> str:
        tx_hash = token.functions.transfer(to, amount).transact({"from": SENDER})
        w3.eth.wait_for_transaction_receipt(tx_hash)
        return str(w3.to_hex(tx_hash))

    start = datetime.now(UTC) - timedelta(minutes=5)
    payees = [Account.create().address for _ in range(4)]
    usd = await asyncio.to_thread(send, payees[0], 12_340_000)  # 12.34 USD
    usdc = await asyncio.to_thread(send, payees[1], 1_999_999)
    stray = await asyncio.to_thread(send, payees[2], 5)
    await add_transfer(db, usd.upper().replace("0X", "0x"), 1_234, "USD", rail="chain")
    await add_transfer(db, usdc, 2_000_000, "USDC", rail="chain")
    never = "0x" + "77" * 32
    await add_transfer(db, never, 3_000_000, "USDC", rail="chain")
    run_id = await new_run(db, start, datetime.now(UTC) + timedelta(minutes=1), "chain")
    steps = ChainReconciliationActivities(
        db,
        rpc_url=deployment.node.rpc_url,
        token_address=lambda: deployment.token_address,
        sender=SENDER,
        token_decimals=6,
    )

    result = await ActivityEnvironment().run(
        steps.reconcile_chain, ReconcileSourceInput(run_id=run_id, source="chain")
    )

    assert (result.ledger_count, result.external_count) == (3, 3)
    assert (result.matched_count, result.discrepancy_count) == (1, 3)
    assert await found(db, run_id) == {
        usdc: ("amount_mismatch", 2_000_000, 1_999_999),
        never: ("missing_settlement", 3_000_000, None),
        stray: ("unexpected_external", None, 5),
    }


async def test_blocks_are_found_by_time(deployment: Deployment) -> None:
    w3 = make_web3(deployment.node.rpc_url)
    clock = BlockClock(w3)
    latest = clock.latest()
    at = clock.timestamp(latest)

    first, last = clock.blocks_between(at, at + 1)

    assert first <= latest == last
    assert clock.timestamp(first) == at
    assert first == 0 or clock.timestamp(first - 1) < at
    assert clock.first_block_at(at + 3600) == latest + 1
    assert clock.blocks_between(at + 10, at + 20) == (latest + 1, latest)
    assert clock.first_block_at(0) == 0

"""The chain stops answering while a batch is being submitted; once it is back the same run
completes, with exactly one anchor of the batch's root on chain.

Real activities, database and anvil, behind a fault-injecting JSON-RPC proxy; the real
Temporal dev server, so the retries' backoff is real time (a few seconds).
"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hexbytes import HexBytes
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from web3 import Web3

from activities.anchoring import AnchorBatchActivities, AnchorChainActivities, purpose_of
from activities.chain_sender import ChainSender, SenderConfig
from devstack.chain import deploy_once
from integrations.anchor_contract import AnchorContract
from integrations.chain import make_web3
from services import anchoring, chain_transactions
from settings import ANVIL_DEV_PRIVATE_KEY, Settings
from tests.faults.audit import MovementAudit, report
from tests.fixtures.chain import AnvilNode
from tests.fixtures.rpc_proxy import RpcProxy
from tests.fixtures.tickets import issue_tickets
from workflows.anchoring import AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.types import AnchorRunInput

# Also one of the fault tests (`make chaos`, issue 11): the chain node stopped during
# anchoring, with its figures in the fault tests' summary.
pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def until(condition: Callable[[], bool], what: str, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("fault", ["answer_lost", "down_from_the_start"])
async def test_chain_outage_during_submission_ends_with_exactly_one_anchor(
    fault: str,
    local_temporal: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    anvil: AnvilNode,
    rpc_proxy: RpcProxy,
    tmp_path: Path,
) -> None:
    address = deploy_once(Settings(chain_rpc_url=anvil.rpc_url, data_dir=tmp_path))["Anchor"]
    sender = ChainSender(
        db,
        SenderConfig(
            rpc_url=rpc_proxy.url,
            chain_id=31337,
            private_key=SecretStr(ANVIL_DEV_PRIVATE_KEY),
            gas_cap=300_000,
            max_fee_per_gas=500 * 10**9,
            priority_fee=None,
            resend_after=timedelta(minutes=3),
            request_timeout=2,
        ),
    )
    contract = AnchorContract(sender.client.w3, rpc_proxy.url, address)
    direct = make_web3(anvil.rpc_url)
    me = Web3.to_checksum_address(sender.address)
    nonce_before = direct.eth.get_transaction_count(me)
    await issue_tickets(db, 5)

    main_queue, chain_queue = f"main-{uuid.uuid4()}", f"chain-{uuid.uuid4()}"
    client = local_temporal.client
    async with (
        Worker(
            client,
            task_queue=main_queue,
            workflows=[AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow],
            activities=[
                AnchorBatchActivities(db).create_anchor_batch,
                AnchorBatchActivities(db).fail_anchor_batch,
            ],
        ),
        Worker(
            client,
            task_queue=chain_queue,
            activities=[
                AnchorChainActivities(db, sender, contract).submit_anchor_batch,
                AnchorChainActivities(db, sender, contract).check_anchor_batch,
            ],
            max_concurrent_activities=1,
        ),
    ):
        if fault == "answer_lost":
            # The transaction reaches the node; its answer does not reach us.
            rpc_proxy.drop_answer_once("eth_sendRawTransaction")
        else:
            rpc_proxy.go_down()
        handle = await client.start_workflow(
            AnchorTicketsWorkflow.run,
            AnchorRunInput(max_leaves=100, poll_seconds=1, chain_task_queue=chain_queue),
            id=f"anchoring-fault-{uuid.uuid4()}",
            task_queue=main_queue,
        )
        if fault == "answer_lost":
            await until(lambda: rpc_proxy.count("eth_sendRawTransaction") == 1, "the send")
        calls = len(rpc_proxy.calls)
        # At least one retry runs into the outage before the chain comes back.
        await until(lambda: len(rpc_proxy.calls) > calls, "a retry during the outage")
        rpc_proxy.come_back()
        result = await asyncio.wait_for(handle.result(), timeout=120)

    [batch] = result.batches
    assert batch.status == "CONFIRMED", batch
    async with db() as session:
        stored = await anchoring.get_batch(session, batch.batch_id)
        sent = await chain_transactions.get(session, purpose_of(batch.batch_id))
    assert stored.status == "CONFIRMED" and stored.leaf_count == 5
    assert sent is not None and stored.tx_hash in sent.hashes

    anchor = AnchorContract(direct, anvil.rpc_url, address)
    assert anchor.batch_root(batch.batch_id) == stored.root
    root_events = anchor._contract.events.Anchored().get_logs(
        from_block=0, argument_filters={"root": stored.root}
    )
    audit = MovementAudit(f"chain node stopped during anchoring ({fault})")
    audit.expect(f"anchor:{batch.batch_id}", stored.leaf_count, ("chain",))
    for event in root_events:
        audit.record("chain", f"anchor:{event['args']['batchId']}", event["args"]["leafCount"])
    figures = audit.figures("one Anchored event per batch root")
    report(figures)
    figures.check()
    assert len(root_events) == 1, "the root was anchored more than once"
    assert direct.eth.get_transaction_count(me) == nonce_before + 1
    mined = [h for h in sent.hashes if direct.eth.get_transaction_receipt(HexBytes(h))]
    assert mined == [stored.tx_hash]

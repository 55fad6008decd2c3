"""The serialized chain sender against real anvil nodes and a real PostgreSQL: one transaction
per purpose, nonces under the advisory lock, lost answers, outages, drops, replacements,
taken nonces, and the refusals (caps, reverts, wrong chain) that store nothing."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_account import Account
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from web3 import Web3
from web3.contract import Contract

from activities.chain_sender import ChainSender, SenderConfig, TxStatus
from devstack.chain import ANVIL_CHAIN_ID, deploy_once
from domain.errors import ChainRefused, ProviderError
from integrations.anchor_contract import AnchorContract
from integrations.chain import contract, make_web3
from models.anchoring import ChainTransaction
from models.engine import make_engine, make_sessionmaker
from settings import ANVIL_DEV_PRIVATE_KEY, Settings
from tests.fixtures.chain import AnvilNode, run_anvil
from tests.fixtures.rpc_proxy import RpcProxy

pytestmark = pytest.mark.integration

SENDER = Account.from_key(ANVIL_DEV_PRIVATE_KEY).address
GWEI = 10**9
# Every sender call of these tests is bounded, so a lock never released fails fast.
STEP_TIMEOUT = 20.0

Sessionmaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")


def make_config(rpc_url: str, **overrides: Any) -> SenderConfig:
    config = SenderConfig(
        rpc_url=rpc_url,
        chain_id=ANVIL_CHAIN_ID,
        private_key=SecretStr(ANVIL_DEV_PRIVATE_KEY),
        gas_cap=1_000_000,
        max_fee_per_gas=1_000 * GWEI,
        priority_fee=GWEI,
        resend_after=timedelta(hours=1),
        request_timeout=5.0,
    )
    return replace(config, **overrides)


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, STEP_TIMEOUT)


@dataclass
class Anchoring:
    """The Anchor contract on one node, and fresh anchor calls of it."""

    node_url: str
    address: str
    reader: AnchorContract
    raw: Contract

    def call(self, batch_id: int, root: bytes | None = None) -> bytes:
        return self.reader.calldata(batch_id, root or os.urandom(32), 3)

    def anchorings(self, batch_id: int) -> list[Any]:
        return list(
            self.raw.events.Anchored().get_logs(
                from_block=0, argument_filters={"batchId": batch_id}
            )
        )


def deploy_anchor(node_url: str, data_dir: Path) -> Anchoring:
    settings = Settings(chain_rpc_url=node_url, data_dir=data_dir, _env_file=None)
    address = deploy_once(settings)["Anchor"]
    w3 = make_web3(node_url)
    return Anchoring(
        node_url=node_url,
        address=address,
        reader=AnchorContract(w3, node_url, address),
        raw=contract(w3, "Anchor", address),
    )


def chain_nonce(node_url: str) -> int:
    """The sender's mined nonce, read fresh (the session's anvil is shared)."""
    return int(make_web3(node_url).eth.get_transaction_count(SENDER))


async def rows(sessionmaker: Sessionmaker, purpose: str | None = None) -> list[ChainTransaction]:
    query = select(ChainTransaction).order_by(ChainTransaction.nonce)
    if purpose is not None:
        query = query.where(ChainTransaction.purpose == purpose)
    async with sessionmaker() as session:
        return list(await session.scalars(query))


async def row_count(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ChainTransaction)) or 0)


async def wait_mined(sender: ChainSender, purpose: str) -> TxStatus:
    """The purpose's status once it is no longer pending (automine may lag a little)."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            status = await sender.status(purpose)
            if status.state != "PENDING":
                return status
            await asyncio.sleep(0.1)


async def send_anchor(
    sender: ChainSender,
    anchoring: Anchoring,
    purpose: str,
    batch_id: int,
    root: bytes | None = None,
) -> TxStatus:
    return await bounded(
        sender.send(
            purpose,
            to=anchoring.address,
            data=anchoring.call(batch_id, root),
            contract_name="Anchor",
        )
    )


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[Sessionmaker]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def anchoring(anvil: AnvilNode, tmp_path: Path) -> Anchoring:
    """A fresh Anchor contract on the session's anvil: batch ids never clash across tests."""
    return deploy_anchor(anvil.rpc_url, tmp_path / "deployments")


@dataclass
class ManualNode:
    """A private anvil that mines only when told to, with its own Anchor contract."""

    node: AnvilNode
    w3: Web3
    anchoring: Anchoring

    def mine(self) -> None:
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def drop(self, tx_hash: str) -> None:
        self.w3.provider.make_request("anvil_dropTransaction", [tx_hash])  # type: ignore[arg-type]

    def pending_hashes(self) -> list[str]:
        block = self.w3.eth.get_block("pending")
        return ["0x" + bytes(h).hex() for h in block["transactions"]]  # type: ignore[arg-type]


@pytest.fixture
def manual_node(tmp_path: Path) -> Iterator[ManualNode]:
    data_dir = tmp_path / "private-anvil"
    with run_anvil(data_dir) as node:
        anchoring = deploy_anchor(node.rpc_url, data_dir)
        w3 = make_web3(node.rpc_url)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        yield ManualNode(node=node, w3=w3, anchoring=anchoring)


# 1.
async def test_send_is_idempotent_per_purpose(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(sessionmaker, make_config(anvil.rpc_url))
    before = chain_nonce(anvil.rpc_url)

    first = await send_anchor(sender, anchoring, "anchor-batch-1", 1)
    second = await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    assert second.tx_hash == first.tx_hash
    assert await row_count(sessionmaker) == 1
    (row,) = await rows(sessionmaker)
    assert row.purpose == "anchor-batch-1" and row.hashes == [first.tx_hash]
    assert row.nonce == before
    assert chain_nonce(anvil.rpc_url) == before + 1
    assert len(anchoring.anchorings(1)) == 1

    status = await wait_mined(sender, "anchor-batch-1")
    assert status.state == "MINED"
    assert status.tx_hash == first.tx_hash
    assert status.confirmations >= 1
    assert status.block_number is not None and status.block_number >= 1
    assert status.block_hash is not None and status.block_hash.startswith("0x")
    assert status.gas_used is not None and status.gas_used > 21_000
    block = make_web3(anvil.rpc_url).eth.get_block(status.block_number)
    assert status.block_timestamp == block["timestamp"]
    (row,) = await rows(sessionmaker)
    assert row.status == "MINED" and row.block_number == status.block_number
    assert row.gas_used == status.gas_used and row.mined_at is not None

    # Following up a mined transaction signs nothing more.
    again = await send_anchor(sender, anchoring, "anchor-batch-1", 1)
    assert again.state == "MINED" and again.tx_hash == first.tx_hash
    assert chain_nonce(anvil.rpc_url) == before + 1
    assert await sender.has_record("anchor-batch-1")
    assert not await sender.has_record("anchor-batch-2")
    observed = await bounded(sender.observe("someone-else", first.tx_hash))
    assert observed.state == "MINED" and observed.block_number == status.block_number


# 2.
async def test_purposes_get_consecutive_nonces(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(sessionmaker, make_config(anvil.rpc_url))
    before = chain_nonce(anvil.rpc_url)

    await send_anchor(sender, anchoring, "anchor-batch-1", 1)
    await send_anchor(sender, anchoring, "anchor-batch-2", 2)

    assert [row.nonce for row in await rows(sessionmaker)] == [before, before + 1]
    assert chain_nonce(anvil.rpc_url) == before + 2


async def test_concurrent_sends_of_two_replicas_never_share_a_nonce(
    database_url: str, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        replicas = [
            ChainSender(make_sessionmaker(engine), make_config(anvil.rpc_url)) for engine in engines
        ]
        before = chain_nonce(anvil.rpc_url)
        purposes = [f"anchor-batch-{i}" for i in range(1, 6)]

        await asyncio.gather(
            *(
                send_anchor(replicas[i % 2], anchoring, purpose, i + 1)
                for i, purpose in enumerate(purposes)
            ),
            # The same purpose asked of both replicas at once: still one transaction.
            send_anchor(replicas[1], anchoring, purposes[0], 1),
        )

        stored = await rows(make_sessionmaker(engines[0]))
        assert sorted(row.purpose for row in stored) == purposes
        assert sorted(row.nonce for row in stored) == list(range(before, before + 5))
        assert all(len(row.hashes) == 1 for row in stored)
        for i, purpose in enumerate(purposes):
            status = await wait_mined(replicas[i % 2], purpose)
            assert status.state == "MINED"
            assert len(anchoring.anchorings(i + 1)) == 1
        assert chain_nonce(anvil.rpc_url) == before + 5
    finally:
        for engine in engines:
            await engine.dispose()


# 3.
async def test_lost_answer_to_the_broadcast_still_mines_once(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring, rpc_proxy: RpcProxy
) -> None:
    sender = ChainSender(sessionmaker, make_config(rpc_proxy.url))
    before = chain_nonce(anvil.rpc_url)
    rpc_proxy.drop_answer_once("eth_sendRawTransaction")

    with pytest.raises(ProviderError):
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    # Stored before the broadcast, so its hash is known although the answer was lost.
    (row,) = await rows(sessionmaker)
    assert row.status == "SIGNED" and row.sent_at is None
    assert rpc_proxy.count("eth_sendRawTransaction") == 1

    rpc_proxy.come_back()
    status = await send_anchor(sender, anchoring, "anchor-batch-1", 1)
    if status.state == "PENDING":
        status = await wait_mined(sender, "anchor-batch-1")

    assert status.state == "MINED" and status.tx_hash == row.tx_hash
    (row,) = await rows(sessionmaker)
    assert row.status == "MINED" and row.hashes == [status.tx_hash]
    assert chain_nonce(anvil.rpc_url) == before + 1
    (event,) = anchoring.anchorings(1)
    assert "0x" + bytes(event["transactionHash"]).hex() == status.tx_hash


# 4.
async def test_chain_down_before_sending_stores_nothing(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring, rpc_proxy: RpcProxy
) -> None:
    sender = ChainSender(sessionmaker, make_config(rpc_proxy.url))
    before = chain_nonce(anvil.rpc_url)
    rpc_proxy.go_down()

    with pytest.raises(ProviderError):
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    # The node is asked (chain id, gas, fees, nonce) before anything is signed: an outage
    # then leaves no row at all, so no SIGNED or SENT transaction that was never broadcast.
    assert await row_count(sessionmaker) == 0
    assert not await sender.has_record("anchor-batch-1")
    assert rpc_proxy.count("eth_sendRawTransaction") == 0

    rpc_proxy.come_back()
    await send_anchor(sender, anchoring, "anchor-batch-1", 1)
    status = await wait_mined(sender, "anchor-batch-1")
    assert status.state == "MINED"
    assert chain_nonce(anvil.rpc_url) == before + 1
    assert rpc_proxy.count("eth_sendRawTransaction") == 1


# 5.
async def test_dropped_transaction_is_broadcast_again(
    sessionmaker: Sessionmaker, manual_node: ManualNode
) -> None:
    url = manual_node.node.rpc_url
    sender = ChainSender(sessionmaker, make_config(url))
    before = chain_nonce(url)

    sent = await send_anchor(sender, manual_node.anchoring, "anchor-batch-1", 1)
    assert sent.state == "PENDING"
    assert (await bounded(sender.status("anchor-batch-1"))).state == "PENDING"
    assert manual_node.pending_hashes() == [sent.tx_hash]

    manual_node.drop(sent.tx_hash)
    assert manual_node.pending_hashes() == []

    again = await bounded(sender.status("anchor-batch-1"))
    assert again.state == "PENDING" and again.tx_hash == sent.tx_hash
    assert manual_node.pending_hashes() == [sent.tx_hash]
    (row,) = await rows(sessionmaker)
    assert row.hashes == [sent.tx_hash] and row.status == "SENT"

    manual_node.mine()
    status = await bounded(sender.status("anchor-batch-1"))
    assert status.state == "MINED" and status.tx_hash == sent.tx_hash
    assert chain_nonce(url) == before + 1


# 6.
async def test_stuck_transaction_is_replaced_with_higher_fees(
    sessionmaker: Sessionmaker, manual_node: ManualNode
) -> None:
    url = manual_node.node.rpc_url
    sender = ChainSender(sessionmaker, make_config(url, resend_after=timedelta(0)))
    before = chain_nonce(url)

    sent = await send_anchor(sender, manual_node.anchoring, "anchor-batch-1", 1)
    (original,) = await rows(sessionmaker)
    await asyncio.sleep(0.01)

    replaced = await bounded(sender.status("anchor-batch-1"))

    assert replaced.state == "PENDING" and replaced.tx_hash != sent.tx_hash
    (row,) = await rows(sessionmaker)
    assert row.hashes == [sent.tx_hash, replaced.tx_hash]
    assert row.nonce == original.nonce
    assert row.max_fee_per_gas * 8 >= original.max_fee_per_gas * 9
    assert row.max_priority_fee_per_gas * 8 >= original.max_priority_fee_per_gas * 9
    assert manual_node.pending_hashes() == [replaced.tx_hash]

    manual_node.mine()
    status = await bounded(sender.status("anchor-batch-1"))
    assert status.state == "MINED" and status.tx_hash in row.hashes
    assert status.tx_hash == replaced.tx_hash
    assert chain_nonce(url) == before + 1
    assert len(manual_node.anchoring.anchorings(1)) == 1


# 7.
async def test_nonce_taken_by_another_transaction_is_signed_afresh(
    sessionmaker: Sessionmaker, manual_node: ManualNode
) -> None:
    url = manual_node.node.rpc_url
    w3 = manual_node.w3
    sender = ChainSender(sessionmaker, make_config(url))
    before = chain_nonce(url)

    sent = await send_anchor(sender, manual_node.anchoring, "anchor-batch-1", 1)
    (row,) = await rows(sessionmaker)
    assert row.nonce == before
    manual_node.drop(sent.tx_hash)

    # Another transaction of the same key takes the nonce and is mined.
    base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])
    other = Account.from_key(ANVIL_DEV_PRIVATE_KEY).sign_transaction(
        {
            "type": 2,
            "chainId": ANVIL_CHAIN_ID,
            "to": Account.create().address,
            "value": 1,
            "gas": 21_000,
            "nonce": before,
            "maxFeePerGas": 2 * base_fee + GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
    )
    w3.eth.send_raw_transaction(other.raw_transaction)
    manual_node.mine()
    assert chain_nonce(url) == before + 1

    resigned = await bounded(sender.status("anchor-batch-1"))

    assert resigned.state == "PENDING" and resigned.tx_hash != sent.tx_hash
    (row,) = await rows(sessionmaker)
    assert row.hashes == [sent.tx_hash, resigned.tx_hash]
    assert row.nonce == before + 1

    manual_node.mine()
    status = await bounded(sender.status("anchor-batch-1"))
    assert status.state == "MINED" and status.tx_hash == resigned.tx_hash
    assert chain_nonce(url) == before + 2
    assert len(manual_node.anchoring.anchorings(1)) == 1


# 8.
async def test_gas_above_the_cap_is_refused_and_nothing_stored(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(sessionmaker, make_config(anvil.rpc_url, gas_cap=25_000))
    before = chain_nonce(anvil.rpc_url)

    with pytest.raises(ChainRefused) as refused:
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    assert refused.value.code == "gas_cap_exceeded"
    assert await row_count(sessionmaker) == 0
    assert chain_nonce(anvil.rpc_url) == before


# 9.
async def test_predicted_revert_is_refused_with_the_contract_error(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(sessionmaker, make_config(anvil.rpc_url))
    root = os.urandom(32)
    await send_anchor(sender, anchoring, "anchor-batch-1", 1, root)
    assert (await wait_mined(sender, "anchor-batch-1")).state == "MINED"
    before = chain_nonce(anvil.rpc_url)

    with pytest.raises(ChainRefused) as same_root:
        await send_anchor(sender, anchoring, "anchor-batch-2", 2, root)
    assert same_root.value.code == "contract_revert"
    assert same_root.value.details["error"] == "RootAlreadyAnchored"

    with pytest.raises(ChainRefused) as same_batch:
        await send_anchor(sender, anchoring, "anchor-batch-1-again", 1, os.urandom(32))
    assert same_batch.value.code == "contract_revert"
    assert same_batch.value.details["error"] == "BatchAlreadyAnchored"

    assert not await sender.has_record("anchor-batch-2")
    assert not await sender.has_record("anchor-batch-1-again")
    assert await row_count(sessionmaker) == 1
    assert chain_nonce(anvil.rpc_url) == before


# 10.
async def test_wrong_chain_is_refused(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(sessionmaker, make_config(anvil.rpc_url, chain_id=137))

    with pytest.raises(ChainRefused) as refused:
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    assert refused.value.code == "wrong_chain"
    assert await row_count(sessionmaker) == 0


# 11.
async def test_fee_above_the_cap_is_refused(
    sessionmaker: Sessionmaker, anvil: AnvilNode, anchoring: Anchoring
) -> None:
    sender = ChainSender(
        sessionmaker, make_config(anvil.rpc_url, max_fee_per_gas=GWEI - 1, priority_fee=GWEI)
    )

    with pytest.raises(ChainRefused) as refused:
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)

    assert refused.value.code == "fee_cap_reached"
    assert await row_count(sessionmaker) == 0


# 12.
async def test_private_key_never_shows(
    sessionmaker: Sessionmaker,
    anvil: AnvilNode,
    anchoring: Anchoring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(anvil.rpc_url)
    sender = ChainSender(sessionmaker, config)

    with caplog.at_level(logging.DEBUG):
        logging.getLogger(__name__).debug("sending with %r via %r", config, sender)
        await send_anchor(sender, anchoring, "anchor-batch-1", 1)
        await wait_mined(sender, "anchor-batch-1")

    key = ANVIL_DEV_PRIVATE_KEY.lower().removeprefix("0x")
    shown = [repr(config), str(config), repr(sender), str(sender), repr(sender.client)]
    shown.append(caplog.text)
    # web3 logs every request (the signed transaction included) at DEBUG: all captured here.
    assert any(record.name.startswith("web3") for record in caplog.records)
    for text in shown:
        assert key not in text.lower()
        assert "0x" + key not in text.lower()

"""The chain client, contract deployment and the Anchor contract, against a real anvil."""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from devstack.chain import ANVIL_CHAIN_ID, deploy_once
from devstack.net import free_port
from domain.errors import ProviderError
from integrations.chain import contract, custom_error_name, make_web3, ping
from settings import Settings
from tests.fixtures.chain import AnvilNode, run_anvil

pytestmark = pytest.mark.integration

# A deployment on anvil: the Anchor, the TestUSD token, and the mint of its float.
DEPLOY_TRANSACTIONS = 3


def settings_for(node: AnvilNode, data_dir: Path) -> Settings:
    return Settings(chain_rpc_url=node.rpc_url, data_dir=data_dir)


def sender_nonce(w3: Web3, settings: Settings) -> int:
    return w3.eth.get_transaction_count(
        w3.eth.account.from_key(settings.chain_sender_key()).address
    )


@pytest.fixture
def anchor(anvil: AnvilNode, tmp_path: Path) -> Contract:
    w3 = make_web3(anvil.rpc_url)
    return contract(w3, "Anchor", deploy_once(settings_for(anvil, tmp_path))["Anchor"])


def revert_name(exc: pytest.ExceptionInfo[ContractCustomError]) -> str | None:
    return custom_error_name("Anchor", exc.value.data)


def test_ping_reports_chain_id_and_block(anvil: AnvilNode) -> None:
    info = ping(anvil.rpc_url)
    assert info["chain_id"] == ANVIL_CHAIN_ID
    assert info["latest_block"] >= 0


def test_ping_of_closed_port_raises_provider_error() -> None:
    with pytest.raises(ProviderError):
        ping(f"http://127.0.0.1:{free_port()}")


def test_deploy_once_deploys_saves_and_then_reuses(anvil: AnvilNode, tmp_path: Path) -> None:
    settings = settings_for(anvil, tmp_path / "data")
    w3 = make_web3(anvil.rpc_url)

    first = deploy_once(settings)
    saved = json.loads(settings.deployments_file.read_text())
    assert saved["chain_id"] == ANVIL_CHAIN_ID
    assert saved["contracts"] == first
    assert saved["deployed_at_block"] <= w3.eth.block_number
    assert w3.eth.get_code(Web3.to_checksum_address(first["Anchor"]))

    nonce = sender_nonce(w3, settings)
    assert deploy_once(settings) == first
    assert sender_nonce(w3, settings) == nonce, "a second deploy_once sent a transaction"


def test_deploy_once_redeploys_on_a_fresh_chain(anvil: AnvilNode, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    deploy_once(settings_for(anvil, data_dir))

    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    with run_anvil(fresh_dir) as fresh:
        settings = settings_for(fresh, data_dir)
        w3 = make_web3(fresh.rpc_url)
        assert sender_nonce(w3, settings) == 0

        redeployed = deploy_once(settings)
        assert sender_nonce(w3, settings) == DEPLOY_TRANSACTIONS
        assert w3.eth.get_code(Web3.to_checksum_address(redeployed["Anchor"]))
        saved = json.loads(settings.deployments_file.read_text())
        assert saved["contracts"] == redeployed
        assert saved["deployed_at_block"] == w3.eth.block_number


def test_restarted_anvil_keeps_its_state_and_deployment(tmp_path: Path) -> None:
    # make run twice: anvil dumps its state on SIGTERM and loads it at the next start.
    with run_anvil(tmp_path) as node:
        first = deploy_once(settings_for(node, tmp_path))
    with run_anvil(tmp_path) as node:
        settings = settings_for(node, tmp_path)
        nonce = sender_nonce(make_web3(node.rpc_url), settings)
        assert nonce > 0
        assert deploy_once(settings) == first
        assert sender_nonce(make_web3(node.rpc_url), settings) == nonce


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda saved: {**saved, "chain_id": 1},
        lambda saved: {**saved, "contracts": {"Anchor": "0x" + "11" * 20}},
        lambda saved: "not a deployment",
    ],
    ids=["other-chain", "no-code", "malformed"],
)
def test_deploy_once_redeploys_over_a_stale_file(
    anvil: AnvilNode, tmp_path: Path, corrupt: Callable[[dict[str, Any]], Any]
) -> None:
    settings = settings_for(anvil, tmp_path)
    deploy_once(settings)
    saved = json.loads(settings.deployments_file.read_text())
    settings.deployments_file.write_text(json.dumps(corrupt(saved)))
    w3 = make_web3(anvil.rpc_url)
    nonce = sender_nonce(w3, settings)

    redeployed = deploy_once(settings)
    assert sender_nonce(w3, settings) == nonce + DEPLOY_TRANSACTIONS
    assert json.loads(settings.deployments_file.read_text())["contracts"] == redeployed


def test_owner_anchors_a_root(anchor: Contract) -> None:
    w3 = anchor.w3
    owner = anchor.functions.owner().call()
    root, batch_id = os.urandom(32), 7

    tx_hash = anchor.functions.anchor(batch_id, root, 3).transact({"from": owner})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)

    assert receipt["status"] == 1
    (event,) = anchor.events.Anchored().process_receipt(receipt)
    block = w3.eth.get_block(receipt["blockNumber"])
    assert event["args"]["batchId"] == batch_id
    assert event["args"]["root"] == root
    assert event["args"]["leafCount"] == 3
    assert event["args"]["anchoredAt"] == block["timestamp"]
    assert anchor.functions.anchoredAt(root).call() == block["timestamp"]
    assert anchor.functions.batchRoot(batch_id).call() == root


def test_anchoring_is_write_once(anchor: Contract) -> None:
    owner = anchor.functions.owner().call()
    root = os.urandom(32)
    # Waited for: anvil mines after answering, and a busy machine reads the block before.
    anchor.w3.eth.wait_for_transaction_receipt(
        anchor.functions.anchor(1, root, 1).transact({"from": owner})
    )

    with pytest.raises(ContractCustomError) as same_root:
        anchor.functions.anchor(2, root, 1).transact({"from": owner})
    assert revert_name(same_root) == "RootAlreadyAnchored"

    with pytest.raises(ContractCustomError) as same_batch:
        anchor.functions.anchor(1, os.urandom(32), 1).transact({"from": owner})
    assert revert_name(same_batch) == "BatchAlreadyAnchored"


def test_anchor_refuses_empty_input(anchor: Contract) -> None:
    owner = anchor.functions.owner().call()
    with pytest.raises(ContractCustomError) as zero_root:
        anchor.functions.anchor(1, b"\0" * 32, 1).transact({"from": owner})
    assert revert_name(zero_root) == "ZeroRoot"
    with pytest.raises(ContractCustomError) as zero_leaves:
        anchor.functions.anchor(1, os.urandom(32), 0).transact({"from": owner})
    assert revert_name(zero_leaves) == "ZeroLeafCount"


def test_only_the_owner_anchors(anchor: Contract) -> None:
    owner = anchor.functions.owner().call()
    stranger = next(a for a in anchor.w3.eth.accounts if a != owner)

    with pytest.raises(ContractCustomError) as refused:
        anchor.functions.anchor(1, os.urandom(32), 1).transact({"from": stranger})
    assert revert_name(refused) == "NotOwner"

    anchor.w3.eth.wait_for_transaction_receipt(
        anchor.functions.transferOwnership(stranger).transact({"from": owner})
    )
    assert anchor.functions.owner().call() == stranger
    with pytest.raises(ContractCustomError) as former:
        anchor.functions.anchor(1, os.urandom(32), 1).transact({"from": owner})
    assert revert_name(former) == "NotOwner"

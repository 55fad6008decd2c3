"""The fault-injecting RPC proxy in front of the session's anvil, driven through web3."""

import time
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3

from devstack.chain import ANVIL_CHAIN_ID
from domain.errors import ProviderError
from integrations.chain import make_web3, provider_errors
from settings import ANVIL_DEV_PRIVATE_KEY
from tests.fixtures.chain import AnvilNode
from tests.fixtures.rpc_proxy import RpcProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def w3(rpc_proxy: RpcProxy) -> Web3:
    return make_web3(rpc_proxy.url, retry=False)


def block_number(w3: Web3, url: str) -> int:
    with provider_errors(url):
        return w3.eth.block_number


def test_forwards_calls_and_records_them(rpc_proxy: RpcProxy, w3: Web3, anvil: AnvilNode) -> None:
    assert w3.eth.chain_id == ANVIL_CHAIN_ID
    assert block_number(w3, rpc_proxy.url) == make_web3(anvil.rpc_url).eth.block_number
    assert rpc_proxy.calls == ["eth_chainId", "eth_blockNumber"]
    assert rpc_proxy.count("eth_chainId") == rpc_proxy.count("eth_blockNumber") == 1


def test_forwards_batches_call_by_call(rpc_proxy: RpcProxy) -> None:
    batch: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
    ]
    answers = requests.post(rpc_proxy.url, json=batch, timeout=10).json()

    results = {answer["id"]: int(answer["result"], 16) for answer in answers}
    assert results[1] == ANVIL_CHAIN_ID
    assert results[2] >= 0
    assert rpc_proxy.calls == ["eth_chainId", "eth_blockNumber"]
    assert rpc_proxy.count("eth_blockNumber") == 1


def test_down_fails_fast_as_provider_error_until_it_comes_back(
    rpc_proxy: RpcProxy, w3: Web3
) -> None:
    block_number(w3, rpc_proxy.url)  # a pooled keep-alive connection must fail too
    rpc_proxy.go_down()

    started = time.monotonic()
    with pytest.raises(ProviderError):
        block_number(w3, rpc_proxy.url)
    assert time.monotonic() - started < 5
    assert rpc_proxy.count("eth_blockNumber") == 1

    rpc_proxy.come_back()
    assert block_number(w3, rpc_proxy.url) >= 0
    assert rpc_proxy.count("eth_blockNumber") == 2


def test_dropped_send_still_reaches_the_node(rpc_proxy: RpcProxy, w3: Web3) -> None:
    sender = Account.from_key(ANVIL_DEV_PRIVATE_KEY)
    recipient = Account.create().address
    signed = sender.sign_transaction(
        {
            "to": recipient,
            "value": 1,
            "gas": 21_000,
            "gasPrice": 2 * w3.eth.gas_price,
            "nonce": w3.eth.get_transaction_count(sender.address),
            "chainId": ANVIL_CHAIN_ID,
        }
    )
    tx_hash = HexBytes(keccak(signed.raw_transaction))  # known without the node's answer
    rpc_proxy.drop_answer_once("eth_sendRawTransaction")

    with pytest.raises(ProviderError), provider_errors(rpc_proxy.url):
        w3.eth.send_raw_transaction(signed.raw_transaction)
    with pytest.raises(ProviderError):
        block_number(w3, rpc_proxy.url)  # down after the drop, until it comes back

    rpc_proxy.come_back()
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    assert w3.eth.get_balance(recipient) == 1
    assert rpc_proxy.count("eth_sendRawTransaction") == 1

"""Reads and call data of the Anchor contract (``contracts/Anchor.sol``).

Synchronous like web3; outages surface as ``ProviderError``.
"""

from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from integrations.chain import contract, provider_errors


@dataclass(frozen=True)
class AnchoredEvent:
    batch_id: int
    root: bytes
    leaf_count: int
    anchored_at: int
    tx_hash: str
    block_number: int


class AnchorContract:
    def __init__(self, w3: Web3, rpc_url: str, address: str) -> None:
        self.rpc_url = rpc_url
        self.address = Web3.to_checksum_address(address)
        self._contract = contract(w3, "Anchor", self.address)

    def calldata(self, batch_id: int, root: bytes, leaf_count: int) -> bytes:
        encoded = self._contract.encode_abi("anchor", args=[batch_id, root, leaf_count])
        return bytes(HexBytes(encoded))

    def batch_root(self, batch_id: int) -> bytes:
        """The root anchored for ``batch_id``; 32 zero bytes if none."""
        with provider_errors(self.rpc_url):
            return bytes(self._contract.functions.batchRoot(batch_id).call())

    def anchored_at(self, root: bytes) -> int:
        """Timestamp of the block that anchored ``root``; 0 if it never was."""
        with provider_errors(self.rpc_url):
            return int(self._contract.functions.anchoredAt(root).call())

    def events_in(self, tx_hash: str) -> list[AnchoredEvent]:
        """The ``Anchored`` events a mined transaction emitted from this contract."""
        with provider_errors(self.rpc_url):
            receipt = self._contract.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            events = self._contract.events.Anchored().process_receipt(receipt)
        return [
            _anchored(event)
            for event in events
            if Web3.to_checksum_address(event["address"]) == self.address
        ]

    def find_anchoring(self, batch_id: int, *, from_block: int = 0) -> AnchoredEvent | None:
        """The ``Anchored`` event of ``batch_id``, searched in the logs."""
        with provider_errors(self.rpc_url):
            events = self._contract.events.Anchored().get_logs(
                from_block=from_block, argument_filters={"batchId": batch_id}
            )
        return _anchored(events[0]) if events else None


def _anchored(event: Any) -> AnchoredEvent:
    return AnchoredEvent(
        batch_id=int(event["args"]["batchId"]),
        root=bytes(event["args"]["root"]),
        leaf_count=int(event["args"]["leafCount"]),
        anchored_at=int(event["args"]["anchoredAt"]),
        tx_hash=Web3.to_hex(event["transactionHash"]),
        block_number=int(event["blockNumber"]),
    )

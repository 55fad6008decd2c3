"""Reads, call data and ``Transfer`` events of the chain rail's ERC-20 token.

On anvil the token is ``contracts/TestUSD.sol``; in production it is whatever
``TOLLGATE_CHAIN_TOKEN_ADDRESS`` names (USDC on Polygon). Only the standard ERC-20 interface
is used, through TestUSD's ABI. Amounts are integers in the token's base units (6 decimals
for USDC and tUSD, the exponent ``domain.money`` gives ``USDC``), never floats.

Synchronous like web3; outages surface as ``ProviderError``.
"""

from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from integrations.chain import contract, provider_errors

# The artifact whose ABI (the ERC-20 interface and ERC-6093 errors) reads any token: also
# the ``contract_name`` the chain sender names revert reasons with.
TOKEN_ARTIFACT = "TestUSD"
# Blocks per ``eth_getLogs`` request: hosted Polygon RPCs refuse wider ranges.
DEFAULT_BLOCK_RANGE = 2_000


@dataclass(frozen=True)
class TokenTransfer:
    """One ``Transfer(from, to, value)`` log of the token."""

    tx_hash: str
    log_index: int
    block: int
    from_: str
    to: str
    amount: int


class TokenContract:
    def __init__(self, w3: Web3, address: str, *, block_range: int = DEFAULT_BLOCK_RANGE) -> None:
        if block_range < 1:
            raise ValueError("block_range must be positive")
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.block_range = block_range
        self.rpc_url = str(getattr(w3.provider, "endpoint_uri", None) or "the chain node")
        self._contract = contract(w3, TOKEN_ARTIFACT, self.address)

    def transfer_calldata(self, to: str, amount: int) -> bytes:
        """Call data of ``transfer(to, amount)``, for the chain sender to sign."""
        encoded = self._contract.encode_abi("transfer", args=[Web3.to_checksum_address(to), amount])
        return bytes(HexBytes(encoded))

    def balance_of(self, address: str) -> int:
        with provider_errors(self.rpc_url):
            return int(self._contract.functions.balanceOf(Web3.to_checksum_address(address)).call())

    def decimals(self) -> int:
        with provider_errors(self.rpc_url):
            return int(self._contract.functions.decimals().call())

    def latest_block(self) -> int:
        with provider_errors(self.rpc_url):
            return int(self.w3.eth.block_number)

    def transfers(
        self,
        from_block: int,
        to_block: int | None = None,
        *,
        sender: str | None = None,
        recipient: str | None = None,
    ) -> list[TokenTransfer]:
        """The token's ``Transfer`` logs in blocks ``from_block``..``to_block`` (inclusive;
        ``None``: the latest block when called), optionally only from ``sender`` and/or to
        ``recipient``; in chain order (block, then log index).

        The range is asked in windows of ``block_range`` blocks, as hosted nodes cap it, and
        ends at the latest block: blocks not mined yet hold no transfers (and nodes refuse
        ranges past their head).
        """
        if from_block < 0:
            raise ValueError("from_block must not be negative")
        latest = self.latest_block()
        last = latest if to_block is None else min(to_block, latest)
        filters: dict[str, Any] = {}
        if sender is not None:
            filters["from"] = Web3.to_checksum_address(sender)
        if recipient is not None:
            filters["to"] = Web3.to_checksum_address(recipient)
        found: list[TokenTransfer] = []
        start = from_block
        while start <= last:
            end = min(start + self.block_range - 1, last)
            with provider_errors(self.rpc_url):
                logs = self._contract.events.Transfer().get_logs(
                    from_block=start, to_block=end, argument_filters=filters or None
                )
            found.extend(_transfer(log) for log in logs)
            start = end + 1
        return sorted(found, key=lambda t: (t.block, t.log_index))

    def transfers_in(self, tx_hash: str) -> list[TokenTransfer]:
        """The ``Transfer`` logs this token emitted in a mined transaction, in log order;
        empty when the transaction is not mined (or not known)."""
        with provider_errors(self.rpc_url):
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return []
            if receipt is None or receipt.get("blockNumber") is None:
                return []
            event = self._contract.events.Transfer()
            found = [
                _transfer(event.process_log(log))
                for log in receipt["logs"]
                if Web3.to_checksum_address(log["address"]) == self.address
                # Transfer with both addresses indexed, as ERC-20 tokens emit it
                and len(log["topics"]) == 3
                and bytes(log["topics"][0]) == _TRANSFER_TOPIC
            ]
        return sorted(found, key=lambda t: t.log_index)


_TRANSFER_TOPIC = bytes(Web3.keccak(text="Transfer(address,address,uint256)"))


def _transfer(log: Any) -> TokenTransfer:
    args = log["args"]
    return TokenTransfer(
        tx_hash=Web3.to_hex(log["transactionHash"]),
        log_index=int(log["logIndex"]),
        block=int(log["blockNumber"]),
        from_=Web3.to_checksum_address(args["from"]),
        to=Web3.to_checksum_address(args["to"]),
        amount=int(args["value"]),
    )

"""Signing, broadcasting and following EVM transactions (EIP-1559), over one web3 connection.

Synchronous: callers run it in a thread. Outages surface as ``ProviderError``; a revert
seen while estimating gas, or a transaction the caps forbid, as ``ChainRefused``.
"""

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)

from domain.errors import ChainRefused, ProviderError
from integrations.chain import custom_error_name, make_web3, provider_errors

# Replacing a pending transaction needs at least 10% more fee on geth-like nodes.
FEE_BUMP_NUMERATOR, FEE_BUMP_DENOMINATOR = 9, 8


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def bumped(self, cap: int) -> "Fees":
        """Fees for a replacement: 12.5% more, within ``cap``; ``ChainRefused`` if the cap
        leaves no room for the bump the node requires."""
        priority = -(-self.max_priority_fee_per_gas * FEE_BUMP_NUMERATOR // FEE_BUMP_DENOMINATOR)
        max_fee = -(-self.max_fee_per_gas * FEE_BUMP_NUMERATOR // FEE_BUMP_DENOMINATOR)
        if max_fee > cap:
            raise ChainRefused(
                f"re-sending needs a max fee of {max_fee} wei per gas, above the cap of {cap}",
                code="fee_cap_reached",
            )
        return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(priority, max_fee))


@dataclass(frozen=True)
class Signed:
    raw: bytes
    tx_hash: str


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    succeeded: bool
    block_number: int
    block_hash: str
    gas_used: int


class NonceTooLow(Exception):
    """The node has already used this nonce for some transaction of the sender."""


class ChainClient:
    def __init__(self, rpc_url: str, private_key: str, *, request_timeout: float = 10.0) -> None:
        self.rpc_url = rpc_url
        self.w3 = make_web3(rpc_url, request_timeout=request_timeout, retry=False)
        self._account: LocalAccount = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return str(self._account.address)

    def chain_id(self) -> int:
        with provider_errors(self.rpc_url):
            return int(self.w3.eth.chain_id)

    def latest_block(self) -> int:
        with provider_errors(self.rpc_url):
            return int(self.w3.eth.block_number)

    def block_timestamp(self, number: int) -> int:
        with provider_errors(self.rpc_url):
            return int(self.w3.eth.get_block(number)["timestamp"])

    def pending_nonce(self) -> int:
        with provider_errors(self.rpc_url):
            return int(self.w3.eth.get_transaction_count(self._account.address, "pending"))

    def estimate_gas(self, to: str, data: bytes, *, contract_name: str, cap: int) -> int:
        """Gas for the call with a 20% margin; a revert is refused with the contract error."""
        call = {"from": self._account.address, "to": Web3.to_checksum_address(to), "data": data}
        with provider_errors(self.rpc_url):
            try:
                estimate = int(self.w3.eth.estimate_gas(call))  # type: ignore[arg-type]
            except ContractCustomError as exc:
                name = custom_error_name(contract_name, exc.data) or "unknown error"
                raise ChainRefused(
                    f"{contract_name} would revert with {name}", code="contract_revert", error=name
                ) from exc
            except ContractLogicError as exc:
                raise ChainRefused(
                    f"{contract_name} would revert: {exc}", code="contract_revert"
                ) from exc
        gas = estimate * 6 // 5
        if gas > cap:
            raise ChainRefused(
                f"the transaction needs {gas} gas, above the cap of {cap}", code="gas_cap_exceeded"
            )
        return gas

    def suggest_fees(self, *, priority_fee: int | None, cap: int) -> Fees:
        """EIP-1559 fees: room for the base fee to double, plus the tip; within ``cap``."""
        with provider_errors(self.rpc_url):
            base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
            tip = priority_fee if priority_fee is not None else int(self.w3.eth.max_priority_fee)
        max_fee = 2 * base_fee + tip
        if base_fee + tip > cap:
            raise ChainRefused(
                f"the chain's fee ({base_fee + tip} wei per gas) is above the cap of {cap}",
                code="fee_cap_reached",
            )
        return Fees(max_fee_per_gas=min(max_fee, cap), max_priority_fee_per_gas=tip)

    def sign(
        self, *, chain_id: int, to: str, data: bytes, nonce: int, gas: int, fees: Fees
    ) -> Signed:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "to": Web3.to_checksum_address(to),
            "data": data,
            "value": 0,
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        signed = self._account.sign_transaction(tx)
        return Signed(raw=bytes(signed.raw_transaction), tx_hash=Web3.to_hex(signed.hash))

    def broadcast(self, raw: bytes) -> None:
        """Sends ``raw``; a node that already has it is fine (re-sending is how drops heal)."""
        with provider_errors(self.rpc_url):
            try:
                self.w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                message = str(exc).lower()
                if "already known" in message or "already imported" in message:
                    return
                if "nonce too low" in message:
                    raise NonceTooLow(str(exc)) from exc
                raise ProviderError(f"the node refused the transaction: {exc}") from exc

    def receipt(self, tx_hash: str) -> Receipt | None:
        with provider_errors(self.rpc_url):
            try:
                found = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
        if found is None or found.get("blockNumber") is None:
            return None
        return Receipt(
            tx_hash=tx_hash,
            succeeded=found["status"] == 1,
            block_number=int(found["blockNumber"]),
            block_hash=Web3.to_hex(found["blockHash"]),
            gas_used=int(found["gasUsed"]),
        )

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node still has the transaction (pending or mined)."""
        with provider_errors(self.rpc_url):
            try:
                return self.w3.eth.get_transaction(HexBytes(tx_hash)) is not None
            except TransactionNotFound:
                return False

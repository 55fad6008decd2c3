"""Activities of the ``chain`` rail: ERC-20 transfers from the platform's float (the sender's
address) to a destination address, on the chain task queue, through the one serialized sender.

``send_token_transfer`` signs and broadcasts a transfer's ``transfer(destination, amount)``
once per transfer id (purpose ``transfer-{id}``); calling it again, or
``check_token_transfer``, follows that one transaction up (re-sending it if dropped), so a
retried or re-run activity cannot pay twice. A transfer the token would refuse (e.g.
``ERC20InsufficientBalance``) is refused before anything is signed (``ChainRefused``, final);
nothing is recorded, so the same transfer id can be sent once the float is topped up.
"""

import asyncio
from uuid import UUID

from temporalio import activity

from activities.chain_sender import ChainSender, TxStatus
from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.chain_address import checksum_address
from domain.errors import ChainRefused, Conflict, ValidationError
from integrations.token_contract import TOKEN_ARTIFACT, TokenContract, TokenTransfer
from services import chain_transactions
from workflows.types import TokenTransferInput, TokenTransferResult

MAX_UINT256 = 2**256 - 1


def purpose_of(transfer_id: UUID) -> str:
    """The sender's key for a transfer: one token transaction per transfer, ever."""
    return f"transfer-{transfer_id}"


class TokenRailActivities:
    """Chain steps of the token rail. ``decimals`` is what the amounts are computed with
    (``TOLLGATE_CHAIN_TOKEN_DECIMALS``): a token with other decimals is refused rather than
    paid at a scale a million-fold off. ``confirmations`` makes a mined transfer CONFIRMED."""

    def __init__(
        self, sender: ChainSender, token: TokenContract, *, decimals: int, confirmations: int
    ) -> None:
        self.sender = sender
        self.token = token
        self.decimals = decimals
        self.confirmations = confirmations
        self._decimals_checked = False

    # Both heartbeat while they wait (their turn at the one sender, the node's answers), so
    # that a worker that dies meanwhile is noticed in seconds, not at the 2-minute timeout.

    @activity.defn(name="send_token_transfer")
    async def send_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        """Sends the transfer's transaction once; later calls report on that one."""
        return await heartbeating(self._send(request))

    @activity.defn(name="check_token_transfer")
    async def check_token_transfer(self, request: TokenTransferInput) -> TokenTransferResult:
        """Where the transfer's transaction is (re-sent if dropped or stuck), with the
        ``Transfer`` event it emitted once mined; ``NotFound`` if it was never sent."""
        return await heartbeating(self._check(request))

    async def _send(self, request: TokenTransferInput) -> TokenTransferResult:
        with business_errors():
            destination = self._destination(request)
            purpose = purpose_of(request.transfer_id)
            data = self.token.transfer_calldata(destination, request.amount)
            if not await self.sender.has_record(purpose):
                await self._check_decimals()
            status = await self.sender.send(
                purpose, to=self.token.address, data=data, contract_name=TOKEN_ARTIFACT
            )
            await self._same_as_recorded(purpose, data)
            return await self._result(request, destination, status)

    async def _check(self, request: TokenTransferInput) -> TokenTransferResult:
        with business_errors():
            destination = self._destination(request)
            status = await self.sender.status(purpose_of(request.transfer_id))
            return await self._result(request, destination, status)

    def _destination(self, request: TokenTransferInput) -> str:
        if not 0 < request.amount <= MAX_UINT256:
            raise ValidationError(
                "amount must be a positive number of the token's base units",
                code="invalid_amount",
                param="amount",
            )
        destination = checksum_address(request.destination, param="destination")
        if destination in (self.token.address, self.sender.address):
            raise ValidationError(
                f"destination {destination} is the token contract or the platform's own "
                "address: nothing would reach a payee",
                code="invalid_address",
                param="destination",
            )
        return destination

    async def _check_decimals(self) -> None:
        if self._decimals_checked:
            return
        on_chain = await asyncio.to_thread(self.token.decimals)
        if on_chain != self.decimals:
            raise ChainRefused(
                f"the token at {self.token.address} has {on_chain} decimals, but amounts are "
                f"computed with {self.decimals} (TOLLGATE_CHAIN_TOKEN_DECIMALS)",
                code="token_decimals_mismatch",
            )
        self._decimals_checked = True

    async def _same_as_recorded(self, purpose: str, data: bytes) -> None:
        """The transaction on record for this transfer id is this very transfer: an id
        re-used with another destination or amount is a conflict, never a second payment."""
        async with self.sender.sessionmaker() as session:
            tx = await chain_transactions.get(session, purpose)
        if tx is None:
            return
        if tx.to_address.lower() != self.token.address.lower() or bytes(tx.data) != data:
            raise Conflict(
                f"{purpose} was already sent with another destination, amount or token "
                f"(transaction {tx.tx_hash})",
                code="transfer_mismatch",
            )

    async def _result(
        self, request: TokenTransferInput, destination: str, status: TxStatus
    ) -> TokenTransferResult:
        if status.state == "PENDING":
            return TokenTransferResult(status="PENDING", tx_hash=status.tx_hash)
        if status.state == "REVERTED":
            return TokenTransferResult(
                status="REVERTED",
                tx_hash=status.tx_hash,
                block=status.block_number,
                confirmations=status.confirmations,
                error=f"the transfer transaction {status.tx_hash} reverted "
                f"in block {status.block_number}: nothing moved",
            )
        events = await asyncio.to_thread(self.token.transfers_in, status.tx_hash)
        ours = [event for event in events if event.from_ == self.sender.address]
        error = _mismatch(ours, destination, request.amount)
        at_depth = status.confirmations >= self.confirmations
        if error is None:
            state = "CONFIRMED" if at_depth else "MINED"
        else:
            # Below depth a reorganisation may still be settling; at depth it is final.
            state = "MISMATCH" if at_depth else "MINED"
        shown = next((e for e in ours if e.to == destination), ours[0] if ours else None)
        return TokenTransferResult(
            status=state,
            tx_hash=status.tx_hash,
            block=status.block_number,
            confirmations=status.confirmations,
            amount=shown.amount if shown else None,
            destination=shown.to if shown else None,
            error=error,
        )


def _mismatch(events: list[TokenTransfer], destination: str, amount: int) -> str | None:
    """Why the sender's ``Transfer`` events are not exactly ``amount`` to ``destination``."""
    if len(events) != 1:
        return f"expected one Transfer from the platform, found {len(events)}"
    (event,) = events
    if event.to != destination or event.amount != amount:
        return f"the Transfer moved {event.amount} to {event.to}, not {amount} to {destination}"
    return None

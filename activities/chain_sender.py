"""The one serialized sender of chain transactions.

Each logical transaction has a *purpose* (``anchor-batch-7``): asking again for the same
purpose never signs a second transaction, it follows up the first. A transaction is stored
before it is broadcast, so a crash between the two leaves its hash to look for. Nonces are
picked and transactions broadcast under a PostgreSQL advisory lock per sender address, so
worker replicas never race for a nonce. Following up re-broadcasts a dropped transaction,
re-signs with a fresh nonce when another transaction took its nonce, and replaces one stuck
too long with 12.5% more fee, within the caps.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.errors import ChainRefused, NotFound, ProviderError
from integrations.chain_transactions import ChainClient, Fees, NonceTooLow, Receipt
from models.anchoring import ChainTransaction
from services import chain_transactions

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderConfig:
    rpc_url: str
    chain_id: int
    private_key: SecretStr
    gas_cap: int
    max_fee_per_gas: int
    priority_fee: int | None
    resend_after: timedelta
    request_timeout: float = 10.0


@dataclass(frozen=True)
class TxStatus:
    purpose: str
    tx_hash: str
    state: Literal["PENDING", "MINED", "REVERTED"]
    block_number: int | None = None
    block_hash: str | None = None
    confirmations: int = 0
    gas_used: int | None = None
    block_timestamp: int | None = None


class ChainSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        config: SenderConfig,
        client: ChainClient | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.config = config
        self.client = client or ChainClient(
            config.rpc_url,
            config.private_key.get_secret_value(),
            request_timeout=config.request_timeout,
        )

    @property
    def address(self) -> str:
        return self.client.address

    async def send(self, purpose: str, *, to: str, data: bytes, contract_name: str) -> TxStatus:
        """Signs and broadcasts the purpose's transaction once; later calls follow it up."""
        async with self._serialized():
            async with self.sessionmaker() as session, session.begin():
                tx = await chain_transactions.get(session, purpose)
                if tx is None:
                    tx = await self._sign_new(session, purpose, to, data, contract_name)
            return await self._follow_up(purpose)

    async def status(self, purpose: str) -> TxStatus:
        """Where the purpose's transaction is; re-sends it if it was dropped or is stuck."""
        async with self._serialized():
            return await self._follow_up(purpose)

    async def observe(self, purpose: str, tx_hash: str) -> TxStatus:
        """Where a transaction this sender has no record of is (found in the contract's
        logs, e.g. after a database restore): read only, nothing is re-sent."""
        mined = await self._call(self.client.receipt, tx_hash)
        if mined is None:
            return TxStatus(purpose=purpose, tx_hash=tx_hash, state="PENDING")
        return await self._mined_status(purpose, mined)

    async def has_record(self, purpose: str) -> bool:
        async with self.sessionmaker() as session:
            return await chain_transactions.get(session, purpose) is not None

    @asynccontextmanager
    async def _serialized(self) -> AsyncIterator[None]:
        # A transaction-level lock on a connection of its own, held while this block runs:
        # ending that transaction (also when the connection dies) releases it.
        async with self.sessionmaker() as lock_session, lock_session.begin():
            await chain_transactions.lock_sender(lock_session, self.address)
            yield

    async def _sign_new(
        self, session: AsyncSession, purpose: str, to: str, data: bytes, contract_name: str
    ) -> ChainTransaction:
        chain_id = await self._call(self.client.chain_id)
        if chain_id != self.config.chain_id:
            raise ChainRefused(
                f"the node at {self.config.rpc_url} is chain {chain_id}, "
                f"not the configured chain {self.config.chain_id}",
                code="wrong_chain",
            )
        gas = await self._call(
            lambda: self.client.estimate_gas(
                to, data, contract_name=contract_name, cap=self.config.gas_cap
            )
        )
        fees = await self._fresh_fees()
        nonce = await self._call(self.client.pending_nonce)
        signed = self.client.sign(
            chain_id=chain_id, to=to, data=data, nonce=nonce, gas=gas, fees=fees
        )
        return await chain_transactions.record_signed(
            session,
            ChainTransaction(
                purpose=purpose,
                chain_id=chain_id,
                sender=self.address,
                to_address=to,
                data=data,
                nonce=nonce,
                gas_limit=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                raw_tx=signed.raw,
                tx_hash=signed.tx_hash,
            ),
        )

    async def _follow_up(self, purpose: str) -> TxStatus:
        async with self.sessionmaker() as session, session.begin():
            tx = await chain_transactions.get(session, purpose)
            if tx is None:
                raise NotFound(f"no chain transaction for {purpose}", purpose=purpose)
            mined = await self._find_receipt(tx)
            if mined is not None:
                return await self._record_mined(session, tx, mined)
            if tx.status in ("MINED", "REVERTED"):
                await chain_transactions.record_unmined(session, tx)
            if tx.status != "SIGNED" and await self._call(self.client.is_known, tx.tx_hash):
                bumped = self._bumped_fees(tx) if self._stuck(tx) else None
                if bumped is None:
                    return TxStatus(purpose=purpose, tx_hash=tx.tx_hash, state="PENDING")
                await self._resign(session, tx, nonce=tx.nonce, fees=bumped)
        # Committed: the version about to be broadcast is on record first.
        return await self._broadcast(purpose)

    async def _broadcast(self, purpose: str) -> TxStatus:
        """Broadcasts the latest version. If its nonce is taken, by one of our versions the
        receipt says so; by another transaction, it is signed afresh with a new nonce."""
        for _ in range(2):
            async with self.sessionmaker() as session, session.begin():
                tx = await chain_transactions.get(session, purpose)
                assert tx is not None
                try:
                    await self._call(self.client.broadcast, tx.raw_tx)
                except NonceTooLow:
                    mined = await self._find_receipt(tx)
                    if mined is not None:
                        return await self._record_mined(session, tx, mined)
                    nonce = await self._call(self.client.pending_nonce)
                    await self._resign(session, tx, nonce=nonce, fees=await self._fresh_fees())
                    continue
                await chain_transactions.record_sent(session, tx)
                return TxStatus(purpose=purpose, tx_hash=tx.tx_hash, state="PENDING")
        raise ProviderError(f"the nonce of {purpose} was taken twice in a row; will retry")

    async def _resign(
        self, session: AsyncSession, tx: ChainTransaction, *, nonce: int, fees: Fees
    ) -> None:
        signed = self.client.sign(
            chain_id=tx.chain_id,
            to=tx.to_address,
            data=tx.data,
            nonce=nonce,
            gas=tx.gas_limit,
            fees=fees,
        )
        await chain_transactions.record_resigned(
            session,
            tx,
            raw=signed.raw,
            tx_hash=signed.tx_hash,
            nonce=nonce,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )

    async def _find_receipt(self, tx: ChainTransaction) -> Receipt | None:
        # Any signed version may be the one mined; the latest is the likeliest.
        for tx_hash in reversed(tx.hashes):
            found = await self._call(self.client.receipt, tx_hash)
            if found is not None:
                return found
        return None

    async def _record_mined(
        self, session: AsyncSession, tx: ChainTransaction, mined: Receipt
    ) -> TxStatus:
        await chain_transactions.record_mined(
            session,
            tx,
            tx_hash=mined.tx_hash,
            succeeded=mined.succeeded,
            block_number=mined.block_number,
            block_hash=mined.block_hash,
            gas_used=mined.gas_used,
        )
        return await self._mined_status(tx.purpose, mined)

    async def _mined_status(self, purpose: str, mined: Receipt) -> TxStatus:
        latest = await self._call(self.client.latest_block)
        timestamp = await self._call(self.client.block_timestamp, mined.block_number)
        return TxStatus(
            purpose=purpose,
            tx_hash=mined.tx_hash,
            state="MINED" if mined.succeeded else "REVERTED",
            block_number=mined.block_number,
            block_hash=mined.block_hash,
            confirmations=max(latest - mined.block_number + 1, 0),
            gas_used=mined.gas_used,
            block_timestamp=timestamp,
        )

    def _bumped_fees(self, tx: ChainTransaction) -> Fees | None:
        """Fees for replacing a stuck transaction; None at the cap: it stays pending as it
        is (it may still be mined) and operators see it waiting."""
        try:
            return Fees(tx.max_fee_per_gas, tx.max_priority_fee_per_gas).bumped(
                self.config.max_fee_per_gas
            )
        except ChainRefused as at_cap:
            log.warning("%s is stuck and cannot be re-sent: %s", tx.purpose, at_cap.message)
            return None

    def _stuck(self, tx: ChainTransaction) -> bool:
        return tx.sent_at is not None and datetime.now(UTC) - tx.sent_at > self.config.resend_after

    async def _fresh_fees(self) -> Fees:
        return await self._call(
            lambda: self.client.suggest_fees(
                priority_fee=self.config.priority_fee, cap=self.config.max_fee_per_gas
            )
        )

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(fn, *args)

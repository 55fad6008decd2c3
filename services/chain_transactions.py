"""Records of the serialized chain sender: one row per purpose, every signed version kept."""

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.anchoring import ChainTransaction


async def lock_sender(session: AsyncSession, sender: str) -> None:
    """Transaction-level advisory lock: one sender process at a time picks nonces and
    broadcasts, across worker replicas. Released when the session's transaction ends
    (commit, rollback, or its connection dying), never left behind on a pooled connection."""
    await session.execute(select(func.pg_advisory_xact_lock(_lock_key(sender))))


def _lock_key(sender: str) -> object:
    return func.hashtextextended(f"chain-sender:{sender.lower()}", 0)


async def get(session: AsyncSession, purpose: str) -> ChainTransaction | None:
    found: ChainTransaction | None = await session.scalar(
        select(ChainTransaction).where(ChainTransaction.purpose == purpose)
    )
    return found


async def record_signed(session: AsyncSession, tx: ChainTransaction) -> ChainTransaction:
    """Stores a newly signed transaction before it is broadcast, so a crash after the
    broadcast still leaves its hash to look for."""
    tx.status = "SIGNED"
    tx.hashes = [tx.tx_hash]
    session.add(tx)
    await session.flush()
    return tx


async def record_resigned(
    session: AsyncSession,
    tx: ChainTransaction,
    *,
    raw: bytes,
    tx_hash: str,
    nonce: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
) -> None:
    """A new version (higher fees, or a new nonce): the old hashes stay in ``hashes``."""
    tx.raw_tx = raw
    tx.tx_hash = tx_hash
    tx.nonce = nonce
    tx.max_fee_per_gas = max_fee_per_gas
    tx.max_priority_fee_per_gas = max_priority_fee_per_gas
    tx.hashes = [*tx.hashes, tx_hash]
    tx.status = "SIGNED"
    tx.sent_at = None
    await session.flush()


async def record_sent(session: AsyncSession, tx: ChainTransaction) -> None:
    tx.status = "SENT"
    tx.sent_at = datetime.now(UTC)
    await session.flush()


async def record_mined(
    session: AsyncSession,
    tx: ChainTransaction,
    *,
    tx_hash: str,
    succeeded: bool,
    block_number: int,
    block_hash: str,
    gas_used: int,
) -> None:
    if tx.block_hash != block_hash or tx.tx_hash != tx_hash:
        tx.mined_at = datetime.now(UTC)
    tx.status = "MINED" if succeeded else "REVERTED"
    tx.tx_hash = tx_hash
    tx.block_number = block_number
    tx.block_hash = block_hash
    tx.gas_used = gas_used
    await session.flush()


async def record_unmined(session: AsyncSession, tx: ChainTransaction) -> None:
    """Its block was reorganised away: it is pending again (or dropped, and will be re-sent)."""
    tx.status = "SENT"
    tx.block_number = None
    tx.block_hash = None
    tx.gas_used = None
    tx.mined_at = None
    await session.flush()

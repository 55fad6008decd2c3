"""Anchoring activities. Database steps run on the main task queue; the chain steps
(``submit_anchor_batch``, ``check_anchor_batch``) on the chain queue, one at a time, through
the serialized sender."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.chain_sender import ChainSender, TxStatus
from activities.errors import business_errors
from domain.actors import Actor, Role
from domain.errors import ChainRefused
from integrations.anchor_contract import AnchorContract
from services import anchoring
from workflows.types import (
    BatchInput,
    BatchRef,
    CheckBatchInput,
    CheckBatchResult,
    CreateBatchInput,
    FailBatchInput,
    SubmitBatchResult,
    SubmittedBatches,
)

ACTOR = Actor("anchoring", Role.SYSTEM)
ZERO_ROOT = bytes(32)


def purpose_of(batch_id: int) -> str:
    """The sender's key for a batch: one anchoring transaction per batch, ever."""
    return f"anchor-batch-{batch_id}"


class AnchorBatchActivities:
    """Database steps of anchoring."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="create_anchor_batch")
    async def create_anchor_batch(self, request: CreateBatchInput) -> BatchRef:
        """The oldest batch left PENDING or FAILED (a retry), else a new one."""
        async with self.sessionmaker() as session, session.begin():
            batch = await anchoring.next_retryable(session) or await anchoring.create_batch(
                session, max_leaves=request.max_leaves, actor=ACTOR
            )
            if batch is None:
                return BatchRef()
            return BatchRef(batch_id=batch.id, leaf_count=batch.leaf_count)

    @activity.defn(name="fail_anchor_batch")
    async def fail_anchor_batch(self, request: FailBatchInput) -> None:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                await anchoring.mark_failed(
                    session, request.batch_id, error=request.error, actor=ACTOR
                )

    @activity.defn(name="list_submitted_batches")
    async def list_submitted_batches(self, _: BatchRef) -> SubmittedBatches:
        async with self.sessionmaker() as session:
            return SubmittedBatches(batch_ids=list(await anchoring.submitted_batches(session)))


class AnchorChainActivities:
    """Chain steps of anchoring, through the one sender."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: ChainSender,
        contract: AnchorContract,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.sender = sender
        self.contract = contract

    @activity.defn(name="submit_anchor_batch")
    async def submit_anchor_batch(self, request: BatchInput) -> SubmitBatchResult:
        """Sends the batch's ``anchor`` transaction once and marks the batch SUBMITTED."""
        with business_errors():
            async with self.sessionmaker() as session:
                batch = await anchoring.get_batch(session, request.batch_id)
            if batch.status in ("SUBMITTED", "CONFIRMED") and batch.tx_hash:
                return SubmitBatchResult(tx_hash=batch.tx_hash)
            purpose = purpose_of(batch.id)
            if not await self.sender.has_record(purpose):
                tx_hash = await self._already_anchored(batch.id, batch.root)
                if tx_hash is not None:
                    return await self._submitted(batch.id, tx_hash)
            sent = await self.sender.send(
                purpose,
                to=self.contract.address,
                data=self.contract.calldata(batch.id, batch.root, batch.leaf_count),
                contract_name="Anchor",
            )
            if sent.state == "REVERTED":
                raise ChainRefused(
                    f"the anchor transaction {sent.tx_hash} of batch {batch.id} reverted",
                    code="contract_revert",
                )
            return await self._submitted(batch.id, sent.tx_hash)

    @activity.defn(name="check_anchor_batch")
    async def check_anchor_batch(self, request: CheckBatchInput) -> CheckBatchResult:
        """Follows the batch's transaction (re-sending it if dropped); CONFIRMED at depth."""
        with business_errors():
            async with self.sessionmaker() as session:
                batch = await anchoring.get_batch(session, request.batch_id)
            if batch.status != "SUBMITTED" or batch.tx_hash is None:
                return CheckBatchResult(
                    status=batch.status,
                    confirmations=batch.confirmations or 0,
                    block_number=batch.block_number,
                    error=batch.last_error,
                )
            purpose = purpose_of(batch.id)
            if await self.sender.has_record(purpose):
                status = await self.sender.status(purpose)
            else:
                status = await self.sender.observe(purpose, batch.tx_hash)
            if status.state == "PENDING":
                return CheckBatchResult(status="SUBMITTED")
            if status.state == "REVERTED":
                return await self._reverted(batch.id, status)
            return await self._mined(batch.id, status, request.confirmations)

    async def _already_anchored(self, batch_id: int, root: bytes) -> str | None:
        """The transaction that already anchored this batch (our own, its record lost);
        ``ChainRefused`` if the chain holds another root for this batch id."""
        on_chain = await asyncio.to_thread(self.contract.batch_root, batch_id)
        if on_chain == ZERO_ROOT:
            return None
        if on_chain != root:
            raise ChainRefused(
                f"batch {batch_id} is anchored on chain with another root "
                f"(0x{on_chain.hex()}): the database and the chain disagree",
                code="batch_id_taken",
            )
        event = await asyncio.to_thread(self.contract.find_anchoring, batch_id)
        if event is None:
            raise ChainRefused(f"batch {batch_id} is anchored but its event is not found")
        return event.tx_hash

    async def _submitted(self, batch_id: int, tx_hash: str) -> SubmitBatchResult:
        async with self.sessionmaker() as session, session.begin():
            await anchoring.mark_submitted(
                session,
                batch_id,
                tx_hash=tx_hash,
                chain_id=self.sender.config.chain_id,
                contract_address=self.contract.address,
                actor=ACTOR,
            )
        return SubmitBatchResult(tx_hash=tx_hash)

    async def _reverted(self, batch_id: int, status: TxStatus) -> CheckBatchResult:
        error = f"the anchor transaction {status.tx_hash} reverted in block {status.block_number}"
        async with self.sessionmaker() as session, session.begin():
            await anchoring.mark_failed(session, batch_id, error=error, actor=ACTOR)
        return CheckBatchResult(status="FAILED", error=error)

    async def _mined(self, batch_id: int, status: TxStatus, confirmations: int) -> CheckBatchResult:
        assert status.block_number is not None and status.block_hash is not None
        assert status.block_timestamp is not None
        async with self.sessionmaker() as session, session.begin():
            batch = await anchoring.record_confirmations(
                session,
                batch_id,
                tx_hash=status.tx_hash,
                block_number=status.block_number,
                block_hash=status.block_hash,
                confirmations=status.confirmations,
                anchored_at=datetime.fromtimestamp(status.block_timestamp, UTC),
                confirmed=status.confirmations >= confirmations,
                actor=ACTOR,
            )
        return CheckBatchResult(
            status=batch.status,
            confirmations=status.confirmations,
            block_number=status.block_number,
        )

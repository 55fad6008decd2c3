"""Anchor batches: gathering unanchored tickets into a Merkle tree, storing every ticket's
proof, and the batch's PENDING → SUBMITTED → CONFIRMED (or FAILED) transitions, each a
compare-and-set on the row."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.anchor_proofs import AnchorProof, ticket_leaf
from domain.errors import Conflict, NotFound
from domain.merkle import MerkleTree, split_path
from models.anchoring import AnchorBatch, TicketAnchor
from models.tickets import Ticket
from services import audit
from services.locking import locked

RETRYABLE = ("PENDING", "FAILED")


def batch_view(batch: AnchorBatch) -> dict[str, Any]:
    return {"status": batch.status, "tx_hash": batch.tx_hash, "attempts": batch.attempts}


async def pending_count(session: AsyncSession, *, up_to: int) -> int:
    """Tickets waiting for a batch, counted no further than ``up_to`` (a cheap threshold test)."""
    waiting = select(Ticket.id).where(Ticket.anchor_batch_id.is_(None)).limit(up_to).subquery()
    return int(await session.scalar(select(func.count()).select_from(waiting)) or 0)


async def create_batch(
    session: AsyncSession, *, max_leaves: int, actor: Actor
) -> AnchorBatch | None:
    """A PENDING batch of up to ``max_leaves`` unanchored tickets, oldest first, with each
    ticket's proof stored; None if no ticket is waiting.

    Tickets are locked with SKIP LOCKED, so two runs at once build disjoint batches.
    """
    rows = (
        await session.execute(
            select(Ticket.id, Ticket.payload, Ticket.user_id, Ticket.driver_id)
            .where(Ticket.anchor_batch_id.is_(None))
            .order_by(Ticket.created_at, Ticket.id)
            .limit(max_leaves)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return None
    leaves = [ticket_leaf(row.payload) for row in rows]
    tree = MerkleTree(leaves)
    batch = AnchorBatch(root=tree.root, leaf_count=tree.size, status="PENDING", attempts=0)
    session.add(batch)
    await session.flush()
    await session.execute(
        insert(TicketAnchor),
        [
            {
                "ticket_id": row.id,
                "batch_id": batch.id,
                "leaf_index": index,
                "leaf": leaf,
                "path": path,
                "user_id": row.user_id,
                "driver_id": row.driver_id,
            }
            for index, (row, leaf, path) in enumerate(
                zip(rows, leaves, tree.all_paths(), strict=True)
            )
        ],
    )
    # Set-based, so a batch of any size stays one statement within the parameter limit.
    in_batch = select(TicketAnchor.ticket_id).where(TicketAnchor.batch_id == batch.id)
    await session.execute(
        update(Ticket)
        .where(Ticket.id.in_(in_batch))
        .values(anchor_batch_id=batch.id)
        .execution_options(synchronize_session=False)
    )
    await _recorded(
        session,
        batch,
        "created",
        actor=actor,
        before=None,
        metadata={"leaf_count": batch.leaf_count, "root": "0x" + batch.root.hex()},
    )
    return batch


async def _recorded(
    session: AsyncSession,
    batch: AnchorBatch,
    event: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Flush the batch's change and write its audit event ``anchor_batch.<event>``."""
    await session.flush()
    await audit.record(
        session,
        action=f"anchor_batch.{event}",
        entity_type="anchor_batch",
        entity_id=str(batch.id),
        actor=actor,
        before=before,
        after=batch_view(batch),
        metadata=metadata,
    )


async def next_retryable(session: AsyncSession) -> AnchorBatch | None:
    """The oldest batch still to be sent: PENDING (a run stopped before sending) or FAILED."""
    found: AnchorBatch | None = await session.scalar(
        select(AnchorBatch)
        .where(AnchorBatch.status.in_(RETRYABLE))
        .order_by(AnchorBatch.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return found


async def get_batch(
    session: AsyncSession, batch_id: int, *, for_update: bool = False
) -> AnchorBatch:
    query = select(AnchorBatch).where(AnchorBatch.id == batch_id)
    if for_update:
        query = locked(query)
    batch: AnchorBatch | None = await session.scalar(query)
    if batch is None:
        raise NotFound(f"no anchor batch {batch_id}", param="batch_id")
    return batch


async def mark_submitted(
    session: AsyncSession,
    batch_id: int,
    *,
    tx_hash: str,
    chain_id: int,
    contract_address: str,
    actor: Actor,
) -> AnchorBatch:
    """PENDING/FAILED → SUBMITTED; already SUBMITTED or CONFIRMED is left as it is."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status not in RETRYABLE:
        return batch
    before = batch_view(batch)
    batch.status = "SUBMITTED"
    batch.tx_hash = tx_hash
    batch.chain_id = chain_id
    batch.contract_address = contract_address
    batch.attempts += 1
    batch.last_error = None
    batch.submitted_at = datetime.now(UTC)
    await _recorded(session, batch, "submitted", actor=actor, before=before)
    return batch


async def record_confirmations(
    session: AsyncSession,
    batch_id: int,
    *,
    tx_hash: str,
    block_number: int,
    block_hash: str,
    confirmations: int,
    anchored_at: datetime,
    confirmed: bool,
    actor: Actor,
) -> AnchorBatch:
    """Where the anchoring transaction was mined; SUBMITTED → CONFIRMED once ``confirmed``.

    A CONFIRMED batch only gains confirmations: its block is final at the configured depth.
    """
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status == "CONFIRMED":
        batch.confirmations = max(batch.confirmations or 0, confirmations)
        return batch
    if batch.status != "SUBMITTED":
        raise Conflict(
            f"anchor batch {batch_id} is {batch.status}, not SUBMITTED", status=batch.status
        )
    before = batch_view(batch)
    batch.tx_hash = tx_hash
    batch.block_number = block_number
    batch.block_hash = block_hash
    batch.confirmations = confirmations
    batch.anchored_at = anchored_at
    if not confirmed:
        await session.flush()
        return batch
    batch.status = "CONFIRMED"
    batch.confirmed_at = datetime.now(UTC)
    await _recorded(
        session,
        batch,
        "confirmed",
        actor=actor,
        before=before,
        metadata={"block_number": block_number, "confirmations": confirmations},
    )
    return batch


async def mark_failed(
    session: AsyncSession, batch_id: int, *, error: str, actor: Actor
) -> AnchorBatch:
    """PENDING/SUBMITTED → FAILED with the error; the next run retries it."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status in ("CONFIRMED", "FAILED"):
        return batch
    before = batch_view(batch)
    batch.status = "FAILED"
    batch.last_error = error
    batch.failed_at = datetime.now(UTC)
    await _recorded(session, batch, "failed", actor=actor, before=before, metadata={"error": error})
    return batch


async def submitted_batches(session: AsyncSession) -> Sequence[int]:
    ids = await session.scalars(
        select(AnchorBatch.id).where(AnchorBatch.status == "SUBMITTED").order_by(AnchorBatch.id)
    )
    return list(ids)


async def list_batches(
    session: AsyncSession, *, limit: int, starting_after: int | None, status: str | None
) -> Sequence[AnchorBatch]:
    """Newest first; ``limit + 1`` rows so callers can tell ``has_more``."""
    query = select(AnchorBatch).order_by(AnchorBatch.id.desc()).limit(limit + 1)
    if starting_after is not None:
        query = query.where(AnchorBatch.id < starting_after)
    if status:
        query = query.where(AnchorBatch.status == status)
    return list(await session.scalars(query))


@dataclass(frozen=True)
class TicketProof:
    """A ticket's place in its batch; ``proof`` is None until the batch exists."""

    ticket_id: uuid.UUID
    user_id: str
    driver_id: str
    batch: AnchorBatch | None
    proof: AnchorProof | None


async def ticket_proof(session: AsyncSession, ticket_id: uuid.UUID) -> TicketProof:
    """Served from ``ticket_anchors`` so it outlives the ticket's cleanup."""
    found = (
        await session.execute(
            select(TicketAnchor, AnchorBatch)
            .join(AnchorBatch, AnchorBatch.id == TicketAnchor.batch_id)
            .where(TicketAnchor.ticket_id == ticket_id)
        )
    ).first()
    if found is None:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}", param="ticket_id")
        return TicketProof(ticket.id, ticket.user_id, ticket.driver_id, None, None)
    anchor, batch = found
    proof = None
    if batch.chain_id is not None and batch.contract_address is not None:
        proof = AnchorProof(
            ticket_id=str(anchor.ticket_id),
            leaf=anchor.leaf,
            leaf_index=anchor.leaf_index,
            tree_size=batch.leaf_count,
            siblings=split_path(anchor.path),
            root=batch.root,
            batch_id=batch.id,
            chain_id=batch.chain_id,
            contract_address=batch.contract_address,
            transaction_hash=batch.tx_hash,
            block_number=batch.block_number,
        )
    return TicketProof(anchor.ticket_id, anchor.user_id, anchor.driver_id, batch, proof)

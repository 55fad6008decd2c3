"""Anchor batches on a real PostgreSQL: the tree stored matches its tickets, concurrent runs
build disjoint batches, and the batch states move only forward."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM, Actor, Role
from domain.anchor_proofs import ticket_leaf
from domain.errors import Conflict, NotFound
from domain.merkle import MerkleTree
from domain.tickets.signing import KeyRing
from models.anchoring import TicketAnchor
from models.engine import make_engine, make_sessionmaker
from models.tickets import Ticket
from services import anchoring, tickets

RING = KeyRing.generate("anchor-1")
ADMIN = Actor("booking-svc", Role.PLATFORM_ADMIN)
TX = "0x" + "ab" * 32
CONTRACT = "0x" + "cd" * 20


async def make(session: AsyncSession, count: int, prefix: str = "bk") -> list[Ticket]:
    now = datetime.now(UTC)
    made = []
    for i in range(count):
        issued = await tickets.issue(
            session,
            booking_id=f"{prefix}-{i}",
            user_id=f"rider-{i}",
            driver_id="drv",
            trip={},
            valid_from=now,
            valid_until=now + timedelta(hours=1),
            ring=RING,
            actor=ADMIN,
        )
        made.append(issued.ticket)
    return made


async def test_a_batch_holds_every_waiting_ticket_with_a_verifying_proof(
    session: AsyncSession,
) -> None:
    made = await make(session, 7)
    assert await anchoring.pending_count(session, up_to=100) == 7
    assert await anchoring.pending_count(session, up_to=5) == 5

    batch = await anchoring.create_batch(session, max_leaves=100, actor=SYSTEM)

    assert batch is not None and batch.status == "PENDING" and batch.leaf_count == 7
    assert await anchoring.pending_count(session, up_to=100) == 0
    assert await anchoring.create_batch(session, max_leaves=100, actor=SYSTEM) is None
    anchors = list(await session.scalars(select(TicketAnchor).order_by(TicketAnchor.leaf_index)))
    by_id = {t.id: t for t in made}
    in_tree = [by_id[a.ticket_id] for a in anchors]
    assert sorted(t.id for t in in_tree) == sorted(by_id)
    assert batch.root == MerkleTree([ticket_leaf(t.payload) for t in in_tree]).root
    assert all(a.user_id == t.user_id for a, t in zip(anchors, in_tree, strict=True))
    await anchoring.mark_submitted(
        session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
    )
    for ticket in made:
        found = await anchoring.ticket_proof(session, ticket.id)
        assert found.proof is not None and found.proof.path_verifies()
        assert found.proof.leaf == ticket_leaf(ticket.payload)
        assert found.proof.root == batch.root and found.proof.transaction_hash == TX


async def test_batches_take_the_oldest_tickets_up_to_the_size(session: AsyncSession) -> None:
    made = await make(session, 5)
    now = datetime.now(UTC)
    for age, ticket in enumerate(reversed(made)):  # made[0] is the oldest
        ticket.created_at = now - timedelta(minutes=age)
    await session.flush()

    first = await anchoring.create_batch(session, max_leaves=3, actor=SYSTEM)
    second = await anchoring.create_batch(session, max_leaves=3, actor=SYSTEM)

    assert first is not None and second is not None
    assert (first.leaf_count, second.leaf_count) == (3, 2)
    rows = await session.execute(select(TicketAnchor.ticket_id, TicketAnchor.batch_id))
    batch_of = dict(rows.tuples().all())
    assert [batch_of[t.id] for t in made] == [first.id] * 3 + [second.id] * 2


async def test_a_ticket_not_in_a_batch_has_no_proof_yet(session: AsyncSession) -> None:
    [ticket] = await make(session, 1)
    found = await anchoring.ticket_proof(session, ticket.id)
    assert found.batch is None and found.proof is None and found.user_id == "rider-0"
    with pytest.raises(NotFound):
        await anchoring.ticket_proof(session, uuid.UUID(int=7))


async def test_states_move_forward_only(session: AsyncSession) -> None:
    await make(session, 2)
    batch = await anchoring.create_batch(session, max_leaves=10, actor=SYSTEM)
    assert batch is not None
    assert (await anchoring.next_retryable(session)) is batch  # PENDING: to be sent

    with pytest.raises(Conflict):
        await anchoring.record_confirmations(
            session,
            batch.id,
            tx_hash=TX,
            block_number=1,
            block_hash=TX,
            confirmations=1,
            anchored_at=datetime.now(UTC),
            confirmed=True,
            actor=SYSTEM,
        )
    await anchoring.mark_failed(session, batch.id, error="chain away", actor=SYSTEM)
    assert batch.status == "FAILED" and batch.last_error == "chain away"
    assert (await anchoring.next_retryable(session)) is batch  # FAILED: retried

    await anchoring.mark_submitted(
        session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
    )
    assert batch.status == "SUBMITTED" and batch.attempts == 1 and batch.last_error is None
    assert await anchoring.submitted_batches(session) == [batch.id]
    assert await anchoring.next_retryable(session) is None

    async def confirm(depth: int, confirmed: bool) -> None:
        await anchoring.record_confirmations(
            session,
            batch.id,
            tx_hash=TX,
            block_number=9,
            block_hash=TX,
            confirmations=depth,
            anchored_at=datetime.now(UTC),
            confirmed=confirmed,
            actor=SYSTEM,
        )

    await confirm(1, confirmed=False)
    assert batch.status == "SUBMITTED" and batch.confirmations == 1
    await confirm(3, confirmed=True)
    assert batch.status == "CONFIRMED" and batch.confirmed_at is not None
    await anchoring.mark_failed(session, batch.id, error="late", actor=SYSTEM)
    await anchoring.mark_submitted(
        session,
        batch.id,
        tx_hash="0x" + "ee" * 32,
        chain_id=1,
        contract_address=CONTRACT,
        actor=SYSTEM,
    )
    assert batch.status == "CONFIRMED" and batch.tx_hash == TX and batch.last_error is None


async def test_concurrent_runs_build_disjoint_batches(database_url: str) -> None:
    engine = make_engine(database_url)
    sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            await make(session, 40)

        async def run() -> int:
            async with sessionmaker() as session, session.begin():
                batch = await anchoring.create_batch(session, max_leaves=25, actor=SYSTEM)
                return batch.leaf_count if batch else 0

        sizes = await asyncio.gather(*(run() for _ in range(4)))
        async with sessionmaker() as session:
            anchored = list(await session.scalars(select(TicketAnchor.ticket_id)))
            assert await anchoring.pending_count(session, up_to=100) == 0
    finally:
        await engine.dispose()
    assert sum(sizes) == 40 and len(anchored) == len(set(anchored)) == 40

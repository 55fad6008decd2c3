"""The daily cleanup removes finished tickets past retention and keeps everything else."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM, Actor, Role
from domain.anchor_proofs import ticket_leaf
from domain.tickets.signing import KeyRing
from models.tickets import Ticket, TicketVerification
from services import anchoring, tickets

RING = KeyRing.generate("svc-1")
ADMIN = Actor("booking-svc", Role.PLATFORM_ADMIN)
TX = "0x" + "ab" * 32
CONTRACT = "0x" + "cd" * 20


async def make(session: AsyncSession, booking: str, ended_days_ago: float) -> Ticket:
    until = datetime.now(UTC) - timedelta(days=ended_days_ago)
    issued = await tickets.issue(
        session,
        booking_id=booking,
        user_id="rider",
        driver_id="drv",
        trip={},
        valid_from=until - timedelta(hours=2),
        valid_until=until,
        ring=RING,
        actor=ADMIN,
    )
    return issued.ticket


async def test_purge_removes_only_finished_tickets_past_retention(session: AsyncSession) -> None:
    old_used = await make(session, "old-used", 40)
    await tickets.verify(
        session,
        payload=old_used.payload,
        driver=Actor("drv", Role.DRIVER),
        driver_id="drv",
        location=None,
        ring=RING,
        scanned_at=old_used.valid_from + timedelta(minutes=5),
        nonce="scan-old-used",
    )
    old_expired = await make(session, "old-expired", 35)
    assert await tickets.expire(session, old_expired.id, actor=SYSTEM) == "EXPIRED"
    await make(session, "old-active", 35)  # its workflow has not expired it yet
    recent = await make(session, "recent", 1)
    await tickets.expire(session, recent.id, actor=SYSTEM)
    await anchor_confirmed(session)

    deleted = await tickets.purge_expired(
        session, older_than=datetime.now(UTC) - timedelta(days=30), actor=SYSTEM
    )

    assert deleted == 2
    left = set(await session.scalars(select(Ticket.booking_id)))
    assert {"old-active", "recent"} <= left and not {"old-used", "old-expired"} & left
    logs = await session.scalar(
        select(func.count()).where(TicketVerification.ticket_id == old_used.id)
    )
    assert logs == 1  # the verification log stays


async def anchor_confirmed(session: AsyncSession) -> int:
    """Put every waiting ticket in a batch and record it CONFIRMED on chain."""
    batch = await anchoring.create_batch(session, max_leaves=1000, actor=SYSTEM)
    assert batch is not None
    await anchoring.mark_submitted(
        session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
    )
    await anchoring.record_confirmations(
        session,
        batch.id,
        tx_hash=TX,
        block_number=7,
        block_hash=TX,
        confirmations=1,
        anchored_at=datetime.now(UTC),
        confirmed=True,
        actor=SYSTEM,
    )
    return batch.id


async def test_purge_keeps_tickets_until_their_batch_is_confirmed(session: AsyncSession) -> None:
    waiting = await make(session, "never-batched", 40)
    await tickets.expire(session, waiting.id, actor=SYSTEM)
    batched = await make(session, "batch-submitted", 40)
    await tickets.expire(session, batched.id, actor=SYSTEM)
    batch = await anchoring.create_batch(session, max_leaves=1, actor=SYSTEM)
    assert batch is not None
    await anchoring.mark_submitted(
        session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
    )

    deleted = await tickets.purge_expired(
        session, older_than=datetime.now(UTC) - timedelta(days=30), actor=SYSTEM
    )

    assert deleted == 0


async def test_a_proof_outlives_its_ticket(session: AsyncSession) -> None:
    ticket = await make(session, "anchored-then-purged", 40)
    await tickets.expire(session, ticket.id, actor=SYSTEM)
    batch_id = await anchor_confirmed(session)
    before = await anchoring.ticket_proof(session, ticket.id)

    assert (
        await tickets.purge_expired(
            session, older_than=datetime.now(UTC) - timedelta(days=30), actor=SYSTEM
        )
        == 1
    )

    after = await anchoring.ticket_proof(session, ticket.id)
    assert after.proof is not None and after.proof == before.proof
    assert after.proof.path_verifies() and after.proof.batch_id == batch_id
    assert (after.user_id, after.driver_id) == ("rider", "drv")
    assert after.proof.leaf == ticket_leaf(ticket.payload)

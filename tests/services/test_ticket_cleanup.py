"""The daily cleanup removes finished tickets past retention and keeps everything else."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM, Actor, Role
from domain.tickets.signing import KeyRing
from models.tickets import Ticket, TicketVerification
from services import tickets

RING = KeyRing.generate("svc-1")
ADMIN = Actor("booking-svc", Role.PLATFORM_ADMIN)


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

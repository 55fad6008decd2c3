"""Tickets: issuing, reading, verifying (online and uploaded offline scans), cancelling,
expiring and cleaning up. Status changes are compare-and-set on the row."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor, Role
from domain.errors import NotFound, ValidationError
from domain.tickets.claims import TicketClaims
from domain.tickets.lifecycle import TicketStatus, check_transition
from domain.tickets.signing import KeyRing, sign
from domain.tickets.verification import Reason, verify_offline
from models.anchoring import AnchorBatch
from models.tickets import Ticket, TicketVerification
from services import audit
from services.locking import locked
from services.pagination import newest_first


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    return {"status": ticket.status, "booking_id": ticket.booking_id, "driver_id": ticket.driver_id}


@dataclass(frozen=True)
class Issued:
    ticket: Ticket
    created: bool


async def issue(
    session: AsyncSession,
    *,
    booking_id: str,
    user_id: str,
    driver_id: str,
    trip: dict[str, Any],
    valid_from: datetime,
    valid_until: datetime,
    ring: KeyRing,
    actor: Actor,
) -> Issued:
    """The booking's ticket: created and signed once; later requests get the same ticket."""
    ticket_id = uuid.uuid4()
    signer = ring.signer()
    claims = TicketClaims(
        ticket_id=ticket_id,
        booking_id=booking_id,
        driver_id=driver_id,
        valid_from=valid_from,
        valid_until=valid_until,
        key_id=signer.key_id,
    )
    payload = sign(claims, ring)
    inserted = await session.execute(
        insert(Ticket)
        .values(
            id=ticket_id,
            booking_id=booking_id,
            user_id=user_id,
            driver_id=driver_id,
            trip=trip,
            valid_from=claims.valid_from,
            valid_until=claims.valid_until,
            status=TicketStatus.ACTIVE.value,
            key_id=signer.key_id,
            payload=payload,
        )
        .on_conflict_do_nothing(index_elements=["booking_id"])
        .returning(Ticket.id)
    )
    created = inserted.scalar() is not None
    ticket = await session.scalar(select(Ticket).where(Ticket.booking_id == booking_id))
    assert ticket is not None
    if created:
        await audit.record(
            session,
            action="ticket.issued",
            entity_type="ticket",
            entity_id=ticket.id,
            actor=actor,
            after=ticket_view(ticket),
            metadata={"key_id": signer.key_id},
        )
    return Issued(ticket, created)


async def get(session: AsyncSession, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.id == ticket_id)
    ticket = await session.scalar(locked(query) if for_update else query)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id}", param="id")
    return ticket


class Owned(Protocol):
    """What deciding who may read needs: a ticket, or its proof kept after cleanup."""

    @property
    def user_id(self) -> str: ...
    @property
    def driver_id(self) -> str: ...


def can_read(actor: Actor, ticket: Owned) -> bool:
    if actor.is_admin:
        return True
    if actor.role is Role.CUSTOMER:
        return ticket.user_id == actor.id
    if actor.role is Role.DRIVER:
        return ticket.driver_id == actor.id
    return False


async def get_visible(session: AsyncSession, ticket_id: uuid.UUID, actor: Actor) -> Ticket:
    """The ticket if ``actor`` may see it; another's ticket is reported missing, not forbidden,
    so ids cannot be probed."""
    ticket = await get(session, ticket_id)
    if not can_read(actor, ticket):
        raise NotFound(f"No ticket {ticket_id}", param="id")
    return ticket


@dataclass(frozen=True)
class TicketFilters:
    status: TicketStatus | None = None
    booking_id: str | None = None
    user_id: str | None = None
    driver_id: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


async def list_tickets(
    session: AsyncSession,
    *,
    actor: Actor,
    filters: TicketFilters,
    limit: int,
    starting_after: uuid.UUID | None = None,
) -> Sequence[Ticket]:
    """Newest first, only what ``actor`` may see; ``limit + 1`` rows for ``has_more``."""
    query = select(Ticket).limit(limit + 1)
    if actor.role is Role.CUSTOMER:
        query = query.where(Ticket.user_id == actor.id)
    elif actor.role is Role.DRIVER:
        query = query.where(Ticket.driver_id == actor.id)
    elif not actor.is_admin:
        return []
    conditions = {
        Ticket.status: filters.status.value if filters.status else None,
        Ticket.booking_id: filters.booking_id,
        Ticket.user_id: filters.user_id,
        Ticket.driver_id: filters.driver_id,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if filters.created_gte is not None:
        query = query.where(Ticket.created_at >= filters.created_gte)
    if filters.created_lt is not None:
        query = query.where(Ticket.created_at < filters.created_lt)
    after = await get(session, starting_after) if starting_after is not None else None
    return (await session.scalars(newest_first(query, Ticket, after))).all()


async def _transition(
    session: AsyncSession,
    ticket_id: uuid.UUID,
    target: TicketStatus,
    *,
    at: datetime | None = None,
    **values: Any,
) -> Ticket | None:
    """ACTIVE → ``target`` as a compare-and-set; None when the ticket was no longer ACTIVE."""
    check_transition(TicketStatus.ACTIVE, target)
    changed = await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.ACTIVE.value)
        .values(status=target.value, status_changed_at=at or func.now(), **values)
        .returning(Ticket.id)
    )
    if changed.scalar() is None:
        return None
    return await get(session, ticket_id)


async def _audit_transition(
    session: AsyncSession, ticket: Ticket, action: str, actor: Actor, **metadata: Any
) -> None:
    await audit.record(
        session,
        action=action,
        entity_type="ticket",
        entity_id=ticket.id,
        actor=actor,
        before={**ticket_view(ticket), "status": TicketStatus.ACTIVE.value},
        after=ticket_view(ticket),
        metadata=metadata,
    )


async def cancel(
    session: AsyncSession, ticket_id: uuid.UUID, *, actor: Actor, reason: str
) -> Ticket:
    """ACTIVE → CANCELLED; any other state is a conflict."""
    ticket = await get(session, ticket_id, for_update=True)
    check_transition(TicketStatus(ticket.status), TicketStatus.CANCELLED)
    ticket.status = TicketStatus.CANCELLED.value
    ticket.cancel_reason = reason
    ticket.status_changed_at = await _now(session)
    await session.flush()
    await _audit_transition(session, ticket, "ticket.cancelled", actor, reason=reason)
    return ticket


async def _now(session: AsyncSession) -> datetime:
    """The database's clock: one clock for every status change, whichever process writes."""
    now = await session.scalar(select(func.now()))
    assert now is not None
    return now


async def expire(session: AsyncSession, ticket_id: uuid.UUID, *, actor: Actor) -> TicketStatus:
    """ACTIVE → EXPIRED once the window has closed; returns the status the ticket ends in."""
    ticket = await get(session, ticket_id)
    if TicketStatus(ticket.status) is not TicketStatus.ACTIVE:
        return TicketStatus(ticket.status)
    if ticket.valid_until > await _now(session):
        raise ValidationError(
            f"Ticket {ticket_id} is valid until {ticket.valid_until.isoformat()}",
            code="ticket_not_due",
        )
    expired = await _transition(session, ticket_id, TicketStatus.EXPIRED)
    if expired is None:  # used or cancelled a moment ago
        return TicketStatus((await get(session, ticket_id)).status)
    await _audit_transition(session, expired, "ticket.expired", actor)
    return TicketStatus.EXPIRED


@dataclass(frozen=True)
class Verification:
    valid: bool
    reason: Reason
    ticket: Ticket | None
    log: TicketVerification
    flagged: bool = False


STATUS_REASONS = {
    TicketStatus.USED: Reason.ALREADY_USED,
    TicketStatus.CANCELLED: Reason.CANCELLED,
    TicketStatus.EXPIRED: Reason.EXPIRED,
}


async def verify(
    session: AsyncSession,
    *,
    payload: str,
    driver: Actor,
    driver_id: str,
    location: dict[str, Any] | None,
    ring: KeyRing,
    scanned_at: datetime | None = None,
    nonce: str | None = None,
) -> Verification:
    """Check a scanned payload and mark its ticket USED exactly once; log every attempt.

    Online scans are checked now; uploaded offline scans at the time they were made
    (``scanned_at``), each once per ``nonce``. The USED transition is one compare-and-set
    that also checks the driver, so concurrent scans of one ticket accept exactly one.
    """
    now = scanned_at or datetime.now(UTC)
    verdict = verify_offline(payload, ring.public_keys(), now=now)
    ticket: Ticket | None = None
    reason = verdict.reason
    flagged = False
    claims = verdict.claims
    if verdict.valid and claims is not None:
        ticket = await session.scalar(
            update(Ticket)
            .where(
                Ticket.id == claims.ticket_id,
                Ticket.status == TicketStatus.ACTIVE.value,
                Ticket.driver_id == driver_id,
            )
            .values(status=TicketStatus.USED.value, status_changed_at=now)
            .returning(Ticket)
        )
        if ticket is not None:
            reason = Reason.VALID
            await _audit_transition(
                session, ticket, "ticket.used", driver, source="offline" if nonce else "online"
            )
        else:
            ticket = await session.get(Ticket, claims.ticket_id, populate_existing=True)
            if ticket is None:
                reason = Reason.NOT_FOUND
            elif ticket.driver_id != driver_id:
                reason = Reason.WRONG_DRIVER
            else:
                reason = STATUS_REASONS[TicketStatus(ticket.status)]
                # A second scan of one ticket made while offline is worth a look.
                flagged = nonce is not None and reason is Reason.ALREADY_USED
    elif claims is not None:  # genuine but refused (window, revocation): say whose it is
        ticket = await session.get(Ticket, claims.ticket_id)
    log = TicketVerification(
        ticket_id=claims.ticket_id if claims else None,
        driver_id=driver_id,
        accepted=reason is Reason.VALID,
        reason=reason.value,
        location=location,
        source="offline" if nonce else "online",
        nonce=nonce,
        flagged=flagged,
        scanned_at=now,
    )
    session.add(log)
    await session.flush()
    return Verification(reason is Reason.VALID, reason, ticket, log, flagged)


@dataclass(frozen=True)
class Upload:
    log: TicketVerification
    used_now: Ticket | None  # the ticket this upload marked USED, if any


async def upload_offline_scan(
    session: AsyncSession,
    *,
    nonce: str,
    payload: str,
    driver: Actor,
    driver_id: str,
    scanned_at: datetime,
    location: dict[str, Any] | None,
    ring: KeyRing,
) -> Upload:
    """Record a scan made offline once per nonce; a repeated upload returns the first record."""
    by_nonce = select(TicketVerification).where(TicketVerification.nonce == nonce)
    existing = await session.scalar(by_nonce)
    if existing is not None:
        return Upload(existing, None)
    try:
        async with session.begin_nested():
            result = await verify(
                session,
                payload=payload,
                driver=driver,
                driver_id=driver_id,
                location=location,
                ring=ring,
                scanned_at=scanned_at,
                nonce=nonce,
            )
    except IntegrityError:
        # The same scan uploaded concurrently: the first upload's record stands.
        first = await session.scalar(by_nonce)
        if first is None:
            raise
        return Upload(first, None)
    return Upload(result.log, result.ticket if result.valid else None)


async def verifications(
    session: AsyncSession, ticket_id: uuid.UUID
) -> Sequence[TicketVerification]:
    query = (
        select(TicketVerification)
        .where(TicketVerification.ticket_id == ticket_id)
        .order_by(TicketVerification.id)
    )
    return (await session.scalars(query)).all()


async def revocations(
    session: AsyncSession, *, since: datetime | None, limit: int, starting_after: uuid.UUID | None
) -> Sequence[Ticket]:
    """Cancelled tickets, oldest change first, for scanners to sync while online."""
    query = (
        select(Ticket)
        .where(Ticket.status == TicketStatus.CANCELLED.value)
        .order_by(Ticket.status_changed_at, Ticket.id)
        .limit(limit + 1)
    )
    if since is not None:
        query = query.where(Ticket.status_changed_at >= since)
    if starting_after is not None:
        cursor = await get(session, starting_after)
        query = query.where(
            tuple_(Ticket.status_changed_at, Ticket.id)
            > tuple_(cursor.status_changed_at, cursor.id)
        )
    return (await session.scalars(query)).all()


async def purge_expired(session: AsyncSession, *, older_than: datetime, actor: Actor) -> int:
    """Delete tickets whose window closed before ``older_than`` and that can no longer change.

    Only tickets whose anchor batch is CONFIRMED go: a proof must exist for every ticket
    removed. Verification logs, the audit log and the proofs (``ticket_anchors``) are kept.
    """
    confirmed = select(AnchorBatch.id).where(AnchorBatch.status == "CONFIRMED")
    removed = await session.execute(
        delete(Ticket)
        .where(
            Ticket.valid_until < older_than,
            Ticket.status != TicketStatus.ACTIVE.value,
            Ticket.anchor_batch_id.in_(confirmed),
        )
        .returning(Ticket.id)
    )
    count = len(removed.all())
    if count:
        await audit.record(
            session,
            action="tickets.purged",
            entity_type="ticket",
            entity_id="*",
            actor=actor,
            metadata={"count": count, "older_than": older_than.isoformat()},
        )
    return count

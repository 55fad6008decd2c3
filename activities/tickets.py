"""Ticket activities: each one transaction over ``services.tickets``."""

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from domain.actors import Actor, Role
from domain.errors import Conflict
from services import tickets
from workflows.types import (
    PurgeInput,
    PurgeResult,
    TicketActivityInput,
    TicketActivityResult,
)


class TicketActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, retention: timedelta
    ) -> None:
        self.sessionmaker = sessionmaker
        self.retention = retention

    @activity.defn(name="expire_ticket")
    async def expire_ticket(self, request: TicketActivityInput) -> TicketActivityResult:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                status = await tickets.expire(
                    session, request.ticket_id, actor=Actor(request.actor, Role.SYSTEM)
                )
        return TicketActivityResult(status=status.value)

    @activity.defn(name="cancel_ticket")
    async def cancel_ticket(self, request: TicketActivityInput) -> TicketActivityResult:
        """Cancel if still ACTIVE; otherwise report the state it is in (nothing to undo)."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                try:
                    ticket = await tickets.cancel(
                        session,
                        request.ticket_id,
                        actor=Actor(request.actor, Role.SYSTEM),
                        reason=request.reason or "cancelled by an operator",
                    )
                except Conflict as used_or_expired:
                    # Nothing to cancel: the workflow ends in the state the ticket reached.
                    return TicketActivityResult(status=str(used_or_expired.details["status"]))
        return TicketActivityResult(status=ticket.status)

    @activity.defn(name="purge_expired_tickets")
    async def purge_expired_tickets(self, _: PurgeInput) -> PurgeResult:
        async with self.sessionmaker() as session, session.begin():
            deleted = await tickets.purge_expired(
                session,
                older_than=datetime.now(UTC) - self.retention,
                actor=Actor("tickets-cleanup", Role.SYSTEM),
            )
        return PurgeResult(deleted=deleted)

"""Tickets: filters (status, holder, driver, booking), search by id, and a ticket's page with
its verification log (every scan, accepted or refused) and its anchoring proof, read through
the API's own proof endpoint (``GET /api/v1/tickets/{id}/proof``), so both say the same."""

import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.console.auth import ConsoleUser
from api.console.inputs import check_text
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    htmx_target,
    list_context,
    parse_id,
    render,
    text_filter,
)
from api.deps import Session
from api.routers.tickets import ticket_proof
from domain.errors import NotFound, ValidationError
from domain.tickets.lifecycle import TicketStatus
from models.tickets import Ticket
from services import tickets

router = console_router()


def workflow_id(ticket_id: uuid.UUID) -> str:
    return f"ticket-{ticket_id}"


@dataclass
class Filters(PageFilters):
    status: str | None = None
    user_id: str | None = None
    driver_id: str | None = None
    booking_id: str | None = None
    id: str | None = None


def row_context(ticket: Ticket) -> dict[str, object]:
    return {"t": ticket, "workflow_id": workflow_id(ticket.id)}


@router.get("/tickets")
async def tickets_page(
    request: Request,
    session: Session,
    actor: ConsoleUser,
    status: str | None = None,
    user_id: str | None = None,
    driver_id: str | None = None,
    booking_id: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        status=text_filter(status),
        user_id=text_filter(user_id),
        driver_id=text_filter(driver_id),
        booking_id=text_filter(booking_id),
        id=text_filter(id),
    )
    context = list_context(
        "tickets",
        filters,
        after,
        statuses=[s.value for s in TicketStatus],
    )
    status_code = 200
    try:
        check_text(
            user_id=filters.user_id, driver_id=filters.driver_id, booking_id=filters.booking_id
        )
        if filters.status and filters.status not in {s.value for s in TicketStatus}:
            raise ValidationError(f"{filters.status!r} is not a ticket status", param="status")
        ticket_id = parse_id(filters.id, "a ticket", prefix="ticket-")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found: list[Ticket]
        if ticket_id is not None:
            try:
                found = [await tickets.get_visible(session, ticket_id, actor)]
            except NotFound:
                found = []
        else:
            found = list(
                await tickets.list_tickets(
                    session,
                    actor=actor,
                    filters=tickets.TicketFilters(
                        status=TicketStatus(filters.status) if filters.status else None,
                        booking_id=filters.booking_id,
                        user_id=filters.user_id,
                        driver_id=filters.driver_id,
                    ),
                    limit=PAGE_SIZE,
                    starting_after=after,
                )
            )
        rows = found[:PAGE_SIZE]
        context["rows"] = [row_context(t) for t in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/tickets{filters.query(after=str(rows[-1].id))}"
    template = "tickets/_results.html" if htmx_target(request) == "results" else "tickets/page.html"
    return render(request, template, context, active="tickets", status=status_code)


@router.get("/tickets/{ticket_id}")
async def ticket_page(
    request: Request, ticket_id: uuid.UUID, session: Session, actor: ConsoleUser
) -> HTMLResponse:
    """The ticket, its verification log and its anchoring proof (the API's answer)."""
    ticket = await tickets.get_visible(session, ticket_id, actor)
    proof = await ticket_proof(ticket_id, request, session, actor)
    context = {
        "t": ticket,
        "workflow_id": workflow_id(ticket.id),
        "verifications": await tickets.verifications(session, ticket_id),
        "proof": proof,
    }
    return render(request, "tickets/detail.html", context, active="tickets")

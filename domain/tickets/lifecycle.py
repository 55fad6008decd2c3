"""A ticket's states and the only transitions between them."""

from enum import StrEnum

from domain.errors import Conflict


class TicketStatus(StrEnum):
    ACTIVE = "ACTIVE"
    USED = "USED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.ACTIVE: frozenset(
        {TicketStatus.USED, TicketStatus.CANCELLED, TicketStatus.EXPIRED}
    ),
    TicketStatus.USED: frozenset(),
    TicketStatus.CANCELLED: frozenset(),
    TicketStatus.EXPIRED: frozenset(),
}


def check_transition(current: TicketStatus, target: TicketStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise Conflict(
            f"A {current.value} ticket cannot become {target.value}",
            code="ticket_not_active",
            status=current.value,
        )

"""Inputs and outputs of workflows and activities: one model each, so fields can be added."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


class PurgeInput(BaseModel):
    """Empty today; a model so a later field (e.g. a batch size) stays compatible."""


class PurgeResult(BaseModel):
    deleted: int


class TicketInput(BaseModel):
    ticket_id: UUID
    booking_id: str
    driver_id: str
    valid_until: datetime


class TicketResult(BaseModel):
    ticket_id: UUID
    status: str


class CancelTicket(BaseModel):
    """Argument of the ``cancel`` signal an admin sends from the Temporal UI."""

    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class TicketStatusChanged(BaseModel):
    """The API changed the row (used, cancelled): the workflow stops waiting."""

    status: str


class TicketActivityInput(BaseModel):
    ticket_id: UUID
    reason: str | None = None
    actor: str = "system"


class TicketActivityResult(BaseModel):
    status: str

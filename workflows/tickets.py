"""A ticket's lifecycle: ACTIVE until used, cancelled, or its window closes."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import search_attributes as sa
from workflows.types import (
    CancelTicket,
    PurgeInput,
    PurgeResult,
    TicketActivityInput,
    TicketInput,
    TicketResult,
    TicketStatusChanged,
)

with workflow.unsafe.imports_passed_through():
    from activities.tickets import TicketActivities

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["NotFound"],
)
ACTIVITY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RETRY,
}
FINAL = frozenset({"USED", "CANCELLED", "EXPIRED"})


@workflow.defn(name="Ticket")
class TicketWorkflow:
    """``ticket-{id}``. The row is the record; this process owns the expiry timer and the
    operator's ``cancel`` signal. The API tells it of changes it made with ``status_changed``."""

    def __init__(self) -> None:
        self._status = "ACTIVE"
        self._cancel: CancelTicket | None = None
        self._ticket: TicketInput | None = None

    @workflow.run
    async def run(self, ticket: TicketInput) -> TicketResult:
        self._ticket = ticket
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(ticket.ticket_id)),
                sa.ENTITY_TYPE.value_set("ticket"),
                sa.BOOKING_ID.value_set(ticket.booking_id),
                sa.DRIVER_ID.value_set(ticket.driver_id),
                sa.STATUS.value_set(self._status),
            ]
        )
        remaining = max(ticket.valid_until - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: self._status in FINAL or self._cancel is not None, timeout=remaining
            )
        except TimeoutError:
            expired = await workflow.execute_activity_method(
                TicketActivities.expire_ticket,
                TicketActivityInput(ticket_id=ticket.ticket_id),
                **ACTIVITY_OPTIONS,
            )
            self._status = expired.status
        if self._status not in FINAL and self._cancel is not None:
            cancelled = await workflow.execute_activity_method(
                TicketActivities.cancel_ticket,
                TicketActivityInput(
                    ticket_id=ticket.ticket_id,
                    reason=self._cancel.reason,
                    actor=f"temporal-ui:{self._cancel.by}",
                ),
                **ACTIVITY_OPTIONS,
            )
            self._status = cancelled.status
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._status)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return TicketResult(ticket_id=ticket.ticket_id, status=self._status)

    @workflow.signal
    def cancel(self, request: CancelTicket) -> None:
        """Operator action from the Temporal UI: cancel the ticket if it is still ACTIVE."""
        self._cancel = request

    @workflow.signal
    def status_changed(self, change: TicketStatusChanged) -> None:
        if change.status in FINAL:
            self._status = change.status

    @workflow.query
    def status(self) -> dict[str, object]:
        ticket = self._ticket
        return {
            "ticket_id": str(ticket.ticket_id) if ticket else None,
            "status": self._status,
            "valid_until": ticket.valid_until.isoformat() if ticket else None,
            "cancel_requested": self._cancel.reason if self._cancel else None,
        }


@workflow.defn(name="PurgeExpiredTickets")
class PurgeExpiredTicketsWorkflow:
    """Daily: removes tickets whose window closed longer ago than the retention."""

    def __init__(self) -> None:
        self._deleted: int | None = None

    @workflow.run
    async def run(self, request: PurgeInput) -> PurgeResult:
        result = await workflow.execute_activity_method(
            TicketActivities.purge_expired_tickets,
            request,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        self._deleted = result.deleted
        return result

    @workflow.query
    def status(self) -> dict[str, object]:
        done = self._deleted is not None
        return {"status": "completed" if done else "running", "deleted": self._deleted}

"""Delivering stored Stripe events to the workflows they concern, as the ``stripe_event``
signal, and recording how it went. Runs on the main task queue: it needs the database and
the Temporal client, not Stripe."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import business_errors
from domain.actors import Actor, Role
from models.payments import StripeEvent
from services import stripe_events
from services.stripe_events import EventStatus, Target, TargetNotReady, stripe_object
from workflows.types import (
    DeadLetterStripeEventInput,
    DeliverStripeEventInput,
    StripeEventSignal,
    StripeEventState,
)

log = logging.getLogger(__name__)

DELIVERY_ACTOR = Actor("stripe-event-delivery", Role.SYSTEM)
SIGNAL = "stripe_event"
WORKFLOW_CLOSED = "workflow closed"


def state_of(event: StripeEvent) -> StripeEventState:
    return StripeEventState(
        status=event.status,
        attempts=event.attempts,
        delivery=event.delivery,
        outcome=event.outcome,
        last_error=event.last_error,
    )


class StripeEventActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], client: Client) -> None:
        self.sessionmaker = sessionmaker
        self.client = client

    @activity.defn(name="deliver_stripe_event")
    async def deliver(self, request: DeliverStripeEventInput) -> StripeEventState:
        """Route the event and signal its workflow; PROCESSED, or IGNORED if it is not
        Tollgate's. A target not there yet (row or workflow) raises ``TargetNotReady``, which
        is retried. Each failed attempt is counted on the row before it is raised: under a
        server-side retry policy the workflow never sees single attempts."""
        with business_errors():
            try:
                return await self._deliver(request)
            except Exception as failed:
                await self._count_failure(request.event_id, f"{type(failed).__name__}: {failed}")
                raise

    async def _deliver(self, request: DeliverStripeEventInput) -> StripeEventState:
        async with self.sessionmaker() as session, session.begin():
            event = await stripe_events.get(session, request.event_id)
            if event.status != EventStatus.RECEIVED.value:
                return state_of(event)  # an attempt that finished but whose answer was lost
            target = await stripe_events.route(session, event.id)
            if target is None:
                event = await stripe_events.mark_ignored(session, event.id, actor=DELIVERY_ACTOR)
                return state_of(event)
            status = stripe_object(event.payload).get("status")
            argument = StripeEventSignal(
                event_id=event.id,
                type=event.type,
                object_id=event.object_id,
                status=status if isinstance(status, str) else None,
            )
        # No transaction is held during the call. If marking fails after the signal, the retry
        # signals again: signals are at least once, and carry the event id to drop a repeat.
        outcome = await self._signal(target, argument)
        async with self.sessionmaker() as session, session.begin():
            event = await stripe_events.mark_processed(
                session, request.event_id, outcome, actor=DELIVERY_ACTOR
            )
            return state_of(event)

    async def _signal(self, target: Target, argument: StripeEventSignal) -> str:
        handle = self.client.get_workflow_handle(target.workflow_id)
        try:
            await handle.signal(SIGNAL, argument)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            # Temporal answers NOT_FOUND both for a workflow that never started and for one
            # that has finished; only the description tells them apart.
            try:
                described = await handle.describe()
            except RPCError as missing:
                if missing.status is RPCStatusCode.NOT_FOUND:
                    raise TargetNotReady(f"workflow {target.workflow_id} has not started") from exc
                raise
            if described.status is WorkflowExecutionStatus.RUNNING:
                raise  # a new run began meanwhile: the retry signals it
            log.info("Stripe event %s: %s has closed", argument.event_id, target.workflow_id)
            return WORKFLOW_CLOSED
        return f"signalled {target.workflow_id}"

    async def _count_failure(self, event_id: str, error: str) -> None:
        """Counts a failed delivery attempt and keeps its error, in its own transaction."""
        try:
            async with self.sessionmaker() as session, session.begin():
                await stripe_events.record_failure(session, event_id, error, actor=DELIVERY_ACTOR)
        except Exception:
            # The attempt's own error is what matters to the retry policy: keep raising that.
            log.exception("could not count a failed delivery of Stripe event %s", event_id)

    @activity.defn(name="dead_letter_stripe_event")
    async def dead_letter(self, request: DeadLetterStripeEventInput) -> StripeEventState:
        """DEAD with the last error, once the delivery's retries ran out or it was refused."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                event = await stripe_events.dead_letter(
                    session,
                    request.event_id,
                    request.error,
                    delivery=request.delivery,
                    actor=DELIVERY_ACTOR,
                )
                return state_of(event)

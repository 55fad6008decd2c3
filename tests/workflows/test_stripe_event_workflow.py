"""The Stripe event delivery workflow on the time-skipping server, with the real activities on
the test's own database; a stub named like the payment workflow (``payment-{id}``, signal
``stripe_event``) stands for the target. Backoffs run in skipped time."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from domain.actors import Actor, Role
from models.payments import StripeEvent
from services import stripe_events
from tests.services.test_stripe_events_service import add_payment, intent, stripe_event
from worker import stripe_event_activities
from workflows.stripe_events import StripeEventDeliveryWorkflow
from workflows.types import StripeEventDeliveryInput, StripeEventDeliveryStatus, StripeEventSignal

OPS = Actor("ops-1", Role.PLATFORM_ADMIN)
INITIAL_SECONDS = 5


@workflow.defn(name="Payment")
class StubPaymentWorkflow:
    """Takes ``stripe_event`` signals until it has ``wanted`` of them (0: ends at once)."""

    def __init__(self) -> None:
        self.events: list[StripeEventSignal] = []

    @workflow.run
    async def run(self, wanted: int) -> list[StripeEventSignal]:
        await workflow.wait_condition(lambda: len(self.events) >= wanted)
        return self.events

    @workflow.signal(name="stripe_event")
    def stripe_event(self, event: StripeEventSignal) -> None:
        self.events.append(event)


@dataclass
class Harness:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    queue: str
    target_queue: str

    async def payment_event(self, *, stored_payment: bool = True) -> tuple[uuid.UUID, str]:
        """A committed payment (unless not ``stored_payment``) and an event naming it."""
        async with self.db() as session, session.begin():
            payment_id = (await add_payment(session)).id if stored_payment else uuid.uuid4()
            event = stripe_event(
                "payment_intent.amount_capturable_updated",
                intent(f"pi_{uuid.uuid4().hex[:12]}", {"tollgate_payment_id": str(payment_id)}),
            )
            await stripe_events.store(session, event)
        return payment_id, event["id"]

    async def start_target(self, payment_id: uuid.UUID, wanted: int) -> WorkflowHandle[Any, Any]:
        return await self.env.client.start_workflow(
            "Payment",
            wanted,
            id=f"payment-{payment_id}",
            task_queue=self.target_queue,
            result_type=list[StripeEventSignal],
        )

    async def deliver(
        self, event_id: str, delivery: int = 0, max_attempts: int = 3
    ) -> StripeEventDeliveryStatus:
        return await self.env.client.execute_workflow(
            StripeEventDeliveryWorkflow.run,
            StripeEventDeliveryInput(
                event_id=event_id,
                delivery=delivery,
                max_attempts=max_attempts,
                initial_interval_seconds=INITIAL_SECONDS,
                maximum_interval_seconds=600,
            ),
            id=f"stripe-event-{event_id}-{delivery}",
            task_queue=self.queue,
        )

    async def row(self, event_id: str) -> StripeEvent:
        async with self.db() as session:
            return await stripe_events.get(session, event_id)


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment, db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Harness]:
    client = time_skipping_env.client
    queue, target_queue = f"stripe-events-{uuid.uuid4()}", f"payments-{uuid.uuid4()}"
    async with (
        Worker(
            client,
            task_queue=queue,
            workflows=[StripeEventDeliveryWorkflow],
            activities=stripe_event_activities(db, client),
        ),
        # The stub lives in this test module, which the sandbox would have to re-import.
        Worker(
            client,
            task_queue=target_queue,
            workflows=[StubPaymentWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        yield Harness(time_skipping_env, db, queue, target_queue)


async def test_a_delivered_event_signals_its_payment_and_is_processed(harness: Harness) -> None:
    payment_id, event_id = await harness.payment_event()
    target = await harness.start_target(payment_id, wanted=1)

    result = await harness.deliver(event_id)

    assert (result.status, result.outcome) == ("processed", f"signalled payment-{payment_id}")
    [signal] = await target.result()
    assert signal.event_id == event_id and signal.type == "payment_intent.amount_capturable_updated"
    assert signal.status == "requires_capture" and signal.object_id is not None
    row = await harness.row(event_id)
    assert (row.status, row.attempts, row.payment_id) == ("processed", 0, payment_id)


async def test_a_missing_target_is_retried_with_backoff_dead_lettered_then_retried(
    harness: Harness,
) -> None:
    payment_id, event_id = await harness.payment_event()
    started = await harness.env.get_current_time()

    dead = await harness.deliver(event_id, max_attempts=4)

    waited = await harness.env.get_current_time() - started
    # Three waits between four attempts, doubling from the initial interval.
    assert waited >= timedelta(seconds=INITIAL_SECONDS * (1 + 2 + 4))
    expected_error = f"TargetNotReady: workflow payment-{payment_id} has not started"
    assert (dead.status, dead.last_error) == ("dead", expected_error)
    row = await harness.row(event_id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 4, expected_error)

    # The payment's workflow exists now; an admin retries the dead letter.
    target = await harness.start_target(payment_id, wanted=1)
    async with harness.db() as session, session.begin():
        retried = await stripe_events.retry(session, event_id, OPS)
    result = await harness.deliver(event_id, delivery=retried.delivery)

    assert (result.status, result.delivery) == ("processed", 1)
    assert [signal.event_id for signal in await target.result()] == [event_id]
    row = await harness.row(event_id)
    assert (row.status, row.delivery, row.attempts) == ("processed", 1, 4)


async def test_a_payment_row_not_stored_yet_is_retried_then_dead(harness: Harness) -> None:
    payment_id, event_id = await harness.payment_event(stored_payment=False)

    dead = await harness.deliver(event_id, max_attempts=2)

    assert dead.status == "dead"
    assert dead.last_error == (
        f"TargetNotReady: payment {payment_id} named by the event is not stored yet"
    )
    assert (await harness.row(event_id)).attempts == 2


async def test_a_closed_target_workflow_makes_the_event_processed(harness: Harness) -> None:
    payment_id, event_id = await harness.payment_event()
    target = await harness.start_target(payment_id, wanted=0)
    assert await target.result() == []

    result = await harness.deliver(event_id)

    assert (result.status, result.outcome) == ("processed", "workflow closed")
    assert (await harness.row(event_id)).attempts == 0


async def test_an_event_that_is_not_tollgates_is_ignored(harness: Harness) -> None:
    event = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    async with harness.db() as session, session.begin():
        await stripe_events.store(session, event)

    result = await harness.deliver(event["id"])

    assert (result.status, result.outcome) == ("ignored", stripe_events.NOT_TOLLGATES)
    assert (await harness.row(event["id"])).status == "ignored"

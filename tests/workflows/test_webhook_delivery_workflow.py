"""Webhook deliveries on the time-skipping server, with the real activities on the test's own
database and a real HTTP receiver that checks every signature with ``standardwebhooks``.
The retry schedule's waits (5 s to 10 h) run in skipped time; the attempts' times are the
workflow's, so they are asserted in the server's clock."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import ScheduleOverlapPolicy, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import schedules
from domain.webhooks import DEFAULT_RETRY_SCHEDULE
from models.webhooks import WebhookDelivery, WebhookEndpoint
from services import webhooks
from settings import Settings
from tests.fixtures.webhook_receiver import Receiver, webhook_receiver
from tests.services.test_webhooks_service import OPS, new_endpoint, new_event, now
from worker import WORKFLOW_RUNNER, webhook_activities
from workflows.types import (
    CancelWebhookDelivery,
    RetryWebhookDelivery,
    WebhookDeliveryInput,
    WebhookDeliveryStatus,
    WebhookDispatchInput,
    WebhookSequenceInput,
    WebhookSequenceStatus,
)
from workflows.webhooks import (
    WebhookDeliveryWorkflow,
    WebhookDispatcherWorkflow,
    WebhookOrderedDeliveryWorkflow,
)

# Activities take real milliseconds between the skipped waits.
SLACK = timedelta(seconds=3)


@dataclass
class Harness:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    queue: str
    receiver: Receiver

    async def endpoint(
        self, answers: list[Any], *, schedule: list[int] | None = None, ordered: bool = False
    ) -> tuple[WebhookEndpoint, str]:
        """An endpoint whose receiver answers ``answers`` and verifies its signatures."""
        path = f"/hooks/{uuid.uuid4().hex[:8]}"
        async with self.db() as session, session.begin():
            endpoint = await new_endpoint(
                session, url=self.receiver.url(path), schedule=schedule, ordered=ordered
            )
        self.receiver.script(path, answers, endpoint.secret)
        return endpoint, path

    async def delivery(self, endpoint: WebhookEndpoint, **event: Any) -> WebhookDelivery:
        async with self.db() as session, session.begin():
            await new_event(session, **event)
            created = await webhooks.dispatch(session, limit=100, at=now())
        [delivery] = [d for d in created.deliveries if d.endpoint_id == endpoint.id]
        return delivery

    async def start(
        self, endpoint: WebhookEndpoint, delivery: WebhookDelivery
    ) -> WorkflowHandle[WebhookDeliveryWorkflow, WebhookDeliveryStatus]:
        return await self.env.client.start_workflow(
            WebhookDeliveryWorkflow.run,
            WebhookDeliveryInput(
                delivery_id=delivery.id,
                event_id=delivery.event_id,
                retry_schedule_seconds=endpoint.retry_schedule_seconds,
                timeout_seconds=5,
            ),
            id=webhooks.delivery_workflow_id(delivery.id),
            task_queue=self.queue,
        )

    async def deliver(self, endpoint: WebhookEndpoint, **event: Any) -> WebhookDeliveryStatus:
        handle = await self.start(endpoint, await self.delivery(endpoint, **event))
        return await handle.result()

    async def dispatch_once(self) -> None:
        """One pass of the dispatcher (``run_seconds=0``): deliveries made and started."""
        await self.env.client.execute_workflow(
            WebhookDispatcherWorkflow.run,
            WebhookDispatchInput(task_queue=self.queue, run_seconds=0, timeout_seconds=5),
            id=f"webhook-dispatcher-{uuid.uuid4()}",
            task_queue=self.queue,
        )

    async def row(self, delivery_id: uuid.UUID) -> WebhookDelivery:
        async with self.db() as session:
            return await webhooks.get_delivery(session, delivery_id)

    async def endpoint_row(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        async with self.db() as session:
            return await webhooks.get_endpoint(session, endpoint_id)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    receiver: Receiver,
) -> AsyncIterator[Harness]:
    client = time_skipping_env.client
    queue = f"webhooks-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[
            WebhookDeliveryWorkflow,
            WebhookOrderedDeliveryWorkflow,
            WebhookDispatcherWorkflow,
        ],
        activities=webhook_activities(db, client),
        workflow_runner=WORKFLOW_RUNNER,
    ):
        yield Harness(time_skipping_env, db, queue, receiver)


def offsets(times: list[datetime]) -> list[timedelta]:
    return [moment - times[0] for moment in times]


def assert_close(actual: list[timedelta], expected: list[int]) -> None:
    assert len(actual) == len(expected), (actual, expected)
    for got, seconds in zip(actual, expected, strict=True):
        assert timedelta(seconds=seconds) <= got <= timedelta(seconds=seconds) + SLACK, (
            actual,
            expected,
        )


async def test_retries_follow_the_schedule_then_the_delivery_is_dead_lettered(
    harness: Harness,
) -> None:
    endpoint, path = await harness.endpoint([500])

    result = await harness.deliver(endpoint)

    # Attempts at 0, 5 s, 5 m, 30 m, 2 h, 5 h, 10 h and 10 h after each previous one.
    expected, elapsed = [0], 0
    for wait in DEFAULT_RETRY_SCHEDULE:
        elapsed += wait
        expected.append(elapsed)
    assert_close(offsets(result.attempted_at), expected)
    assert (result.status, result.attempts, result.last_status_code) == ("dead_lettered", 8, 500)
    row = await harness.row(result.delivery_id)
    assert (row.status, row.attempt_count, row.last_error) == ("dead_lettered", 8, "HTTP 500")
    async with harness.db() as session:
        logged = await webhooks.attempts(session, row.id)
    assert [a.number for a in logged] == list(range(1, 9))
    assert {a.status_code for a in logged} == {500}
    requests = harness.receiver.at(path)
    assert len(requests) == 8 and all(request.verified for request in requests)
    # Every attempt carries the same webhook-id, so a receiver can drop repeats.
    assert {request.headers["webhook-id"] for request in requests} == {row.message_id}
    # Failing for about 31 hours is not yet failing for 5 days.
    assert (await harness.endpoint_row(endpoint.id)).status == "enabled"


async def test_success_on_the_third_attempt_ends_succeeded(harness: Harness) -> None:
    endpoint, path = await harness.endpoint([500, 503, 200])

    result = await harness.deliver(endpoint)

    assert (result.status, result.attempts, result.last_status_code) == ("succeeded", 3, 200)
    assert_close(offsets(result.attempted_at), [0, 5, 305])
    row = await harness.row(result.delivery_id)
    assert (row.status, row.attempt_count, row.delivered_at is not None) == ("succeeded", 3, True)
    event = harness.receiver.at(path)[-1].event
    assert (event["type"], event["id"], event["data"]["amount"]) == (
        "invoice.paid",
        row.message_id,
        100,
    )
    assert (await harness.endpoint_row(endpoint.id)).failing_since is None


async def test_retry_after_lengthens_the_wait(harness: Harness) -> None:
    endpoint, _ = await harness.endpoint(
        [(429, {"Retry-After": "3600"}), (503, {"Retry-After": "1"}), 200], schedule=[5, 300]
    )

    result = await harness.deliver(endpoint)

    # An hour as asked instead of 5 s; then 5 minutes, as Retry-After never shortens a wait.
    assert_close(offsets(result.attempted_at), [0, 3600, 3900])
    assert result.status == "succeeded"


async def test_410_gone_disables_the_endpoint_and_stops(harness: Harness) -> None:
    endpoint, path = await harness.endpoint([410])
    waiting = await harness.delivery(endpoint)

    result = await harness.deliver(endpoint)

    assert (result.status, result.attempts, result.last_error) == (
        "cancelled",
        1,
        webhooks.GONE_REASON,
    )
    row = await harness.endpoint_row(endpoint.id)
    assert (row.status, row.disabled_reason) == ("disabled", webhooks.GONE_REASON)
    # A delivery of the same endpoint still to be made is cancelled without a request.
    later = await (await harness.start(endpoint, waiting)).result()
    assert (later.status, later.attempts) == ("cancelled", 0) and later.last_error is not None
    assert later.last_error.startswith("endpoint disabled")
    assert len(harness.receiver.at(path)) == 1


async def _attempts(
    handle: WorkflowHandle[WebhookDeliveryWorkflow, WebhookDeliveryStatus], count: int
) -> WebhookDeliveryStatus:
    for _ in range(400):
        status = await handle.query(WebhookDeliveryWorkflow.status)
        if status.attempts >= count and status.status != "pending":
            return status
        await asyncio.sleep(0.025)
    raise AssertionError(f"{handle.id} never made {count} attempts")


async def test_retry_now_skips_the_wait_and_cancel_stops(harness: Harness) -> None:
    endpoint, path = await harness.endpoint([500], schedule=[3600, 3600])
    handle = await harness.start(endpoint, await harness.delivery(endpoint))
    await _attempts(handle, 1)

    await handle.signal(WebhookDeliveryWorkflow.retry_now, RetryWebhookDelivery(by="ops"))
    second = await _attempts(handle, 2)
    await handle.signal(WebhookDeliveryWorkflow.cancel, CancelWebhookDelivery(reason="enough"))
    result = await handle.result()

    assert offsets(second.attempted_at)[1] < timedelta(minutes=1)
    assert (result.status, result.attempts, result.last_error) == ("cancelled", 2, "enough")
    assert len(harness.receiver.at(path)) == 2


async def test_ordered_delivery_keeps_each_entitys_event_order(harness: Harness) -> None:
    endpoint, path = await harness.endpoint([200], schedule=[5, 5], ordered=True)
    entity, other = str(uuid.uuid4()), str(uuid.uuid4())
    async with harness.db() as session, session.begin():
        events = [
            await new_event(session, "invoice.created", entity_id=entity),
            await new_event(session, "invoice.finalized", entity_id=entity),
            await new_event(session, "invoice.paid", entity_id=entity),
            await new_event(session, "invoice.created", entity_id=other),
        ]
    # The first event is refused once: the second and third must wait for its retry.
    harness.receiver.script(path, [200], endpoint.secret, {f"msg_{events[0].id}": [500, 200]})

    await harness.dispatch_once()
    sequence = harness.env.client.get_workflow_handle_for(
        WebhookOrderedDeliveryWorkflow.run,
        webhooks.sequence_workflow_id(endpoint.id, "invoice", entity),
    )
    done: WebhookSequenceStatus = await sequence.result()

    assert done.delivered == 3 and done.queued == []
    of_entity = [
        request.event["id"]
        for request in harness.receiver.at(path)
        if request.event["entity"]["id"] == entity
    ]
    first, second, third = (f"msg_{event.id}" for event in events[:3])
    assert of_entity == [first, first, second, third]
    other_sequence = harness.env.client.get_workflow_handle(
        webhooks.sequence_workflow_id(endpoint.id, "invoice", other)
    )
    await other_sequence.result()
    async with harness.db() as session:
        rows = await webhooks.list_deliveries(session, limit=10, endpoint_id=endpoint.id)
    assert {row.status for row in rows} == {"succeeded"} and len(rows) == 4
    assert all(row.workflow_started_at is not None for row in rows)

    # Enqueued again (a dispatcher that crashed before marking it started): the new run of
    # the sequence finds the delivery's workflow already ran, and sends nothing.
    sent = len(harness.receiver.at(path))
    delivered = next(row for row in rows if row.entity_id == entity)
    again = await harness.env.client.start_workflow(
        WebhookOrderedDeliveryWorkflow.run,
        WebhookSequenceInput(endpoint_id=endpoint.id, entity_type="invoice", entity_id=entity),
        id=sequence.id,
        task_queue=harness.queue,
        start_signal="enqueue",
        start_signal_args=[
            WebhookDeliveryInput(delivery_id=delivered.id, event_id=delivered.event_id)
        ],
    )
    assert (await again.result()).delivered == 1
    assert len(harness.receiver.at(path)) == sent


def test_the_dispatcher_and_the_purge_are_schedules() -> None:
    settings = Settings(_env_file=None, webhook_dispatch_interval_seconds=1.5)
    jobs = {job.schedule_id: job for job in schedules.jobs(settings)}

    dispatcher = jobs[schedules.WEBHOOK_DISPATCHER_SCHEDULE]
    assert dispatcher.overlap is ScheduleOverlapPolicy.BUFFER_ONE
    assert dispatcher.spec.intervals[0].every == timedelta(minutes=1)
    assert (dispatcher.argument.interval_seconds, dispatcher.argument.run_seconds) == (1.5, 60)
    assert dispatcher.argument.task_queue == settings.task_queue
    assert jobs["webhook-logs-purge"].argument.retention_days == 90


async def test_a_receiver_verifies_real_deliveries_with_standardwebhooks(
    harness: Harness,
) -> None:
    """The whole path: an outbox event, the dispatcher, the delivery workflow, and a receiver
    that checks the signature with the reference library, also across a secret rotation."""
    endpoint, path = await harness.endpoint([200])
    async with harness.db() as session, session.begin():
        paid = await new_event(session, "invoice.paid", note="first")
        test = await webhooks.send_test(session, endpoint.id, actor=OPS, at=now())

    await harness.dispatch_once()
    async with harness.db() as session:
        [delivery] = await webhooks.list_deliveries(
            session, limit=10, endpoint_id=endpoint.id, event_type="invoice.paid"
        )
    for delivery_id in (test.id, delivery.id):
        await harness.env.client.get_workflow_handle(
            webhooks.delivery_workflow_id(delivery_id)
        ).result()
    old_secret = endpoint.secret
    async with harness.db() as session, session.begin():
        await webhooks.rotate_secret(session, endpoint.id, actor=OPS, at=now())
        await new_event(session, "invoice.voided")
    # The receiver still knows only the old secret: the second signature keeps it working.
    harness.receiver.script(path, [200], old_secret)
    await harness.dispatch_once()
    async with harness.db() as session:
        [voided] = await webhooks.list_deliveries(
            session, limit=10, endpoint_id=endpoint.id, event_type="invoice.voided"
        )
    result = await harness.env.client.get_workflow_handle(
        webhooks.delivery_workflow_id(voided.id), result_type=WebhookDeliveryStatus
    ).result()

    assert result.status == "succeeded"
    requests = harness.receiver.at(path)
    assert sorted(request.event["type"] for request in requests) == [
        "invoice.paid",
        "invoice.voided",
        "webhook.test",
    ]
    assert all(request.verified for request in requests)
    assert len(requests[-1].headers["webhook-signature"].split(" ")) == 2
    by_type = {request.event["type"]: request for request in requests}
    assert by_type["invoice.paid"].headers["webhook-id"] == f"msg_{paid.id}"
    assert by_type["invoice.paid"].event["data"]["note"] == "first"

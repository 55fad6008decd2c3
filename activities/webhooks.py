"""Outbound webhooks: dispatching outbox events into deliveries and starting their workflows,
one signed HTTP attempt, recording it, and purging old logs.

The HTTP attempt reads the delivery and its endpoint (the secret never enters a workflow's
history), signs with the current time (receivers refuse stale timestamps) and returns what
happened; recording it is a separate transaction, so no transaction is held during the call.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.errors import business_errors
from domain import webhooks as rules
from domain.actors import Actor, Role
from integrations.webhook_http import WebhookSender
from integrations.webhook_signing import sign
from models.webhooks import WebhookDelivery, WebhookEndpoint
from services import webhooks
from workflows.types import (
    PurgeResult,
    WebhookCancelInput,
    WebhookDeliveryInput,
    WebhookDeliveryState,
    WebhookDispatchInput,
    WebhookDispatchResult,
    WebhookPurgeInput,
    WebhookRecordInput,
    WebhookSendInput,
    WebhookSendResult,
    WebhookSequenceInput,
)

log = logging.getLogger(__name__)

PURGE_BATCH = 5_000


def state_of(delivery: WebhookDelivery) -> WebhookDeliveryState:
    return WebhookDeliveryState(
        status=delivery.status,
        attempt_count=delivery.attempt_count,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
    )


def is_sequenced(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> bool:
    """Events of an ordered endpoint go through their entity's sequence; replays and test
    events, asked for explicitly, go at once."""
    return (
        endpoint.ordered and delivery.replay_of is None and delivery.event_type != rules.TEST_EVENT
    )


class WebhookDeliveryActivities:
    """The steps of one delivery: the HTTP attempt and the database moves."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], sender: WebhookSender):
        self.sessionmaker = sessionmaker
        self.sender = sender

    @activity.defn(name="webhook_send")
    async def send(self, request: WebhookSendInput) -> WebhookSendResult:
        with business_errors():
            async with self.sessionmaker() as session:
                delivery = await webhooks.get_delivery(session, request.delivery_id)
                endpoint = await webhooks.get_endpoint(session, delivery.endpoint_id)
        if rules.DeliveryStatus(delivery.status) not in rules.OPEN_STATUSES:
            return WebhookSendResult(skipped=f"the delivery is {delivery.status}")
        if endpoint.status != rules.EndpointStatus.ENABLED.value:
            return WebhookSendResult(skipped=f"endpoint disabled: {endpoint.disabled_reason}")
        started_at = datetime.now(UTC)
        body = rules.render_body(
            message_id=delivery.message_id,
            event_type=delivery.event_type,
            occurred_at=delivery.occurred_at,
            entity_type=delivery.entity_type,
            entity_id=delivery.entity_id,
            data=delivery.payload,
        )
        headers = sign(
            webhooks.signing_secrets(endpoint, started_at),
            delivery.message_id,
            int(started_at.timestamp()),
            body,
        )
        response = await self.sender.post(
            endpoint.url, body, headers, seconds=request.timeout_seconds
        )
        return WebhookSendResult(
            status_code=response.status_code,
            retry_after_seconds=response.retry_after_seconds,
            error=response.error,
            response_excerpt=response.excerpt,
            duration_ms=response.duration_ms,
            started_at=started_at,
        )

    @activity.defn(name="webhook_record_attempt")
    async def record_attempt(self, request: WebhookRecordInput) -> WebhookDeliveryState:
        result = request.result
        attempt = webhooks.Attempt(
            number=request.attempt,
            started_at=result.started_at or request.at,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.response_excerpt,
        )
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                delivery = await webhooks.record_attempt(
                    session,
                    request.delivery_id,
                    attempt,
                    retry_at=request.retry_at,
                    at=request.at,
                    disable_after=timedelta(days=request.disable_after_days),
                )
                return state_of(delivery)

    @activity.defn(name="webhook_cancel")
    async def cancel(self, request: WebhookCancelInput) -> WebhookDeliveryState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                delivery = await webhooks.cancel(
                    session,
                    request.delivery_id,
                    request.reason,
                    actor=Actor(request.by, Role.SYSTEM),
                )
                return state_of(delivery)


class WebhookDispatchActivities:
    """Outbox events into deliveries, and deliveries into running workflows; and the purge.
    Needs the Temporal client to start the workflows."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], client: Client) -> None:
        self.sessionmaker = sessionmaker
        self.client = client

    @activity.defn(name="webhook_dispatch")
    async def dispatch(self, request: WebhookDispatchInput) -> WebhookDispatchResult:
        """One batch of events dispatched (committed), then one batch of the deliveries not
        yet started started: the new ones, and any whose start failed before (a crash after
        the commit, Temporal away)."""
        async with self.sessionmaker() as session, session.begin():
            done = await webhooks.dispatch(session, limit=request.batch_size, at=datetime.now(UTC))
        async with self.sessionmaker() as session:
            pending = await webhooks.unstarted(session, limit=request.batch_size)
        started: list[uuid.UUID] = []
        for delivery, endpoint in pending:
            activity.heartbeat()
            await self._start(delivery, endpoint, request)
            started.append(delivery.id)
        async with self.sessionmaker() as session, session.begin():
            await webhooks.mark_started(session, started, datetime.now(UTC))
        return WebhookDispatchResult(
            events=done.events,
            deliveries=len(done.deliveries),
            started=len(started),
            more=done.events >= request.batch_size or len(pending) >= request.batch_size,
        )

    async def _start(
        self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, request: WebhookDispatchInput
    ) -> None:
        argument = WebhookDeliveryInput(
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            retry_schedule_seconds=endpoint.retry_schedule_seconds,
            timeout_seconds=request.timeout_seconds,
            max_retry_after_seconds=request.max_retry_after_seconds,
            disable_after_days=request.disable_after_days,
        )
        if is_sequenced(delivery, endpoint):
            # Signal-with-start: the entity's sequence takes it in turn, started if need be.
            await self.client.start_workflow(
                "WebhookOrderedDelivery",
                WebhookSequenceInput(
                    endpoint_id=endpoint.id,
                    entity_type=delivery.entity_type,
                    entity_id=delivery.entity_id,
                ),
                id=webhooks.sequence_workflow_id(
                    endpoint.id, delivery.entity_type, delivery.entity_id
                ),
                task_queue=request.task_queue,
                start_signal="enqueue",
                start_signal_args=[argument],
            )
            return
        try:
            await self.client.start_workflow(
                "WebhookDelivery",
                argument,
                id=webhooks.delivery_workflow_id(delivery.id),
                task_queue=request.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # A delivery whose workflow finished is closed: never run it again.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass

    @activity.defn(name="webhook_purge_logs")
    async def purge_logs(self, request: WebhookPurgeInput) -> PurgeResult:
        """Deliveries and attempts older than the retention, in batches of their own
        transactions."""
        before = datetime.now(UTC) - timedelta(days=request.retention_days)
        deleted = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                gone = await webhooks.purge(session, before=before, limit=PURGE_BATCH)
            deleted += gone
            activity.heartbeat(deleted)
            if gone == 0:
                return PurgeResult(deleted=deleted)

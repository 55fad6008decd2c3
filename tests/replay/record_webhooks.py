"""Recorded histories of the outbound webhook workflows, with name-matched stub activities
that keep each delivery as ``services.webhooks`` does (called by ``tests.replay.record``;
``python -m tests.replay.record_webhooks`` records these alone)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from worker import WORKFLOW_RUNNER
from workflows.search_attributes import ALL
from workflows.types import (
    CancelWebhookDelivery,
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
from workflows.webhooks import (
    PurgeWebhookLogsWorkflow,
    WebhookDeliveryWorkflow,
    WebhookDispatcherWorkflow,
    WebhookOrderedDeliveryWorkflow,
)

Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]


@dataclass
class WebhookStubs:
    """Each delivery's receiver answers its script in turn (the last answer repeats)."""

    scripts: dict[uuid.UUID, list[tuple[int, int | None]]] = field(default_factory=dict)
    rows: dict[uuid.UUID, WebhookDeliveryState] = field(default_factory=dict)

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="webhook_send")
        async def send(request: WebhookSendInput) -> WebhookSendResult:
            row = self.rows.setdefault(request.delivery_id, WebhookDeliveryState(status="pending"))
            if row.status not in ("pending", "retrying"):
                return WebhookSendResult(skipped=f"the delivery is {row.status}")
            script = self.scripts[request.delivery_id]
            status, retry_after = script[min(request.attempt, len(script)) - 1]
            return WebhookSendResult(
                status_code=status,
                retry_after_seconds=retry_after,
                duration_ms=7,
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
            )

        @activity.defn(name="webhook_record_attempt")
        async def record_attempt(request: WebhookRecordInput) -> WebhookDeliveryState:
            code = request.result.status_code
            if code is not None and 200 <= code < 300:
                status, error = "succeeded", None
            elif code == 410:
                status, error = "cancelled", "the receiver answered 410 Gone"
            elif request.retry_at is None:
                status, error = "dead_lettered", f"HTTP {code}"
            else:
                status, error = "retrying", f"HTTP {code}"
            row = WebhookDeliveryState(
                status=status,
                attempt_count=request.attempt,
                last_status_code=code,
                last_error=error,
                next_attempt_at=request.retry_at if status == "retrying" else None,
            )
            self.rows[request.delivery_id] = row
            return row

        @activity.defn(name="webhook_cancel")
        async def cancel(request: WebhookCancelInput) -> WebhookDeliveryState:
            row = self.rows[request.delivery_id]
            if row.status in ("pending", "retrying"):
                row = row.model_copy(update={"status": "cancelled", "last_error": request.reason})
                self.rows[request.delivery_id] = row
            return row

        @activity.defn(name="webhook_dispatch")
        async def dispatch(_: WebhookDispatchInput) -> WebhookDispatchResult:
            return WebhookDispatchResult(events=3, deliveries=2, started=2)

        @activity.defn(name="webhook_purge_logs")
        async def purge_logs(_: WebhookPurgeInput) -> PurgeResult:
            return PurgeResult(deleted=12)

        return [send, record_attempt, cancel, dispatch, purge_logs]


async def _attempted(handle: WorkflowHandle[Any, Any], count: int) -> None:
    for _ in range(400):
        if (await handle.query(WebhookDeliveryWorkflow.status)).attempts >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{handle.id} never attempted {count} times")


async def record_webhooks(env: WorkflowEnvironment, save: Save) -> None:
    """A delivery dead-lettered after its schedule; one that waits out a Retry-After and
    succeeds; one cancelled by an operator while it waits; a 410; an ordered sequence of
    two; a dispatcher run; a purge."""
    stubs = WebhookStubs()
    queue = f"record-webhooks-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[
            WebhookDeliveryWorkflow,
            WebhookOrderedDeliveryWorkflow,
            WebhookDispatcherWorkflow,
            PurgeWebhookLogsWorkflow,
        ],
        activities=stubs.activities(),
        workflow_runner=WORKFLOW_RUNNER,
    ):
        scripts: list[tuple[str, list[tuple[int, int | None]]]] = [
            ("webhook_delivery_dead_lettered", [(500, None)]),
            ("webhook_delivery_retry_after_succeeded", [(429, 600), (503, None), (200, None)]),
            ("webhook_delivery_gone", [(410, None)]),
        ]
        for name, script in scripts:
            delivery_id = uuid.uuid4()
            stubs.scripts[delivery_id] = script
            handle = await env.client.start_workflow(
                WebhookDeliveryWorkflow.run,
                WebhookDeliveryInput(delivery_id=delivery_id, retry_schedule_seconds=[5, 300]),
                id=f"webhook-delivery-{name}",
                task_queue=queue,
            )
            await handle.result()
            await save(handle, name)

        delivery_id = uuid.uuid4()
        stubs.scripts[delivery_id] = [(500, None)]
        handle = await env.client.start_workflow(
            WebhookDeliveryWorkflow.run,
            WebhookDeliveryInput(delivery_id=delivery_id, retry_schedule_seconds=[3600, 3600]),
            id="webhook-delivery-webhook_delivery_cancelled",
            task_queue=queue,
        )
        await _attempted(handle, 1)
        await handle.signal(
            WebhookDeliveryWorkflow.cancel, CancelWebhookDelivery(reason="recorded")
        )
        await handle.result()
        await save(handle, "webhook_delivery_cancelled")

        first, second = uuid.uuid4(), uuid.uuid4()
        stubs.scripts[first] = [(500, None), (200, None)]
        stubs.scripts[second] = [(200, None)]
        endpoint_id = uuid.uuid4()
        sequence = await env.client.start_workflow(
            WebhookOrderedDeliveryWorkflow.run,
            WebhookSequenceInput(endpoint_id=endpoint_id, entity_type="invoice", entity_id="inv"),
            id="webhook-ordered-recorded",
            task_queue=queue,
            start_signal="enqueue",
            start_signal_args=[
                WebhookDeliveryInput(delivery_id=second, event_id=2, retry_schedule_seconds=[5])
            ],
        )
        await sequence.signal(
            WebhookOrderedDeliveryWorkflow.enqueue,
            WebhookDeliveryInput(delivery_id=first, event_id=1, retry_schedule_seconds=[5]),
        )
        await sequence.result()
        first_run = env.client.get_workflow_handle(sequence.id, run_id=sequence.result_run_id)
        await save(first_run, "webhook_ordered_delivery")

        dispatcher = await env.client.start_workflow(
            WebhookDispatcherWorkflow.run,
            WebhookDispatchInput(task_queue=queue, interval_seconds=2, run_seconds=5),
            id="webhook-dispatcher-recorded",
            task_queue=queue,
        )
        await dispatcher.result()
        await save(dispatcher, "webhook_dispatcher")

        purge = await env.client.start_workflow(
            PurgeWebhookLogsWorkflow.run,
            WebhookPurgeInput(),
            id="webhook-logs-purge-recorded",
            task_queue=queue,
        )
        await purge.result()
        await save(purge, "webhook_logs_purged")


async def main() -> None:
    from tests.replay.record import save

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        await record_webhooks(env, save)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

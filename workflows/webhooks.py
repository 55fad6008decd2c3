"""Outbound webhooks as workflows: one per delivery (its attempts and the durable waits of
its retry schedule), one per (endpoint, entity) for endpoints that want events in order,
the dispatcher a Schedule runs, and the daily purge of old logs."""

from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

from domain.webhooks import GONE, retry_delay, succeeded
from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.types import (
    CancelWebhookDelivery,
    PurgeResult,
    RetryWebhookDelivery,
    WebhookCancelInput,
    WebhookDeliveryInput,
    WebhookDeliveryState,
    WebhookDeliveryStatus,
    WebhookDispatchInput,
    WebhookDispatchResult,
    WebhookPurgeInput,
    WebhookRecordInput,
    WebhookSendInput,
    WebhookSequenceInput,
    WebhookSequenceStatus,
)

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookDeliveryActivities, WebhookDispatchActivities

FINAL_ERRORS = ["ValidationError", "NotFound", "Conflict"]
# Database outages are waited out; refusals are final.
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=FINAL_ERRORS,
)
DATABASE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": DATABASE_RETRY,
}
OPEN = ("pending", "retrying")


@workflow.defn(name="WebhookDelivery")
class WebhookDeliveryWorkflow:
    """``webhook-delivery-{delivery_id}``. Attempts at once, then after each wait of the retry
    schedule (longer when the receiver's ``Retry-After`` asks); ends SUCCEEDED on a 2xx,
    CANCELLED on 410 Gone (which disables the endpoint) or once the endpoint is disabled,
    DEAD_LETTERED after the last attempt. The row is the record; this process owns the waits.
    Signals: ``retry_now`` (skip the current wait), ``cancel``."""

    @workflow.init
    def __init__(self, request: WebhookDeliveryInput) -> None:
        self._request = request
        self._state = WebhookDeliveryState(status="pending")
        self._attempted_at: list[datetime] = []
        self._retry_now = False
        self._cancel: CancelWebhookDelivery | None = None

    @workflow.run
    async def run(self, request: WebhookDeliveryInput) -> WebhookDeliveryStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(request.delivery_id)),
                sa.ENTITY_TYPE.value_set("webhook_delivery"),
                sa.STATUS.value_set(self._state.status),
            ]
        )
        while self._state.status in OPEN:
            if self._cancel is not None:
                await self._cancelled(self._cancel.reason, self._cancel.by)
                break
            await self._attempt(len(self._attempted_at) + 1)
            if self._state.status != "retrying" or self._state.next_attempt_at is None:
                continue
            wait = self._state.next_attempt_at - workflow.now()
            if wait > timedelta(0):
                with suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._retry_now or self._cancel is not None, timeout=wait
                    )
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _attempt(self, number: int) -> None:
        self._retry_now = False
        started = workflow.now()
        request = self._request
        try:
            result = await workflow.execute_activity_method(
                WebhookDeliveryActivities.send,
                WebhookSendInput(
                    delivery_id=request.delivery_id,
                    attempt=number,
                    timeout_seconds=request.timeout_seconds,
                ),
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds + 20),
                retry_policy=DATABASE_RETRY,
            )
        except ActivityError as failed:
            # Only a refusal ends the retries of this step: the delivery's row is gone.
            self._state = WebhookDeliveryState(status="cancelled", last_error=reason(failed))
            return
        if result.skipped is not None:
            await self._cancelled(result.skipped, "webhook-delivery")
            return
        self._attempted_at.append(started)
        retry_at = None
        if not succeeded(result.status_code) and result.status_code != GONE:
            delay = retry_delay(
                request.retry_schedule_seconds,
                number,
                result.retry_after_seconds,
                request.max_retry_after_seconds,
            )
            retry_at = workflow.now() + delay if delay is not None else None
        self._state = await workflow.execute_activity_method(
            WebhookDeliveryActivities.record_attempt,
            WebhookRecordInput(
                delivery_id=request.delivery_id,
                attempt=number,
                result=result,
                retry_at=retry_at,
                at=workflow.now(),
                disable_after_days=request.disable_after_days,
            ),
            **DATABASE,
        )
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])

    async def _cancelled(self, why: str, by: str) -> None:
        self._state = await workflow.execute_activity_method(
            WebhookDeliveryActivities.cancel,
            WebhookCancelInput(delivery_id=self._request.delivery_id, reason=why, by=by),
            **DATABASE,
        )

    @workflow.signal
    def retry_now(self, _: RetryWebhookDelivery) -> None:
        self._retry_now = True

    @workflow.signal
    def cancel(self, request: CancelWebhookDelivery) -> None:
        self._cancel = request

    @workflow.query
    def status(self) -> WebhookDeliveryStatus:
        return WebhookDeliveryStatus(
            delivery_id=self._request.delivery_id,
            status=self._state.status,
            attempts=len(self._attempted_at),
            attempted_at=list(self._attempted_at),
            next_attempt_at=self._state.next_attempt_at,
            last_status_code=self._state.last_status_code,
            last_error=self._state.last_error,
        )


@workflow.defn(name="WebhookOrderedDelivery")
class WebhookOrderedDeliveryWorkflow:
    """``webhook-ordered-{endpoint_id}-{entity_type}-{entity_id}``, for an endpoint with
    ``ordered``: the deliveries of one entity's events run one at a time, in event order, each
    as its own ``webhook-delivery-{id}`` child (so its signals and status stay per delivery).
    A delivery that ends dead-lettered or cancelled does not hold up the next. Fed by the
    dispatcher's signal-with-start (``enqueue``); ends when its queue is empty, and continues
    as new every ``PER_RUN`` deliveries."""

    PER_RUN = 100

    @workflow.init
    def __init__(self, request: WebhookSequenceInput) -> None:
        self._request = request
        self._queue = list(request.queue)
        self._seen = {delivery.delivery_id for delivery in self._queue}
        self._current: UUID | None = None
        self._delivered = request.delivered

    @workflow.run
    async def run(self, request: WebhookSequenceInput) -> WebhookSequenceStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(f"{request.entity_type}:{request.entity_id}"),
                sa.ENTITY_TYPE.value_set("webhook_sequence"),
                sa.STATUS.value_set("delivering"),
            ]
        )
        done = 0
        while self._queue:
            if done >= self.PER_RUN:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    request.model_copy(update={"queue": self._queue, "delivered": self._delivered})
                )
            self._queue.sort(key=lambda delivery: (delivery.event_id, str(delivery.delivery_id)))
            following = self._queue.pop(0)
            self._current = following.delivery_id
            try:
                await workflow.execute_child_workflow(
                    WebhookDeliveryWorkflow.run,
                    following,
                    id=f"webhook-delivery-{following.delivery_id}",
                    # A delivery that already ran (a repeated enqueue) is not run again.
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
            except WorkflowAlreadyStartedError:
                pass
            except ChildWorkflowError as failed:
                workflow.logger.warning(
                    "webhook delivery %s failed: %s", following.delivery_id, failed.cause
                )
            self._current = None
            self._delivered += 1
            done += 1
        workflow.upsert_search_attributes([sa.STATUS.value_set("idle")])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    @workflow.signal
    def enqueue(self, delivery: WebhookDeliveryInput) -> None:
        if delivery.delivery_id not in self._seen:
            self._seen.add(delivery.delivery_id)
            self._queue.append(delivery)

    @workflow.query
    def status(self) -> WebhookSequenceStatus:
        return WebhookSequenceStatus(
            endpoint_id=self._request.endpoint_id,
            entity_type=self._request.entity_type,
            entity_id=self._request.entity_id,
            current=self._current,
            queued=[delivery.delivery_id for delivery in self._queue],
            delivered=self._delivered,
        )


@workflow.defn(name="WebhookDispatcher")
class WebhookDispatcherWorkflow:
    """Started every minute by the ``webhook-dispatcher`` Schedule (buffering one start, so
    runs follow each other without a gap): dispatches outbox events into deliveries and
    starts their workflows every ``interval_seconds`` for ``run_seconds``, at once again
    while batches come back full."""

    @workflow.init
    def __init__(self, request: WebhookDispatchInput) -> None:
        self._total = WebhookDispatchResult()

    @workflow.run
    async def run(self, request: WebhookDispatchInput) -> WebhookDispatchResult:
        workflow.upsert_search_attributes([sa.STATUS.value_set("running")])
        until = workflow.now() + timedelta(seconds=request.run_seconds)
        while True:
            result = await workflow.execute_activity_method(
                WebhookDispatchActivities.dispatch,
                request,
                start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=30),
                    maximum_attempts=5,
                ),
            )
            self._total.events += result.events
            self._total.deliveries += result.deliveries
            self._total.started += result.started
            if workflow.now() >= until:
                break
            if not result.more:
                await workflow.sleep(timedelta(seconds=request.interval_seconds))
        workflow.upsert_search_attributes([sa.STATUS.value_set("completed")])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._total

    @workflow.query
    def status(self) -> WebhookDispatchResult:
        return self._total


@workflow.defn(name="PurgeWebhookLogs")
class PurgeWebhookLogsWorkflow:
    """Deletes deliveries and attempts older than the retention; a Schedule runs it daily."""

    def __init__(self) -> None:
        self._status = "running"
        self._deleted: int | None = None

    @workflow.run
    async def run(self, request: WebhookPurgeInput) -> PurgeResult:
        workflow.upsert_search_attributes([sa.STATUS.value_set("running")])
        result = await workflow.execute_activity_method(
            WebhookDispatchActivities.purge_logs,
            request,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(minutes=5),
                maximum_attempts=10,
            ),
        )
        self._status, self._deleted = "completed", result.deleted
        workflow.upsert_search_attributes([sa.STATUS.value_set("completed")])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    @workflow.query
    def status(self) -> dict[str, object]:
        return {"status": self._status, "deleted": self._deleted}

"""One delivery of a stored Stripe event: signal the payment or refund workflow it concerns,
retried with exponential backoff; when the retries run out (or the delivery is refused) the
event becomes a dead letter for an admin to retry, which starts the next delivery."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows import search_attributes as sa
from workflows.activity_options import REFUSALS, database_step
from workflows.failures import reason
from workflows.types import (
    DeadLetterStripeEventInput,
    DeliverStripeEventInput,
    StripeEventDeliveryInput,
    StripeEventDeliveryStatus,
    StripeEventState,
)

with workflow.unsafe.imports_passed_through():
    from activities.stripe_events import StripeEventActivities

FINAL_ERRORS = list(REFUSALS)
DATABASE = database_step(FINAL_ERRORS)
# A database read, a signal and a database write.
DELIVER_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="StripeEventDelivery")
class StripeEventDeliveryWorkflow:
    """``stripe-event-{event_id}-{delivery}``. The row is the record; this process owns the
    retries of one delivery. Ends with the event processed, ignored or dead."""

    @workflow.init
    def __init__(self, request: StripeEventDeliveryInput) -> None:
        self._request = request
        self._state = StripeEventState(status="received", delivery=request.delivery)

    @workflow.run
    async def run(self, request: StripeEventDeliveryInput) -> StripeEventDeliveryStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(request.event_id),
                sa.ENTITY_TYPE.value_set("stripe_event"),
                sa.STATUS.value_set(self._state.status),
            ]
        )
        try:
            self._state = await workflow.execute_activity_method(
                StripeEventActivities.deliver,
                DeliverStripeEventInput(event_id=request.event_id, delivery=request.delivery),
                start_to_close_timeout=DELIVER_TIMEOUT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=request.initial_interval_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=request.maximum_interval_seconds),
                    maximum_attempts=request.max_attempts,
                    non_retryable_error_types=FINAL_ERRORS,
                ),
            )
        except ActivityError as failed:
            error = reason(failed)
            workflow.logger.warning("Stripe event %s is a dead letter: %s", request.event_id, error)
            self._state = await workflow.execute_activity_method(
                StripeEventActivities.dead_letter,
                DeadLetterStripeEventInput(
                    event_id=request.event_id, delivery=request.delivery, error=error
                ),
                **DATABASE,
            )
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    @workflow.query
    def status(self) -> StripeEventDeliveryStatus:
        return StripeEventDeliveryStatus(
            event_id=self._request.event_id,
            delivery=self._request.delivery,
            status=self._state.status,
            outcome=self._state.outcome,
            last_error=self._state.last_error,
        )

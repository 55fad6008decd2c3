"""A payout schedule's process: wait for the date or the configured event, pay through Stripe
with retries, and after a failure wait for another trigger (a new run) or a cancellation."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import search_attributes as sa
from workflows.activity_options import database_step
from workflows.failures import reason
from workflows.types import (
    CancelPayout,
    PayoutCancelInput,
    PayoutCompleteInput,
    PayoutFailInput,
    PayOutInput,
    PayoutLoadInput,
    PayoutScheduleInput,
    PayoutScheduleStatus,
    PayoutStartRunInput,
    PayoutState,
    ReschedulePayout,
    TriggerPayout,
)

with workflow.unsafe.imports_passed_through():
    from activities.payouts import PayoutActivities, StripeTransferActivities

FINAL_ERRORS = ["CardDeclined", "ValidationError", "NotFound", "Conflict", "IdempotencyError"]
DATABASE = database_step(FINAL_ERRORS)
# Longer than the Stripe client's own tries (30 s timeout, two network retries).
TRANSFER_TIMEOUT = timedelta(minutes=2)
DONE = frozenset({"completed", "cancelled"})
# The actor of the steps the schedule takes by itself (operators' signals carry their own).
SCHEDULE_ACTOR = "payout-schedule"
MANUAL = "manual"

PayoutStep = Callable[[PayoutActivities, Any], Awaitable[PayoutState]]


@workflow.defn(name="PayoutSchedule")
class PayoutScheduleWorkflow:
    """``payout-schedule-{id}``. The row is the record; this process owns the timer, the
    trigger and cancel signals and the retries. Ends completed or cancelled."""

    @workflow.init
    def __init__(self, schedule: PayoutScheduleInput) -> None:
        self._schedule = schedule
        self._state = PayoutState(status="pending")
        self._transfer_id: str | None = None
        self._trigger: TriggerPayout | None = None
        self._cancel: CancelPayout | None = None
        self._rescheduled = False
        self._running = False

    @workflow.run
    async def run(self, schedule: PayoutScheduleInput) -> PayoutScheduleStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(schedule.schedule_id)),
                sa.ENTITY_TYPE.value_set("payout_schedule"),
            ]
        )
        self._state = await workflow.execute_activity_method(
            PayoutActivities.load, PayoutLoadInput(schedule_id=schedule.schedule_id), **DATABASE
        )
        workflow.upsert_search_attributes([sa.STATUS.value_set(self._state.status)])
        while self._state.status not in DONE:
            if self._state.status == "processing":
                # A run an earlier process left in flight: resume it under the same key.
                await self._pay("resumed", SCHEDULE_ACTOR)
                continue
            await self._wait()
            if self._cancel is not None:
                await self._cancel_schedule(self._cancel)
            elif self._trigger is not None:
                trigger, self._trigger = self._trigger, None
                await self._pay(trigger.event, trigger.by)
            elif self._rescheduled:
                self._rescheduled = False  # wait again, for the new date
            else:
                await self._pay("scheduled", SCHEDULE_ACTOR)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _wait(self) -> None:
        """A pending schedule waits for its date, a trigger or a cancel; a failed one for a
        trigger or a cancel only (its date has passed)."""
        timeout: timedelta | None = None
        if self._state.status == "pending":
            timeout = self._schedule.scheduled_for - workflow.now()
            if timeout <= timedelta(0):
                return
        try:
            await workflow.wait_condition(
                lambda: self._trigger is not None or self._cancel is not None or self._rescheduled,
                timeout=timeout,
            )
        except TimeoutError:
            pass

    async def _pay(self, event: str, actor: str) -> None:
        """One run: PROCESSING, the transfer under the retry policy, then COMPLETED, or FAILED
        with the error after the last attempt or a refusal."""
        schedule_id = self._schedule.schedule_id
        self._running = True
        try:
            if not await self._step(
                PayoutActivities.start_run,
                PayoutStartRunInput(schedule_id=schedule_id, event=event, actor=actor),
            ):
                return
            try:
                paid = await workflow.execute_activity_method(
                    StripeTransferActivities.pay_out,
                    PayOutInput(schedule_id=schedule_id),
                    task_queue=self._schedule.stripe_task_queue,
                    start_to_close_timeout=TRANSFER_TIMEOUT,
                    # pay_out heartbeats every 2 s: a dead worker is noticed within seconds.
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=self._schedule.backoff_seconds),
                        backoff_coefficient=2.0,
                        maximum_attempts=self._schedule.max_attempts,
                        non_retryable_error_types=FINAL_ERRORS,
                    ),
                )
            except ActivityError as failed:
                error = reason(failed)
                workflow.logger.warning("payout schedule %s failed: %s", schedule_id, error)
                cause = failed.cause
                await self._step(
                    PayoutActivities.fail,
                    PayoutFailInput(
                        schedule_id=schedule_id,
                        error=error,
                        actor=SCHEDULE_ACTOR,
                        final=isinstance(cause, ApplicationError) and cause.non_retryable,
                    ),
                )
                return
            self._transfer_id = paid.transfer_id
            await self._step(
                PayoutActivities.complete,
                PayoutCompleteInput(
                    schedule_id=schedule_id, transfer_id=paid.transfer_id, actor=SCHEDULE_ACTOR
                ),
            )
        finally:
            self._running = False

    async def _cancel_schedule(self, request: CancelPayout) -> None:
        self._cancel = None
        await self._step(
            PayoutActivities.cancel,
            PayoutCancelInput(
                schedule_id=self._schedule.schedule_id, reason=request.reason, actor=request.by
            ),
        )

    async def _step(self, activity: PayoutStep, request: BaseModel) -> bool:
        """A database step; on a refusal the row is reloaded (it may have moved on) and False
        returned."""
        try:
            state = await workflow.execute_activity_method(activity, request, **DATABASE)
        except ActivityError as refused:
            workflow.logger.warning(
                "payout schedule %s: %s refused: %s",
                self._schedule.schedule_id,
                type(request).__name__,
                reason(refused),
            )
            self._apply(
                await workflow.execute_activity_method(
                    PayoutActivities.load,
                    PayoutLoadInput(schedule_id=self._schedule.schedule_id),
                    **DATABASE,
                )
            )
            return False
        self._apply(state)
        return True

    def _apply(self, state: PayoutState) -> None:
        if state.status != self._state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])
        self._state = state

    @workflow.signal
    def trigger(self, request: TriggerPayout) -> None:
        """Pay now if ``event`` is the schedule's trigger event or ``manual``; a failed
        schedule runs again. Ignored while a run is under way."""
        if request.event not in (self._schedule.trigger_event, MANUAL):
            workflow.logger.info(
                "payout schedule %s ignores event %s (it waits for %s)",
                self._schedule.schedule_id,
                request.event,
                self._schedule.trigger_event,
            )
        elif self._running:
            workflow.logger.info(
                "payout schedule %s is paying already: trigger ignored", self._schedule.schedule_id
            )
        else:
            self._trigger = request

    @workflow.signal
    def reschedule(self, request: ReschedulePayout) -> None:
        """The API moved the date of a pending schedule: wait for the new one."""
        self._schedule = self._schedule.model_copy(update={"scheduled_for": request.scheduled_for})
        self._rescheduled = True

    @workflow.signal
    def cancel(self, request: CancelPayout) -> None:
        """Stop a pending or failed schedule; a run under way finishes first (a transfer may be
        in flight), and the cancel applies if it failed."""
        self._cancel = request

    @workflow.query
    def status(self) -> PayoutScheduleStatus:
        return PayoutScheduleStatus(
            schedule_id=self._schedule.schedule_id,
            status=self._state.status,
            scheduled_for=self._schedule.scheduled_for,
            retry_count=self._state.retry_count,
            last_error=self._state.last_error,
            stripe_transfer_id=self._transfer_id,
        )

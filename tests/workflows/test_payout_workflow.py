"""The payout schedule workflow on the time-skipping server, with name-matched stub activities.

As in production, ``pay_out`` runs on its own (Stripe) task queue. The stubs keep the schedule
as ``services.payouts`` does: ``pay_out`` counts each failed attempt on the row
(``record_attempt_failure``) before raising, and a run after a failure bumps the run number
(a new Stripe key). Backoffs run in skipped time.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.payouts import PayoutScheduleWorkflow
from workflows.types import (
    CancelPayout,
    PayoutCancelInput,
    PayoutCompleteInput,
    PayoutFailInput,
    PayOutInput,
    PayoutLoadInput,
    PayOutResult,
    PayoutScheduleInput,
    PayoutScheduleStatus,
    PayoutStartRunInput,
    PayoutState,
    TriggerPayout,
)

BACKOFF = 60
TRIGGER_EVENT = "milestone_reached"


def stripe_down(_attempt: int) -> None:
    # Retryable, as ``ProviderError`` is: ``business_errors`` lets it through unchanged.
    raise ApplicationError("Stripe answered 503", type="ProviderError")


def declined(_attempt: int) -> None:
    # Not marked non-retryable here: the workflow's retry policy must stop it by type.
    raise ApplicationError("the destination account cannot receive transfers", type="CardDeclined")


def succeeds(_attempt: int) -> None:
    return None


@dataclass
class PayoutStub:
    env: WorkflowEnvironment
    transfer: Callable[[int], None] = succeeds  # by attempt; raises to fail it
    status: str = "pending"
    retry_count: int = 0
    last_error: str | None = None
    run_number: int = 0
    runs: list[tuple[PayoutStartRunInput, datetime]] = field(default_factory=list)
    attempts: list[tuple[int, int, datetime]] = field(default_factory=list)  # run, attempt, at
    attempt_failures: list[str] = field(default_factory=list)
    completed: list[PayoutCompleteInput] = field(default_factory=list)
    failed: list[PayoutFailInput] = field(default_factory=list)
    cancelled: list[PayoutCancelInput] = field(default_factory=list)

    def state(self) -> PayoutState:
        return PayoutState(
            status=self.status,
            retry_count=self.retry_count,
            last_error=self.last_error,
            run_number=self.run_number,
        )

    def refuse_unless(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise ApplicationError(
                f"a {self.status} payout schedule cannot do that",
                type="Conflict",
                non_retryable=True,
            )

    def record_attempt_failure(self, error: str) -> None:
        self.attempt_failures.append(error)
        self.retry_count += 1
        self.last_error = error

    @activity.defn(name="payout_load")
    async def load(self, _: PayoutLoadInput) -> PayoutState:
        return self.state()

    @activity.defn(name="payout_start_run")
    async def start_run(self, request: PayoutStartRunInput) -> PayoutState:
        self.runs.append((request, await self.env.get_current_time()))
        if self.status != "processing":
            self.refuse_unless("pending", "failed")
            if self.status == "failed":
                self.run_number += 1
                self.retry_count = 0
            self.status, self.last_error = "processing", None
        return self.state()

    @activity.defn(name="pay_out")
    async def pay_out(self, _: PayOutInput) -> PayOutResult:
        attempt = activity.info().attempt
        self.attempts.append((self.run_number, attempt, await self.env.get_current_time()))
        self.refuse_unless("processing")
        try:
            self.transfer(attempt)
        except ApplicationError as failed:
            self.record_attempt_failure(f"{failed.type}: {failed.message}")
            raise
        return PayOutResult(transfer_id=f"tr_run{self.run_number}")

    @activity.defn(name="payout_complete")
    async def complete(self, request: PayoutCompleteInput) -> PayoutState:
        self.completed.append(request)
        self.refuse_unless("processing", "completed")
        self.status = "completed"
        return self.state()

    @activity.defn(name="payout_fail")
    async def fail(self, request: PayoutFailInput) -> PayoutState:
        self.failed.append(request)
        self.refuse_unless("processing", "failed")
        self.status, self.last_error = "failed", request.error
        return self.state()

    @activity.defn(name="payout_cancel")
    async def cancel(self, request: PayoutCancelInput) -> PayoutState:
        self.cancelled.append(request)
        self.refuse_unless("pending", "failed", "cancelled")
        self.status = "cancelled"
        return self.state()


Handle = WorkflowHandle[PayoutScheduleWorkflow, PayoutScheduleStatus]


@dataclass
class Harness:
    env: WorkflowEnvironment
    queue: str
    stripe_queue: str
    stub: PayoutStub

    async def start(
        self, due_in: timedelta = timedelta(days=7), max_attempts: int = 3
    ) -> tuple[Handle, datetime]:
        schedule_id = uuid.uuid4()
        scheduled_for = (await self.env.get_current_time()) + due_in
        handle = await self.env.client.start_workflow(
            PayoutScheduleWorkflow.run,
            PayoutScheduleInput(
                schedule_id=schedule_id,
                scheduled_for=scheduled_for,
                trigger_event=TRIGGER_EVENT,
                max_attempts=max_attempts,
                backoff_seconds=BACKOFF,
                stripe_task_queue=self.stripe_queue,
            ),
            id=f"payout-schedule-{schedule_id}",
            task_queue=self.queue,
        )
        return handle, scheduled_for

    async def status(self, handle: Handle) -> PayoutScheduleStatus:
        return await handle.query(PayoutScheduleWorkflow.status)


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    stub = PayoutStub(time_skipping_env)
    queue = f"payouts-{uuid.uuid4()}"
    stripe_queue = f"payouts-stripe-{uuid.uuid4()}"
    async with (
        Worker(
            time_skipping_env.client,
            task_queue=queue,
            workflows=[PayoutScheduleWorkflow],
            activities=[stub.load, stub.start_run, stub.complete, stub.fail, stub.cancel],
        ),
        Worker(time_skipping_env.client, task_queue=stripe_queue, activities=[stub.pay_out]),
    ):
        yield Harness(time_skipping_env, queue, stripe_queue, stub)


async def test_pays_at_the_scheduled_date(harness: Harness) -> None:
    handle, scheduled_for = await harness.start(timedelta(days=7))

    result = await handle.result()

    [(run, run_at)] = harness.stub.runs
    assert scheduled_for <= run_at < scheduled_for + timedelta(minutes=1)
    assert run.event == "scheduled"
    assert result.status == "completed" and result.stripe_transfer_id == "tr_run0"
    assert harness.stub.completed[0].transfer_id == "tr_run0"


async def test_two_retryable_failures_then_success_completes_with_two_retries(
    harness: Harness,
) -> None:
    harness.stub.transfer = lambda attempt: stripe_down(attempt) if attempt <= 2 else None
    handle, _ = await harness.start(max_attempts=3)

    result = await handle.result()

    assert [attempt for _, attempt, _ in harness.stub.attempts] == [1, 2, 3]
    assert harness.stub.attempt_failures == ["ProviderError: Stripe answered 503"] * 2
    gaps = [later - earlier for (_, _, earlier), (_, _, later) in pairwise(harness.stub.attempts)]
    assert gaps[0] >= timedelta(seconds=BACKOFF) and gaps[1] >= timedelta(seconds=2 * BACKOFF)
    assert (result.status, result.retry_count) == ("completed", 2)
    assert harness.stub.failed == []


async def test_lasting_failure_fails_the_schedule_and_a_trigger_runs_it_again(
    harness: Harness,
) -> None:
    harness.stub.transfer = stripe_down
    handle, _ = await harness.start(timedelta(days=1), max_attempts=3)

    await harness.env.sleep(timedelta(days=2))
    failed = await harness.status(handle)
    assert (failed.status, failed.retry_count) == ("failed", 3)
    assert failed.last_error == "ProviderError: Stripe answered 503"
    [fail] = harness.stub.failed
    assert fail.error == failed.last_error
    assert [(run, attempt) for run, attempt, _ in harness.stub.attempts] == [(0, 1), (0, 2), (0, 3)]

    harness.stub.transfer = succeeds
    await handle.signal(PayoutScheduleWorkflow.trigger, TriggerPayout(by="ops-1"))
    result = await handle.result()

    assert [(run.event, run.actor) for run, _ in harness.stub.runs] == [
        ("scheduled", "payout-schedule"),
        ("manual", "ops-1"),
    ]
    assert harness.stub.attempts[-1][:2] == (1, 1)  # run 1: a new Stripe key
    assert (result.status, result.stripe_transfer_id, result.retry_count) == (
        "completed",
        "tr_run1",
        0,
    )


async def test_an_account_error_is_not_retried_and_fails_the_schedule(harness: Harness) -> None:
    harness.stub.transfer = declined
    handle, _ = await harness.start(timedelta(hours=1), max_attempts=5)

    await harness.env.sleep(timedelta(days=1))
    failed = await harness.status(handle)

    assert len(harness.stub.attempts) == 1
    assert failed.status == "failed"
    assert failed.last_error == "CardDeclined: the destination account cannot receive transfers"
    assert len(harness.stub.failed) == 1 and harness.stub.completed == []

    await handle.signal(PayoutScheduleWorkflow.cancel, CancelPayout(reason="account closed"))
    result = await handle.result()

    assert result.status == "cancelled"
    assert len(harness.stub.attempts) == 1


async def test_cancel_before_the_date_never_pays(harness: Harness) -> None:
    handle, _ = await harness.start(timedelta(days=7))

    await handle.signal(PayoutScheduleWorkflow.cancel, CancelPayout(reason="contract ended"))
    result = await handle.result()

    assert result.status == "cancelled"
    assert harness.stub.runs == [] and harness.stub.attempts == []
    [cancel] = harness.stub.cancelled
    assert cancel.reason == "contract ended"


async def test_the_configured_event_pays_before_the_date(harness: Harness) -> None:
    handle, scheduled_for = await harness.start(timedelta(days=30))

    await handle.signal(PayoutScheduleWorkflow.trigger, TriggerPayout(event=TRIGGER_EVENT))
    result = await handle.result()

    [(run, run_at)] = harness.stub.runs
    assert run.event == TRIGGER_EVENT
    assert run_at < scheduled_for - timedelta(days=29)
    [(_, _, paid_at)] = harness.stub.attempts
    assert paid_at < scheduled_for
    assert result.status == "completed"


async def test_another_event_does_not_pay_early(harness: Harness) -> None:
    handle, scheduled_for = await harness.start(timedelta(days=30))

    await handle.signal(PayoutScheduleWorkflow.trigger, TriggerPayout(event="contract_signed"))
    await harness.env.sleep(timedelta(days=29))
    assert harness.stub.runs == []
    assert (await harness.status(handle)).status == "pending"

    result = await handle.result()

    [(run, run_at)] = harness.stub.runs
    assert run.event == "scheduled" and run_at >= scheduled_for
    assert result.status == "completed"

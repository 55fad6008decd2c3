"""The anchoring workflows on the time-skipping server, with name-matched stub activities.

As in production, the database steps run on the main task queue and the chain steps
(``submit_anchor_batch``, ``check_anchor_batch``) on a separate chain queue whose worker
runs one activity at a time. Retry backoffs and poll timers run in skipped time: a poll
interval of ten minutes would otherwise outlast the test timeout.
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

from workflows.anchoring import CHAIN_RETRY, AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.types import (
    AnchoredBatch,
    AnchorRunInput,
    AnchorRunResult,
    BatchInput,
    BatchRef,
    CheckBatchInput,
    CheckBatchResult,
    ConfirmRunInput,
    ConfirmRunResult,
    CreateBatchInput,
    FailBatchInput,
    SubmitBatchResult,
    SubmittedBatches,
)

SubmitBehaviour = Callable[[BatchInput, int], SubmitBatchResult]
CheckBehaviour = Callable[[CheckBatchInput, int], CheckBatchResult]


def tx_of(batch_id: int) -> str:
    return f"0x{batch_id:064x}"


def submit_ok(request: BatchInput, _attempt: int) -> SubmitBatchResult:
    return SubmitBatchResult(tx_hash=tx_of(request.batch_id))


def confirmed_on_third_look(request: CheckBatchInput, looks: int) -> CheckBatchResult:
    """SUBMITTED twice, then CONFIRMED at the asked depth."""
    if looks < 3:
        return CheckBatchResult(status="SUBMITTED")
    return CheckBatchResult(
        status="CONFIRMED", confirmations=request.confirmations, block_number=100
    )


@dataclass
class Calls:
    """What the stubs were asked, and when (in the server's skipped time)."""

    created: list[CreateBatchInput] = field(default_factory=list)
    submitted: list[tuple[int, int]] = field(default_factory=list)  # (batch_id, attempt)
    checked: list[CheckBatchInput] = field(default_factory=list)
    checked_at: list[datetime] = field(default_factory=list)
    failed: list[FailBatchInput] = field(default_factory=list)
    listed: int = 0

    def looks_at(self, batch_id: int) -> int:
        return sum(1 for check in self.checked if check.batch_id == batch_id)


@dataclass
class Script:
    """How the stubbed database and chain answer; each test sets what it needs."""

    batches: list[BatchRef] = field(default_factory=list)  # then BatchRef(): nothing waiting
    submit: SubmitBehaviour = submit_ok
    check: CheckBehaviour = confirmed_on_third_look
    submitted_ids: list[int] = field(default_factory=list)


@dataclass
class Harness:
    env: WorkflowEnvironment
    queue: str
    chain_queue: str
    calls: Calls
    script: Script

    def run_input(self, **fields: int) -> AnchorRunInput:
        values: dict[str, int] = {"poll_seconds": 600, "confirm_timeout_seconds": 7200}
        values.update(fields)
        return AnchorRunInput(chain_task_queue=self.chain_queue, **values)

    async def anchor(self, request: AnchorRunInput) -> AnchorRunResult:
        handle: WorkflowHandle[
            AnchorTicketsWorkflow, AnchorRunResult
        ] = await self.env.client.start_workflow(
            AnchorTicketsWorkflow.run,
            request,
            id=f"anchor-run-{uuid.uuid4()}",
            task_queue=self.queue,
        )
        return await handle.result()

    async def confirm(self, confirmations: int) -> ConfirmRunResult:
        return await self.env.client.execute_workflow(
            ConfirmAnchorBatchesWorkflow.run,
            ConfirmRunInput(confirmations=confirmations, chain_task_queue=self.chain_queue),
            id=f"anchor-confirmations-{uuid.uuid4()}",
            task_queue=self.queue,
        )


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    calls = Calls()
    script = Script()

    @activity.defn(name="create_anchor_batch")
    async def create_anchor_batch(request: CreateBatchInput) -> BatchRef:
        calls.created.append(request)
        return script.batches.pop(0) if script.batches else BatchRef()

    @activity.defn(name="fail_anchor_batch")
    async def fail_anchor_batch(request: FailBatchInput) -> None:
        calls.failed.append(request)

    @activity.defn(name="list_submitted_batches")
    async def list_submitted_batches(_: BatchRef) -> SubmittedBatches:
        calls.listed += 1
        return SubmittedBatches(batch_ids=script.submitted_ids)

    @activity.defn(name="submit_anchor_batch")
    async def submit_anchor_batch(request: BatchInput) -> SubmitBatchResult:
        attempt = activity.info().attempt
        calls.submitted.append((request.batch_id, attempt))
        return script.submit(request, attempt)

    @activity.defn(name="check_anchor_batch")
    async def check_anchor_batch(request: CheckBatchInput) -> CheckBatchResult:
        calls.checked.append(request)
        calls.checked_at.append(await time_skipping_env.get_current_time())
        return script.check(request, calls.looks_at(request.batch_id))

    queue = f"anchoring-{uuid.uuid4()}"
    chain_queue = f"anchoring-chain-{uuid.uuid4()}"
    async with (
        Worker(
            time_skipping_env.client,
            task_queue=queue,
            workflows=[AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow],
            activities=[create_anchor_batch, fail_anchor_batch, list_submitted_batches],
        ),
        Worker(
            time_skipping_env.client,
            task_queue=chain_queue,
            activities=[submit_anchor_batch, check_anchor_batch],
            max_concurrent_activities=1,
        ),
    ):
        yield Harness(time_skipping_env, queue, chain_queue, calls, script)


def refused(request: BatchInput, _attempt: int) -> SubmitBatchResult:
    raise ApplicationError(
        f"the anchor transaction of batch {request.batch_id} reverted",
        {"code": "contract_revert"},
        type="ChainRefused",
        non_retryable=True,
    )


def chain_away(_request: BatchInput, _attempt: int) -> SubmitBatchResult:
    raise Exception("connection refused by the RPC node")


async def test_one_batch_is_submitted_polled_and_confirmed(harness: Harness) -> None:
    harness.script.batches = [BatchRef(batch_id=1, leaf_count=7)]
    request = harness.run_input(confirmations=3, max_leaves=250)

    result = await harness.anchor(request)

    assert result == AnchorRunResult(
        batches=[AnchoredBatch(batch_id=1, leaf_count=7, status="CONFIRMED", tx_hash=tx_of(1))]
    )
    calls = harness.calls
    assert calls.created == [CreateBatchInput(max_leaves=250)] * 2  # batch 1, then nothing
    assert calls.submitted == [(1, 1)]
    assert calls.checked == [CheckBatchInput(batch_id=1, confirmations=3)] * 3
    assert calls.failed == []
    # Two poll timers of ten minutes fired between the looks, in skipped time.
    gaps = [later - earlier for earlier, later in pairwise(calls.checked_at)]
    assert all(gap >= timedelta(seconds=request.poll_seconds) for gap in gaps), gaps


async def test_several_batches_are_anchored_in_order(harness: Harness) -> None:
    harness.script.batches = [
        BatchRef(batch_id=1, leaf_count=1000),
        BatchRef(batch_id=2, leaf_count=12),
    ]

    result = await harness.anchor(harness.run_input())

    assert [(b.batch_id, b.leaf_count, b.status, b.tx_hash) for b in result.batches] == [
        (1, 1000, "CONFIRMED", tx_of(1)),
        (2, 12, "CONFIRMED", tx_of(2)),
    ]
    assert len(harness.calls.created) == 3
    assert harness.calls.submitted == [(1, 1), (2, 1)]
    assert [check.batch_id for check in harness.calls.checked] == [1, 1, 1, 2, 2, 2]


async def test_a_refused_submission_fails_the_batch_and_stops_the_run(harness: Harness) -> None:
    harness.script.batches = [BatchRef(batch_id=5, leaf_count=3), BatchRef(batch_id=6)]
    harness.script.submit = refused

    result = await harness.anchor(harness.run_input())

    error = "ChainRefused: the anchor transaction of batch 5 reverted"
    assert result == AnchorRunResult(
        batches=[AnchoredBatch(batch_id=5, leaf_count=3, status="FAILED", error=error)]
    )
    assert harness.calls.submitted == [(5, 1)]  # non-retryable: one attempt
    assert harness.calls.failed == [FailBatchInput(batch_id=5, error=error)]
    assert harness.calls.checked == []
    assert len(harness.calls.created) == 1  # batch 6 is left for the next run


async def test_a_chain_outage_is_retried_then_the_batch_confirms(harness: Harness) -> None:
    harness.script.batches = [BatchRef(batch_id=1, leaf_count=4)]

    def flaky(request: BatchInput, attempt: int) -> SubmitBatchResult:
        if attempt <= 2:
            chain_away(request, attempt)
        return submit_ok(request, attempt)

    harness.script.submit = flaky

    result = await harness.anchor(harness.run_input())

    [batch] = result.batches
    assert (batch.status, batch.tx_hash, batch.error) == ("CONFIRMED", tx_of(1), None)
    assert harness.calls.submitted == [(1, 1), (1, 2), (1, 3)]
    assert harness.calls.failed == []


async def test_a_lasting_chain_outage_fails_the_batch_after_the_retry_policy(
    harness: Harness,
) -> None:
    harness.script.batches = [BatchRef(batch_id=1, leaf_count=4), BatchRef(batch_id=2)]
    harness.script.submit = chain_away

    result = await harness.anchor(harness.run_input())

    assert CHAIN_RETRY.maximum_attempts > 1
    attempts = [attempt for _, attempt in harness.calls.submitted]
    assert attempts == list(range(1, CHAIN_RETRY.maximum_attempts + 1))
    [batch] = result.batches
    assert batch.status == "FAILED"
    assert batch.error == "Exception: connection refused by the RPC node"
    assert harness.calls.failed == [FailBatchInput(batch_id=1, error=batch.error)]
    assert harness.calls.checked == []
    assert len(harness.calls.created) == 1


async def test_without_confirmation_the_batch_is_left_submitted(harness: Harness) -> None:
    harness.script.batches = [BatchRef(batch_id=9, leaf_count=2), BatchRef(batch_id=10)]
    harness.script.check = lambda _request, _looks: CheckBatchResult(status="SUBMITTED")
    request = harness.run_input(poll_seconds=5, confirm_timeout_seconds=60)

    result = await harness.anchor(request)

    assert result == AnchorRunResult(
        batches=[AnchoredBatch(batch_id=9, leaf_count=2, status="SUBMITTED", tx_hash=tx_of(9))]
    )
    checked_at = harness.calls.checked_at
    waited = checked_at[-1] - checked_at[0]
    assert timedelta(seconds=60) <= waited < timedelta(seconds=60 + 2 * 5), waited
    assert 60 // 5 <= len(checked_at) <= 60 // 5 + 2
    assert harness.calls.failed == []
    assert len(harness.calls.created) == 1  # batch 10 waits for the next run


async def test_a_reverted_transaction_ends_the_run_with_the_batch_failed(
    harness: Harness,
) -> None:
    harness.script.batches = [BatchRef(batch_id=4, leaf_count=2), BatchRef(batch_id=5)]
    error = "the anchor transaction 0xabc reverted in block 12"
    harness.script.check = lambda _request, _looks: CheckBatchResult(status="FAILED", error=error)

    result = await harness.anchor(harness.run_input())

    assert result == AnchorRunResult(
        batches=[
            AnchoredBatch(batch_id=4, leaf_count=2, status="FAILED", tx_hash=tx_of(4), error=error)
        ]
    )
    assert harness.calls.failed == []  # check_anchor_batch marks the batch FAILED itself
    assert len(harness.calls.created) == 1


async def test_a_failing_check_leaves_the_batch_submitted_with_the_error(
    harness: Harness,
) -> None:
    harness.script.batches = [BatchRef(batch_id=4, leaf_count=2), BatchRef(batch_id=5)]

    def not_found(request: CheckBatchInput, _looks: int) -> CheckBatchResult:
        raise ApplicationError(
            f"batch {request.batch_id} not found", type="NotFound", non_retryable=True
        )

    harness.script.check = not_found

    result = await harness.anchor(harness.run_input())

    [batch] = result.batches
    assert (batch.status, batch.tx_hash) == ("SUBMITTED", tx_of(4))
    assert batch.error == "NotFound: batch 4 not found"
    assert len(harness.calls.checked) == 1
    assert harness.calls.failed == []
    assert len(harness.calls.created) == 1


async def test_nothing_waiting_gives_an_empty_run(harness: Harness) -> None:
    result = await harness.anchor(harness.run_input())

    assert result == AnchorRunResult()
    assert len(harness.calls.created) == 1
    assert harness.calls.submitted == []
    assert harness.calls.checked == []


async def test_max_batches_bounds_a_run(harness: Harness) -> None:
    harness.script.batches = [BatchRef(batch_id=n, leaf_count=1) for n in range(1, 6)]
    harness.script.check = lambda request, _looks: CheckBatchResult(
        status="CONFIRMED", confirmations=request.confirmations
    )

    result = await harness.anchor(harness.run_input(max_batches=2))

    assert [batch.batch_id for batch in result.batches] == [1, 2]
    assert len(harness.calls.created) == 2
    assert [batch.batch_id for batch in harness.script.batches] == [3, 4, 5]


async def test_confirmation_run_checks_every_submitted_batch(harness: Harness) -> None:
    harness.script.submitted_ids = [3, 4]
    harness.script.check = lambda request, _looks: CheckBatchResult(
        status="CONFIRMED" if request.batch_id == 3 else "SUBMITTED"
    )

    result = await harness.confirm(confirmations=12)

    assert result == ConfirmRunResult(checked=2, confirmed=1)
    assert harness.calls.listed == 1
    assert harness.calls.checked == [
        CheckBatchInput(batch_id=3, confirmations=12),
        CheckBatchInput(batch_id=4, confirmations=12),
    ]


async def test_confirmation_run_stops_when_the_chain_stays_away(harness: Harness) -> None:
    harness.script.submitted_ids = [3, 4, 5]

    def away(_request: CheckBatchInput, _looks: int) -> CheckBatchResult:
        raise Exception("connection refused by the RPC node")

    harness.script.check = away

    result = await harness.confirm(confirmations=1)

    assert result == ConfirmRunResult(checked=0, confirmed=0)
    assert [check.batch_id for check in harness.calls.checked] == [3] * (
        CHAIN_RETRY.maximum_attempts
    )

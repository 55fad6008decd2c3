"""The idempotency-key purge workflow on the time-skipping server, with a name-matched stub."""

import uuid

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.types import PurgeInput, PurgeResult


async def test_purge_workflow_retries_a_failing_activity_then_reports_deleted(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    calls = 0

    @activity.defn(name="purge_expired_idempotency_keys")
    async def flaky_purge(_: PurgeInput) -> PurgeResult:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("database unavailable")
        return PurgeResult(deleted=7)

    queue = f"test-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[PurgeExpiredIdempotencyKeysWorkflow],
        activities=[flaky_purge],
    ):
        handle = await time_skipping_env.client.start_workflow(
            PurgeExpiredIdempotencyKeysWorkflow.run,
            PurgeInput(),
            id=f"purge-{uuid.uuid4()}",
            task_queue=queue,
        )
        result = await handle.result()
        assert result == PurgeResult(deleted=7)
        assert calls == 3
        assert await handle.query(PurgeExpiredIdempotencyKeysWorkflow.status) == {
            "status": "completed",
            "deleted": 7,
        }

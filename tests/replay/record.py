"""Record a history of each workflow for the replay tests: ``python -m tests.replay.record``.

Run it when a workflow is added; never to make a changed workflow pass (that is what
``workflow.patched`` is for). Histories are recorded on the time-skipping server with
name-matched stub activities.
"""

import asyncio
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.search_attributes import ALL
from workflows.types import PurgeInput, PurgeResult

HISTORIES = Path(__file__).parent / "histories"


@activity.defn(name="purge_expired_idempotency_keys")
async def purge(_: PurgeInput) -> PurgeResult:
    return PurgeResult(deleted=3)


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        queue = f"record-{uuid.uuid4()}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[PurgeExpiredIdempotencyKeysWorkflow],
            activities=[purge],
        ):
            handle = await env.client.start_workflow(
                PurgeExpiredIdempotencyKeysWorkflow.run,
                PurgeInput(),
                id="purge-recorded",
                task_queue=queue,
            )
            await handle.result()
            history = await handle.fetch_history()
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "purge_expired_idempotency_keys.json").write_text(history.to_json())
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())

"""Log lines written in a workflow and in its activity, on a real worker of the time-skipping
server, carry the workflow's and the activity's ids as JSON fields."""

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from observability.logs import ContextFilter, JsonFormatter, quiet_temporal_messages

module_log = logging.getLogger("tollgate.test.activities")


@activity.defn(name="observability_test_charge")
async def charge(card_hint: str) -> str:
    activity.logger.info("charging a card")
    # A plain module logger, as most activities use, gets the activity's ids too.
    module_log.warning("card %s declined", card_hint)
    return "declined"


@workflow.defn(name="ObservabilityTestPayment")
class PaymentLike:
    @workflow.run
    async def run(self, card_hint: str) -> str:
        workflow.logger.info("payment started")
        return await workflow.execute_activity(
            charge, card_hint, start_to_close_timeout=timedelta(seconds=10)
        )


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    """JSON lines of the workflow, activity and module loggers, as the worker writes them."""
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter(service="tollgate-worker"))
    handler.addFilter(ContextFilter())
    names = ("temporalio.workflow", "temporalio.activity", module_log.name)
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(handler)
    try:
        yield captured
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(levels[name])


async def test_workflow_and_activity_lines_carry_their_ids(
    time_skipping_env: WorkflowEnvironment, json_logs: Captured
) -> None:
    quiet_temporal_messages()
    queue = f"test-{uuid.uuid4()}"
    workflow_id = f"observability-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[PaymentLike],
        activities=[charge],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            PaymentLike.run, "4242424242424242", id=workflow_id, task_queue=queue
        )
        assert await handle.result() == "declined"

    lines = json_logs.lines()
    by_message = {line["message"]: line for line in lines}
    started = by_message["payment started"]
    assert started["workflow_id"] == workflow_id
    assert started["run_id"] == handle.result_run_id
    assert started["workflow_type"] == "ObservabilityTestPayment"
    assert "activity_id" not in started

    for message in ("charging a card", "card [REDACTED CARD ****4242] declined"):
        line = by_message[message]
        assert line["workflow_id"] == workflow_id
        assert line["run_id"] == handle.result_run_id
        assert line["activity_type"] == "observability_test_charge"
        assert line["activity_id"]
        assert line["attempt"] == 1
        assert line["task_queue"] == queue
    assert "4242424242424242" not in json.dumps(lines)

"""Every recorded history still replays against today's workflow code, and every workflow
type the worker registers has at least one recorded history."""

import asyncio
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOW_RUNNER, WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_to_replay() -> None:
    assert HISTORIES, "record them with `python -m tests.replay.record`"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: path.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,  # the production worker's
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def started_type(path: Path) -> str:
    """The workflow type a recorded history's WorkflowExecutionStarted event names."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    first = history.events[0]
    assert first.HasField("workflow_execution_started_event_attributes"), (
        f"{path.name} does not begin with WorkflowExecutionStarted"
    )
    return first.workflow_execution_started_event_attributes.workflow_type.name


def registered_type(cls: type) -> str:
    """The name ``@workflow.defn(name=...)`` gave ``cls`` (the SDK has no public accessor)."""
    name = workflow._Definition.must_from_class(cls).name
    assert name, f"{cls.__name__} is a dynamic workflow: it has no type to record"
    return name


def test_every_registered_workflow_type_has_a_recorded_history() -> None:
    recorded = {started_type(path) for path in HISTORIES}
    missing = sorted({registered_type(cls) for cls in WORKFLOWS} - recorded)
    assert not missing, (
        f"no recorded history of {missing}: add a recorder in tests/replay/ (registered in"
        " tests/replay/record.py) and run `python -m tests.replay.record`"
    )

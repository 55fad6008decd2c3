"""Fixtures and helpers of the in-process API tests: the API with Temporal up, and what
tests read back from responses and workflow histories."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient, Response
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.conftest import in_process_api


@pytest.fixture
async def live_api(
    settings: Settings, local_temporal: WorkflowEnvironment
) -> AsyncIterator[AsyncClient]:
    """The API with Temporal up (the local dev server; no worker runs these workflows)."""
    live = settings.model_copy(
        update={"temporal_address": local_temporal.client.service_client.config.target_host}
    )
    async with in_process_api(live) as client:
        yield client


def error_code(response: Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def signals_of(client: Client, workflow_id: str) -> list[tuple[str, Any]]:
    """The signals a workflow received, in order, with their decoded argument."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    signals = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            # Through the client's codec: the embedded stack encrypts payloads.
            [argument] = await client.data_converter.decode(attributes.input.payloads)
            signals.append((attributes.signal_name, argument))
    return signals

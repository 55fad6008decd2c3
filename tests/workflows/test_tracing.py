"""Tracing on (TOLLGATE_OTEL_ENABLED), spans kept in memory: an API request is a server span
whose ids are in its log line, and a workflow started inside a span carries the trace to the
worker (workflow and activity spans in the same trace)."""

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from observability import tracing
from observability.logs import ContextFilter, JsonFormatter
from settings import Settings
from tests.conftest import in_process_api
from worker import WORKFLOW_RUNNER
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.types import PurgeInput, PurgeResult

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (set once per process) exporting to memory."""
    if tracing._provider is None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        tracing.use_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


async def test_an_api_request_is_a_span_and_its_log_line_has_the_trace(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    requests_log = logging.getLogger("tollgate.api.requests")
    requests_log.addHandler(handler)
    requests_log.setLevel(logging.INFO)
    try:
        async with in_process_api(settings.model_copy(update={"otel_enabled": True})) as api:
            response = await api.get("/api/v1/ledger/accounts/cash")
            await api.get("/metrics")  # not traced
            interceptors = api._transport.app.state.temporal.interceptors  # type: ignore[attr-defined]
    finally:
        requests_log.removeHandler(handler)
        requests_log.setLevel(logging.NOTSET)

    assert response.status_code == 401
    [server] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert server.name == "GET /api/v1/ledger/accounts/{code}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/v1/ledger/accounts/{code}"
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["request_id"] == response.headers["X-Request-Id"]
    # The API's Temporal client carries the trace into the workflows it starts.
    assert [type(i).__name__ for i in interceptors] == ["TracingInterceptor"]


async def test_a_workflow_started_in_a_span_is_traced_through_the_worker(
    time_skipping_env: WorkflowEnvironment, spans: InMemorySpanExporter
) -> None:
    [interceptor] = tracing.temporal_interceptors(True)
    config = time_skipping_env.client.config()
    config["interceptors"] = [interceptor]
    client = Client(**config)

    @activity.defn(name="purge_expired_idempotency_keys")
    async def purge(_: PurgeInput) -> PurgeResult:
        return PurgeResult(deleted=3)

    queue = f"test-{uuid.uuid4()}"
    workflow_id = f"purge-{uuid.uuid4()}"
    # The worker gets the interceptor from the client, as the real worker does.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[PurgeExpiredIdempotencyKeysWorkflow],
        activities=[purge],
        workflow_runner=WORKFLOW_RUNNER,
    ):
        tracer = tracing._provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("POST /api/v1/anything") as parent:
            handle = await client.start_workflow(
                PurgeExpiredIdempotencyKeysWorkflow.run,
                PurgeInput(),
                id=workflow_id,
                task_queue=queue,
            )
        assert await handle.result() == PurgeResult(deleted=3)

    finished = spans.get_finished_spans()
    names = {span.name for span in finished}
    for expected in (
        "StartWorkflow:PurgeExpiredIdempotencyKeys",
        "RunWorkflow:PurgeExpiredIdempotencyKeys",
        "StartActivity:purge_expired_idempotency_keys",
        "RunActivity:purge_expired_idempotency_keys",
    ):
        assert expected in names, names
    trace_id = parent.get_span_context().trace_id
    assert {span.context.trace_id for span in finished if ":" in span.name} == {trace_id}
    run = next(span for span in finished if span.name.startswith("RunWorkflow:"))
    assert run.attributes is not None
    assert run.attributes["temporalWorkflowID"] == workflow_id

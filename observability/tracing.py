"""Tracing with OpenTelemetry, off by default (``TOLLGATE_OTEL_ENABLED``).

When on, the process has one tracer provider (service name from ``OTEL_SERVICE_NAME``, else
``tollgate-api`` / ``tollgate-worker``) exporting spans in batches over OTLP/HTTP (endpoint and
headers from the standard ``OTEL_EXPORTER_OTLP_*`` variables) or to the console; the API's
FastAPI app is instrumented (a server span per request, ``/metrics`` and ``/healthz`` left
out); and Temporal clients get ``temporalio.contrib.opentelemetry.TracingInterceptor``, which
carries the trace context in the headers of workflow starts, signals, queries and updates and
opens spans for them in the worker (``StartWorkflow:…``, ``RunWorkflow:…``,
``StartActivity:…``, ``RunActivity:…``), so an API request and the workflow and activities it
caused are one trace. Log lines get the ``trace_id`` and ``span_id`` of the current span.

When off, nothing of OpenTelemetry's SDK is imported.
"""

import logging
import os
from typing import TYPE_CHECKING, Any

from observability import logs

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor


log = logging.getLogger(__name__)

_provider: "TracerProvider | None" = None

# Not traced: scrapes and probes would drown the requests.
EXCLUDED_URLS = "/metrics,/healthz"


def configure(*, enabled: bool, exporter: str = "otlp", service: str) -> bool:
    """Set the process's tracer provider once (a second call keeps the first); whether on."""
    if not enabled:
        return False
    if _provider is not None:
        return True
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    span_exporter: SpanExporter
    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    use_provider(provider)
    log.info("tracing on: spans exported to %s", exporter)
    return True


def use_provider(provider: "TracerProvider") -> None:
    """Make ``provider`` the process's tracer provider (also what tests call, with an
    in-memory exporter)."""
    global _provider
    from opentelemetry import trace

    if _provider is None:
        trace.set_tracer_provider(provider)
    _provider = provider
    logs.add_record_enricher(_trace_ids)


def shutdown() -> None:
    """Flush the spans still buffered (at process exit)."""
    if _provider is not None:
        _provider.force_flush()
        _provider.shutdown()


def instrument_app(app: "FastAPI") -> None:
    """A server span per request (after :func:`configure` turned tracing on)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=EXCLUDED_URLS)


def temporal_interceptors(enabled: bool) -> list["Interceptor"]:
    """The interceptors a Temporal client needs for tracing: none when it is off."""
    if not enabled or _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer=_provider.get_tracer("tollgate.temporal"))]


def _trace_ids(record: logging.LogRecord) -> None:
    from opentelemetry import trace

    context: Any = trace.get_current_span().get_span_context()
    if context.is_valid:
        record.trace_id = format(context.trace_id, "032x")
        record.span_id = format(context.span_id, "016x")

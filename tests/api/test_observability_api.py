"""The API's request ids, request log and business metrics: an id on every answer, in the log
lines and audit events of its request; /metrics with the database's figures, and without
failing when the database is away."""

import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpx import ASGITransport, AsyncClient

from api.app import create_app
from devstack.net import free_port
from observability.logs import ContextFilter, JsonFormatter
from settings import Settings
from tests.conftest import TokenFactory, in_process_api


@contextmanager
def json_lines(logger_name: str) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines ``logger_name`` writes meanwhile, as the processes' handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="test"))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


async def test_every_answer_carries_a_request_id(api: AsyncClient) -> None:
    mine = await api.get("/healthz", headers={"X-Request-Id": "req-from-the-edge_42"})
    assert mine.headers["X-Request-Id"] == "req-from-the-edge_42"

    made = (await api.get("/api/v1/nope")).headers["X-Request-Id"]
    assert uuid.UUID(made)
    # An id that could forge log lines or grow without bound is replaced.
    for insane in ("evil\nid", "x" * 200, "a b"):
        replaced = (await api.get("/healthz", headers={"X-Request-Id": insane})).headers
        assert uuid.UUID(replaced["X-Request-Id"])


async def test_the_request_log_line_carries_the_request_id(
    api: AsyncClient, auth: TokenFactory
) -> None:
    with json_lines("tollgate.api.requests") as lines:
        response = await api.get(
            "/api/v1/ledger/accounts/cash?secret=hunter2-and-more",
            headers={**auth("platform_admin"), "X-Request-Id": "req-log-1"},
        )
    assert response.status_code == 404

    [line] = lines
    assert line["request_id"] == "req-log-1"
    assert line["logger"] == "tollgate.api.requests"
    assert line["level"] == "info"
    assert line["http_status"] == 404
    assert line["http_route"] == "/api/v1/ledger/accounts/{code}"
    assert line["http_path"] == "/api/v1/ledger/accounts/cash"  # no query string
    assert "hunter2" not in json.dumps(line)
    assert "Bearer" not in json.dumps(line)
    assert line["duration_ms"] >= 0


async def test_the_audit_event_of_a_request_has_its_id(
    api: AsyncClient, auth: TokenFactory
) -> None:
    request_id = str(uuid.uuid4())
    admin = auth("platform_admin")
    created = await api.post(
        "/api/v1/ledger/accounts",
        json={"code": "obs-cash", "name": "Cash", "type": "asset"},
        headers={**admin, "X-Request-Id": request_id},
    )
    assert created.status_code == 201, created.text

    events = await api.get(
        "/api/v1/audit-events", params={"entity_type": "ledger_account"}, headers=admin
    )
    [event] = [e for e in events.json()["data"] if e["entity_id"] == created.json()["id"]]
    assert event["request_id"] == request_id


async def test_an_unexpected_error_is_logged_and_answered_with_the_request_id(
    settings: Settings,
) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("kaboom with sk_live_abcdefghijklmnop")

    app.add_api_route("/boom", boom)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://tollgate.test") as client:
            with json_lines("api.errors") as lines:
                response = await client.get("/boom", headers={"X-Request-Id": "req-boom"})

    assert response.status_code == 500
    assert response.headers["X-Request-Id"] == "req-boom"
    [line] = lines
    assert line["request_id"] == "req-boom"
    assert line["message"] == "unhandled error"
    assert "kaboom" in line["exception"]
    assert "abcdefghijklmnop" not in line["exception"]


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of the sample ``name{labels}`` in a Prometheus exposition."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


async def test_metrics_include_the_business_figures(api: AsyncClient) -> None:
    text = (await api.get("/metrics")).text

    assert sample(text, "tollgate_business_metrics_up") == 1
    assert sample(text, "tollgate_payouts_completed_total") == 0
    assert sample(text, "tollgate_payout_schedules", 'status="completed"') == 0
    assert sample(text, "tollgate_escrow_release_lateness_seconds_count") == 0
    assert sample(text, "tollgate_escrow_release_lateness_seconds_bucket", 'le="+Inf"') == 0
    assert sample(text, "tollgate_dunning_attempts_total", 'attempt="retry",outcome="failed"') == 0
    assert sample(text, "tollgate_anchoring_backlog_tickets", 'stage="unbatched"') == 0
    assert sample(text, "tollgate_webhook_deliveries", 'status="dead_lettered"') == 0
    assert "tollgate_http_requests_total" in text


async def test_metrics_answer_when_the_database_is_away(settings: Settings) -> None:
    away = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"}
    )
    async with in_process_api(away) as api:
        response = await api.get("/metrics")

    assert response.status_code == 200
    assert sample(response.text, "tollgate_business_metrics_up") == 0
    assert "tollgate_payouts_completed_total" not in response.text
    assert "tollgate_http_requests_total" in response.text

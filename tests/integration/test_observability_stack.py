"""Observability of the embedded stack as `make run` starts it: after a payout completes, its
counter is on the API's /metrics; the worker serves the Temporal SDK's metrics; the API and
worker logs are JSON lines, a request's line with its request id."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from devstack.ephemeral import RunningStack
from models.engine import make_engine, make_sessionmaker
from models.escrow import Payout, PayoutSchedule
from tests.conftest import TokenFactory
from tests.integration.conftest import Names
from tests.integration.test_escrow_payouts_stack import CURRENCY, fund, sandbox, until

pytestmark = pytest.mark.integration


def sample(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0].removeprefix(prefix)) if found else None


def json_lines(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def test_a_completed_payout_is_counted_on_metrics(
    n: Names, embedded: RunningStack, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    amount = 4321
    admin = auth("platform_admin")
    async with sandbox(embedded) as stripe:
        await fund(stripe, amount)
        activated = await stack_api.post(
            f"/api/v1/placements/{n('placement')}/activate",
            json={
                "payer_id": n("payer"),
                "payee_id": n("payee"),
                "destination": f"acct_{uuid.uuid4().hex[:16]}",
                "amount": amount,
                "currency": CURRENCY,
                "guarantee_ends_at": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
            },
            headers=admin,
        )
        assert activated.status_code == 201, activated.text
        schedule_id = activated.json()["payout_schedule"]["id"]

        async def completed() -> bool:
            schedule = await stack_api.get(f"/api/v1/payout-schedules/{schedule_id}", headers=admin)
            assert schedule.json()["status"] != "failed", schedule.text
            return bool(schedule.json()["status"] == "completed")

        await until(completed, "the payout", 60)

    # What the database holds now, ours included: a snapshot taken before our payout
    # completed has fewer (these counts only grow), so reaching them proves ours is counted.
    engine = make_engine(embedded.settings.sqlalchemy_url)
    try:
        async with make_sessionmaker(engine)() as session:
            payouts = await session.scalar(select(func.count()).select_from(Payout))
            schedules_completed = await session.scalar(
                select(func.count())
                .select_from(PayoutSchedule)
                .where(PayoutSchedule.status == "completed")
            )
    finally:
        await engine.dispose()
    assert payouts and schedules_completed

    async def counted() -> str | None:
        text = (await stack_api.get("/metrics")).text
        done = sample(text, "tollgate_payouts_completed_total")
        return text if done is not None and done >= payouts else None

    text = await until(counted, "the payout on /metrics", 45)
    assert sample(text, "tollgate_business_metrics_up") == 1
    assert (sample(text, "tollgate_payout_schedules", 'status="completed"') or 0) >= (
        schedules_completed
    )
    assert (sample(text, "tollgate_payouts_completed_amount_total", 'currency="USD"') or 0) >= (
        amount
    )
    # Its hold was released on time by its workflow's timer: in the lateness histogram.
    assert (sample(text, "tollgate_escrow_release_lateness_seconds_count") or 0) >= 1
    assert "tollgate_http_request_duration_seconds_bucket" in text


async def test_the_worker_serves_sdk_metrics_and_the_logs_are_json(
    embedded: RunningStack, stack_api: AsyncClient
) -> None:
    settings = embedded.settings
    async with httpx.AsyncClient(timeout=10) as client:
        worker_metrics = await client.get(
            f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
        )
    assert worker_metrics.status_code == 200
    assert any(line.startswith("temporal_") for line in worker_metrics.text.splitlines()), (
        worker_metrics.text[:2000]
    )

    request_id = f"obs-{uuid.uuid4()}"
    answered = await stack_api.get("/healthz", headers={"X-Request-Id": request_id})
    assert answered.headers["X-Request-Id"] == request_id
    await stack_api.get("/api/v1/tickets/keys", headers={"X-Request-Id": request_id})
    logs = settings.data_dir.resolve() / "logs"

    async def logged() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(logs / "api.log")
            if line.get("request_id") == request_id and line["logger"] == "tollgate.api.requests"
        ]

    [line] = await until(logged, "the request's log line", 10)
    assert line["service"] == "tollgate-api"
    assert line["http_route"] == "/api/v1/tickets/keys"

    worker_lines = json_lines(logs / "worker.log")
    assert any(line["message"].startswith("worker polling") for line in worker_lines)
    assert {line.get("service") for line in worker_lines} == {"tollgate-worker"}

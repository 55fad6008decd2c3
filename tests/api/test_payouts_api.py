"""Payout schedules over HTTP, in process; Temporal is down unless a test uses ``live_api``."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.routers import payouts as payouts_router
from domain.actors import SYSTEM
from models.escrow import PayoutSchedule
from services import payouts
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory

URL = "/api/v1/payout-schedules"
LATER = datetime.now(UTC) + timedelta(days=30)


def schedule_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payee_id": "recruiter-1",
        "destination": "acct_123ABC",
        "amount": 25_000,
        "currency": "EUR",
        "trigger_event": "guarantee_period_end",
        "scheduled_for": LATER.isoformat(),
    }
    return {**body, **changes}


async def create(api: AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    response = await api.post(URL, json=schedule_body(**changes), headers=auth("platform_admin"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def move(db: async_sessionmaker[AsyncSession], schedule_id: str, to: str) -> None:
    """Drive a schedule the way its workflow's activities would."""
    key = uuid.UUID(schedule_id)
    async with db() as session, session.begin():
        if to in ("processing", "completed", "failed"):
            await payouts.start_run(session, key, event="manual", actor=SYSTEM)
        if to == "completed":
            await payouts.complete(session, key, transfer_id=f"tr_{key.hex[:8]}", actor=SYSTEM)
        if to == "failed":
            await payouts.fail(session, key, error="card declined", actor=SYSTEM, final=True)
        if to == "cancelled":
            await payouts.cancel(session, key, actor=SYSTEM)


async def test_create_commits_though_temporal_is_down(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    schedule = await create(api, auth, max_attempts=5, metadata={"k": "v"})
    assert schedule["status"] == "pending" and schedule["max_attempts"] == 5
    assert schedule["workflow_id"] == f"payout-schedule-{schedule['id']}"
    assert (await api.get(f"{URL}/{schedule['id']}", headers=admin)).json() == schedule


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "usdc"}, "currency"),
        ({"scheduled_for": "2030-01-01T09:00:00"}, "scheduled_for"),
        ({"trigger_event": "whenever"}, "trigger_event"),
        ({"destination": "not-a-stripe-account"}, "destination"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_seconds": 86_401}, "backoff_seconds"),
    ],
)
async def test_bad_input_is_a_400_and_creates_nothing(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    changes: dict[str, Any],
    param: str,
) -> None:
    response = await api.post(URL, json=schedule_body(**changes), headers=auth("platform_admin"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(PayoutSchedule)) == 0


async def test_a_missing_hold_is_a_404(api: AsyncClient, auth: TokenFactory) -> None:
    response = await api.post(
        URL, json=schedule_body(hold_id=str(uuid.uuid4())), headers=auth("platform_admin")
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "hold_id"


async def test_roles(api: AsyncClient, auth: TokenFactory) -> None:
    schedule = await create(api, auth)
    one = f"{URL}/{schedule['id']}"
    reads = [
        ("GET", URL, None),
        ("GET", one, None),
        ("GET", f"{URL}/stats", None),
        ("GET", f"{URL}/export.csv", None),
    ]
    triggers = [
        ("POST", f"{one}/trigger", {"event": "manual"}),
        ("POST", f"{URL}/bulk-trigger", {"ids": [schedule["id"]]}),
    ]
    writes = [
        ("POST", URL, schedule_body()),
        ("PATCH", one, {"scheduled_for": LATER.isoformat()}),
        ("DELETE", one, None),
    ]
    for role in ("customer", "vendor", "driver"):
        for method, url, body in reads + triggers + writes:
            response = await api.request(method, url, json=body, headers=auth(role))
            assert response.status_code == 403, (role, method, url)
    billing = auth("billing_admin")
    for method, url, body in reads:
        assert (await api.request(method, url, json=body, headers=billing)).status_code == 200
    # Allowed, so it reaches Temporal, which is down.
    trigger = await api.post(f"{one}/trigger", json={"event": "manual"}, headers=billing)
    assert trigger.status_code == 503 and error_code(trigger) == "provider_unavailable"
    bulk = await api.post(f"{URL}/bulk-trigger", json={"ids": [schedule["id"]]}, headers=billing)
    assert bulk.status_code == 200 and bulk.json()["failed"] == 1
    for method, url, body in writes:
        assert (await api.request(method, url, json=body, headers=billing)).status_code == 403


async def test_unknown_ids(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    missing = f"{URL}/{uuid.uuid4()}"
    for method, url, body in [
        ("GET", missing, None),
        ("PATCH", missing, {"scheduled_for": LATER.isoformat()}),
        ("DELETE", missing, None),
        ("POST", f"{missing}/trigger", {"event": "manual"}),
    ]:
        response = await api.request(method, url, json=body, headers=admin)
        assert response.status_code == 404 and error_code(response) == "resource_missing"


async def test_pagination_filters_and_id_search(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("billing_admin")
    first = await create(api, auth, trigger_event="manual")
    second = await create(api, auth, payee_id="r-2")
    third = await create(api, auth, trigger_event="contract_signed")

    page = (await api.get(URL, params={"limit": 2}, headers=admin)).json()
    assert [s["id"] for s in page["data"]] == [third["id"], second["id"]] and page["has_more"]
    rest = await api.get(URL, params={"starting_after": page["next_cursor"]}, headers=admin)
    assert [s["id"] for s in rest.json()["data"]] == [first["id"]]

    async def ids(**params: Any) -> list[str]:
        response = await api.get(URL, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["data"]]

    assert await ids(trigger_event="manual") == [first["id"]]
    assert await ids(payee_id="r-2") == [second["id"]]
    assert await ids(status="pending", trigger_event="contract_signed") == [third["id"]]
    assert await ids(status="completed") == []
    assert await ids(id=first["id"]) == [first["id"]]
    assert await ids(id=first["id"], trigger_event="contract_signed") == []
    assert (await api.get(URL, params={"trigger_event": "x"}, headers=admin)).status_code == 400


async def test_reschedule_only_while_pending_and_tells_the_workflow(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    api = live_api
    admin = auth("platform_admin")
    schedule = await create(api, auth)
    one = f"{URL}/{schedule['id']}"
    new_date = datetime(2031, 5, 1, 12, tzinfo=UTC)
    moved = await api.patch(one, json={"scheduled_for": new_date.isoformat()}, headers=admin)
    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduled_for"] == "2031-05-01T12:00:00Z"
    [(name, arg)] = await signals_of(local_temporal.client, f"payout-schedule-{schedule['id']}")
    assert name == "reschedule" and arg["scheduled_for"].startswith("2031-05-01T12:00:00")
    naive = await api.patch(one, json={"scheduled_for": "2031-05-01T12:00:00"}, headers=admin)
    assert naive.status_code == 400
    extra = await api.patch(one, json={"amount": 1}, headers=admin)
    assert extra.status_code == 400

    await move(db, schedule["id"], "processing")
    refused = await api.patch(one, json={"scheduled_for": LATER.isoformat()}, headers=admin)
    assert refused.status_code == 409 and error_code(refused) == "state_conflict"
    assert (await api.get(one, headers=admin)).json()["scheduled_for"] == "2031-05-01T12:00:00Z"


async def test_reschedule_changes_nothing_when_the_workflow_cannot_be_told(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    schedule = await create(api, auth)
    one = f"{URL}/{schedule['id']}"

    moved = await api.patch(one, json={"scheduled_for": LATER.isoformat()}, headers=admin)

    assert moved.status_code == 503 and error_code(moved) == "provider_unavailable"
    assert (await api.get(one, headers=admin)).json()["scheduled_for"] == schedule["scheduled_for"]


async def test_cancel_and_trigger_are_checked_before_signalling(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    states = {
        state: await create(api, auth)
        for state in ("pending", "processing", "completed", "failed", "cancelled")
    }
    for state, schedule in states.items():
        await move(db, schedule["id"], state)

    def url(state: str, tail: str = "") -> str:
        return f"{URL}/{states[state]['id']}{tail}"

    for state in ("processing", "completed"):
        refused = await api.delete(url(state), headers=admin)
        assert refused.status_code == 409 and error_code(refused) == "state_conflict"
    for state in ("processing", "completed", "cancelled"):
        refused = await api.post(url(state, "/trigger"), json={}, headers=admin)
        assert refused.status_code == 409, state
    already = await api.delete(url("cancelled"), headers=admin)
    assert already.status_code == 200 and already.json()["status"] == "cancelled"
    wrong_event = await api.post(
        url("pending", "/trigger"), json={"event": "contract_signed"}, headers=admin
    )
    assert wrong_event.status_code == 400 and error_code(wrong_event) == "trigger_event_mismatch"
    unknown_event = await api.post(url("pending", "/trigger"), json={"event": "x"}, headers=admin)
    assert unknown_event.status_code == 400

    for method, target, body in [
        ("DELETE", url("pending"), None),
        ("DELETE", url("failed"), None),
        ("POST", url("pending", "/trigger"), {"event": "guarantee_period_end"}),
        ("POST", url("failed", "/trigger"), None),
    ]:
        response = await api.request(method, target, json=body, headers=admin)
        assert response.status_code == 503, (method, target)
    assert (await api.get(url("pending"), headers=admin)).json()["status"] == "pending"


async def test_bulk_trigger(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("billing_admin")
    done = await create(api, auth)
    pending = await create(api, auth)
    await move(db, done["id"], "completed")
    missing = str(uuid.uuid4())
    response = await api.post(
        f"{URL}/bulk-trigger", json={"ids": [done["id"], missing, pending["id"]]}, headers=admin
    )
    assert response.status_code == 200
    assert [(i["id"], i["error"]["code"]) for i in response.json()["data"]] == [
        (done["id"], "state_conflict"),
        (missing, "resource_missing"),
        (pending["id"], "provider_unavailable"),
    ]
    too_many = await api.post(f"{URL}/bulk-trigger", json={"ids": [missing] * 501}, headers=admin)
    assert too_many.status_code == 400


async def test_stats_and_csv_export(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("api.csv_export.EXPORT_PAGE", 1)
    admin = auth("billing_admin")
    due = await create(api, auth, amount=100, scheduled_for="2020-01-01T00:00:00+00:00")
    paid = await create(api, auth, amount=200)
    await create(api, auth, amount=300, currency="USD")
    await move(db, paid["id"], "completed")

    stats = (await api.get(f"{URL}/stats", headers=admin)).json()
    assert stats == {
        "object": "payout_schedule_stats",
        "count_by_status": {"pending": 2, "completed": 1},
        "amount_by_status": {"pending": {"EUR": 100, "USD": 300}, "completed": {"EUR": 200}},
        "due": 1,
    }

    export = await api.get(f"{URL}/export.csv", params={"status": "pending"}, headers=admin)
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == list(payouts_router.SCHEDULE_COLUMNS)
    assert len(rows) == 3 and rows[2][0] == due["id"]
    assert dict(zip(rows[0], rows[2], strict=True))["scheduled_for"] == "2020-01-01T00:00:00+00:00"


async def test_with_temporal_up_trigger_and_cancel_reach_the_workflow(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    schedule = await create(live_api, auth)
    workflow_id = f"payout-schedule-{schedule['id']}"
    described = await local_temporal.client.get_workflow_handle(workflow_id).describe()
    assert described.workflow_type == "PayoutSchedule"

    billing = auth("billing_admin", sub="fin-1")
    trigger = await live_api.post(
        f"{URL}/{schedule['id']}/trigger", json={"event": "guarantee_period_end"}, headers=billing
    )
    assert trigger.status_code == 202 and trigger.json()["status"] == "pending"
    cancel = await live_api.delete(
        f"{URL}/{schedule['id']}", params={"reason": "deal off"}, headers=auth("platform_admin")
    )
    assert cancel.status_code == 202
    assert await signals_of(local_temporal.client, workflow_id) == [
        ("trigger", {"event": "guarantee_period_end", "by": "fin-1"}),
        ("cancel", {"reason": "deal off", "by": "user_1"}),
    ]

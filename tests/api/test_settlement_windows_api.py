"""Settlement windows over HTTP, in process: a platform admin configures a rail's windows as
data (refused whole when invalid, nothing stored), anyone signed in reads when the next
window is and which window a transfer submitted now settles in; a batch's transfers on that
rail are queued for it and the rail's workflow is signalled; ``settle-now`` signals it (503
while Temporal is down)."""

import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.recovery import RecoveryActivities
from domain.calendars import calendar
from domain.settlement_windows import WindowConfig, next_window, window_for
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory
from workflows.types import RecoveryInput

URL = "/api/v1/settlement-windows"
WINDOWS: dict[str, Any] = {
    "frequency": "fixed_times",
    "times": ["10:00", "16:00"],
    "cutoff_minutes": 30,
    "time_zone": "America/New_York",
    "calendar": "us_fed",
}


def parsed(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_rail_without_windows_sends_at_once(api: AsyncClient, auth: TokenFactory) -> None:
    response = await api.get(f"{URL}/stripe", headers=auth("vendor", sub="v-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["config"], body["next_window_at"], body["submitted_now_settles_at"]) == (
        None,
        None,
        None,
    )
    assert body["queue"] == {"count": 0, "amounts": {}, "next_window_at": None}
    listed = await api.get(URL, headers=auth("billing_admin"))
    assert [rail["rail"] for rail in listed.json()] == ["stripe", "chain"]


async def test_an_admin_configures_windows_and_a_partner_learns_the_next_one(
    api: AsyncClient, auth: TokenFactory
) -> None:
    response = await api.put(f"{URL}/stripe", json=WINDOWS, headers=auth("platform_admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["config"] == {"rail": "stripe", **WINDOWS}
    config = WindowConfig.from_dict(body["config"])
    settles_at = parsed(body["submitted_now_settles_at"])
    before = parsed(body["submitted_now_cutoff_at"])
    # Consistent with the window arithmetic at the moment of the request.
    assert settles_at == window_for(config, before)
    assert (settles_at - before).total_seconds() == 30 * 60
    # The next window is one of the configured local times on a Fed business day, and no
    # later than the window a transfer submitted now settles in.
    upcoming = parsed(body["next_window_at"])
    local = upcoming.astimezone(ZoneInfo("America/New_York"))
    assert local.strftime("%H:%M") in WINDOWS["times"]
    assert calendar("us_fed").is_business_day(local.date())
    assert upcoming <= settles_at
    assert next_window(config, upcoming - timedelta(seconds=1)) == upcoming

    again = await api.get(f"{URL}/stripe", headers=auth("vendor", sub="v-1"))
    assert again.json()["config"] == body["config"]


async def test_invalid_windows_are_refused_and_nothing_is_stored(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    for change, param in (
        ({"frequency": "hourly"}, "times"),  # hourly windows have no times
        ({"times": ["16:00", "10:00"]}, "times"),
        ({"times": ["25:00"]}, "times"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"cutoff_minutes": 24 * 60 + 1}, "cutoff_minutes"),
    ):
        response = await api.put(f"{URL}/stripe", json={**WINDOWS, **change}, headers=admin)
        assert response.status_code == 400, (change, response.text)
        assert response.json()["error"]["param"] == param, change
    for body in ({**WINDOWS, "calendar": "mars"}, {**WINDOWS, "extra": 1}):
        response = await api.put(f"{URL}/stripe", json=body, headers=admin)
        assert response.status_code in (400, 422), response.text
        assert "error" in response.json()
    assert (await api.get(f"{URL}/stripe", headers=admin)).json()["config"] is None
    unknown = await api.put(f"{URL}/wire", json=WINDOWS, headers=admin)
    assert (unknown.status_code, error_code(unknown)) == (404, "unknown_rail")


async def test_only_platform_admins_change_windows(api: AsyncClient, auth: TokenFactory) -> None:
    for role in ("billing_admin", "vendor", "customer"):
        response = await api.put(f"{URL}/stripe", json=WINDOWS, headers=auth(role))
        assert response.status_code == 403, role
        response = await api.post(f"{URL}/stripe/settle-now", json={}, headers=auth(role))
        assert response.status_code == 403, role
    assert (await api.get(f"{URL}/stripe")).status_code == 401


async def test_removing_windows_makes_the_rail_send_at_once(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    assert (await api.put(f"{URL}/stripe", json=WINDOWS, headers=admin)).status_code == 200
    assert (await api.delete(f"{URL}/stripe", headers=admin)).status_code == 204
    assert (await api.get(f"{URL}/stripe", headers=admin)).json()["config"] is None
    missing = await api.delete(f"{URL}/stripe", headers=admin)
    assert missing.status_code == 404


async def test_settle_now_is_a_503_while_temporal_is_down(
    api: AsyncClient, auth: TokenFactory
) -> None:
    response = await api.post(
        f"{URL}/stripe/settle-now",
        json={"reason": "end of quarter"},
        headers=auth("platform_admin"),
    )
    assert response.status_code == 503, response.text


async def test_a_batch_on_a_rail_with_windows_is_queued_and_its_window_signalled(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    admin = auth("platform_admin")
    configured = await live_api.put(f"{URL}/stripe", json=WINDOWS, headers=admin)
    settles_at = configured.json()["submitted_now_settles_at"]
    items = [
        {"reference": f"w-{i}", "destination": "acct_1Windowed", "amount": 700, "currency": "USD"}
        for i in range(3)
    ]
    created = await live_api.post(
        "/api/v1/transfers/batch", json={"partner_id": "partner-w", "items": items}, headers=admin
    )
    assert created.status_code == 201, created.text
    listed = await live_api.get(
        f"/api/v1/transfers/batch/{created.json()['id']}/items", headers=admin
    )
    assert {(item["status"], item["window_at"]) for item in listed.json()["data"]} == {
        ("queued", settles_at)
    }
    window = (await live_api.get(f"{URL}/stripe", headers=admin)).json()
    assert window["queue"] == {"count": 3, "amounts": {"USD": 2100}, "next_window_at": settles_at}
    try:
        signals = await signals_of(local_temporal.client, "settlement-window-stripe")
        assert any(
            name == "enqueue" and parsed(arg["window_at"]) == parsed(settles_at)
            for name, arg in signals
        ), signals

        settled = await live_api.post(f"{URL}/stripe/settle-now", json={}, headers=admin)
        assert settled.status_code == 202, settled.text
        signals = await signals_of(local_temporal.client, "settlement-window-stripe")
        assert signals[-1][0] == "settle_now"
        assert signals[-1][1]["by"] == "user_1"
    finally:
        with contextlib.suppress(RPCError):
            await local_temporal.client.get_workflow_handle("settlement-window-stripe").terminate()


async def test_the_safety_net_starts_a_rails_missing_window_workflow(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    admin = auth("platform_admin")
    assert (await api.put(f"{URL}/stripe", json=WINDOWS, headers=admin)).status_code == 200
    # Temporal is down for ``api``: the transfers are queued, nobody signals the window.
    items = [{"reference": "net-1", "destination": "acct_1Net", "amount": 900, "currency": "USD"}]
    created = await api.post(
        "/api/v1/transfers/batch", json={"partner_id": "partner-net", "items": items}, headers=admin
    )
    assert created.status_code == 201, created.text
    request = RecoveryInput(task_queue=f"recovery-{uuid.uuid4()}")
    recovery = RecoveryActivities(db, local_temporal.client)
    handle = local_temporal.client.get_workflow_handle("settlement-window-stripe")
    with contextlib.suppress(RPCError):
        await handle.terminate()  # left by an earlier test on the shared server
    try:
        first = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)
        second = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)

        assert (first.restarted_settlement_windows, second.restarted_settlement_windows) == (1, 0)
        described = await handle.describe()
        assert described.status is WorkflowExecutionStatus.RUNNING
        assert described.task_queue == request.task_queue
    finally:
        with contextlib.suppress(RPCError):
            await handle.terminate()

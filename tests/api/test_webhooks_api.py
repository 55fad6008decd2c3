"""Webhook endpoints and deliveries over the API, in process: validation (400, nothing
stored), roles, the secret shown once, test events and replays. No Temporal is needed: the
API only writes rows, which the dispatcher picks up."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.webhooks import WebhookDelivery, WebhookEndpoint
from services import webhooks
from tests.api.conftest import error_code
from tests.conftest import TokenFactory
from tests.services.test_webhooks_service import FIVE_DAYS, attempt, new_event, now

ENDPOINTS = "/api/v1/webhook-endpoints"
DELIVERIES = "/api/v1/webhook-deliveries"
GOOD = {"url": "https://hooks.example.com/tollgate", "event_types": ["invoice.*"]}


async def count(db: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def register(api: AsyncClient, auth: TokenFactory, **fields: Any) -> dict[str, Any]:
    response = await api.post(ENDPOINTS, json={**GOOD, **fields}, headers=auth("platform_admin"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_registering_returns_the_secret_once(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(api, auth, description="Billing", retry_schedule_seconds=[1, 60])

    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert (created["status"], created["ordered"], created["retry_schedule_seconds"]) == (
        "enabled",
        False,
        [1, 60],
    )
    admin = auth("billing_admin")
    fetched = (await api.get(f"{ENDPOINTS}/{created['id']}", headers=admin)).json()
    listed = (await api.get(ENDPOINTS, headers=admin)).json()
    assert fetched["secret"] == listed["data"][0]["secret"] == secret[:10] + "…"
    assert secret not in str(listed)
    default = await register(api, auth)
    assert default["retry_schedule_seconds"] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert await count(db, WebhookEndpoint) == 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**GOOD, "url": "ftp://hooks.example.com"}, "url"),
        ({**GOOD, "url": "https://user:pw@hooks.example.com"}, "url"),
        ({**GOOD, "url": "hooks.example.com/no-scheme"}, "url"),
        ({**GOOD, "event_types": ["unknown.created"]}, "event_types"),
        ({**GOOD, "event_types": []}, "event_types"),
        ({**GOOD, "retry_schedule_seconds": [60, 5]}, "retry_schedule_seconds"),
        ({**GOOD, "retry_schedule_seconds": [0]}, "retry_schedule_seconds"),
        ({**GOOD, "retry_schedule_seconds": [5] * 21}, "retry_schedule_seconds"),
        ({**GOOD, "secret": "whsec_mine"}, "secret"),
        ({"event_types": ["*"]}, "url"),
    ],
)
async def test_invalid_endpoints_are_a_400_and_nothing_is_stored(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    param: str,
) -> None:
    response = await api.post(ENDPOINTS, json=body, headers=auth("platform_admin"))

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param)
    assert await count(db, WebhookEndpoint) == 0


async def test_only_admins_manage_webhooks(api: AsyncClient, auth: TokenFactory) -> None:
    for role in ("customer", "driver", "vendor"):
        response = await api.post(ENDPOINTS, json=GOOD, headers=auth(role))
        assert response.status_code == 403, role
        assert (await api.get(DELIVERIES, headers=auth(role))).status_code == 403
    assert (await api.get(ENDPOINTS)).status_code == 401
    response = await api.post(ENDPOINTS, json=GOOD, headers=auth("billing_admin"))
    assert response.status_code == 201


async def test_an_endpoint_is_changed_disabled_enabled_and_its_secret_rotated(
    api: AsyncClient, auth: TokenFactory
) -> None:
    created = await register(api, auth)
    admin = auth("platform_admin")
    url = f"{ENDPOINTS}/{created['id']}"

    patched = await api.patch(
        url,
        json={"event_types": ["payment.*", "refund.succeeded"], "ordered": True},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["event_types"], patched.json()["ordered"]) == (
        ["payment.*", "refund.succeeded"],
        True,
    )
    for bad in ({"url": None}, {"retry_schedule_seconds": [9, 1]}, {"status": "disabled"}):
        response = await api.patch(url, json=bad, headers=admin)
        assert response.status_code == 400, bad
    assert (await api.get(url, headers=admin)).json()["event_types"] == [
        "payment.*",
        "refund.succeeded",
    ]

    disabled = await api.post(f"{url}/disable", json={"reason": "migrating"}, headers=admin)
    assert (disabled.json()["status"], disabled.json()["disabled_reason"]) == (
        "disabled",
        "migrating",
    )
    enabled = await api.post(f"{url}/enable", headers=admin)
    assert (enabled.json()["status"], enabled.json()["disabled_reason"]) == ("enabled", None)

    rotated = await api.post(f"{url}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["secret"].startswith("whsec_") and len(rotated.json()["secret"]) > 40
    missing = await api.get(f"{ENDPOINTS}/00000000-0000-0000-0000-000000000000", headers=admin)
    assert (missing.status_code, error_code(missing)) == (404, "resource_missing")


async def test_a_test_event_is_queued_for_the_endpoint(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(api, auth)
    admin = auth("platform_admin")

    response = await api.post(f"{ENDPOINTS}/{created['id']}/test", headers=admin)

    assert response.status_code == 202, response.text
    delivery = response.json()
    assert (delivery["event_type"], delivery["status"], delivery["endpoint_id"]) == (
        "webhook.test",
        "pending",
        created["id"],
    )
    assert delivery["workflow_id"] == f"webhook-delivery-{delivery['id']}"
    async with db() as session:
        # The dispatcher starts its workflow.
        assert [d.id for d, _ in await webhooks.unstarted(session, limit=10)] == [
            uuid.UUID(delivery["id"])
        ]
    listed = await api.get(DELIVERIES, params={"endpoint_id": created["id"]}, headers=admin)
    assert [item["id"] for item in listed.json()["data"]] == [delivery["id"]]
    await api.post(f"{ENDPOINTS}/{created['id']}/disable", headers=admin)
    refused = await api.post(f"{ENDPOINTS}/{created['id']}/test", headers=admin)
    assert (refused.status_code, error_code(refused)) == (409, "webhook_endpoint_disabled")


async def test_dead_letters_are_listed_shown_with_attempts_and_replayed(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(api, auth)
    endpoint_id = uuid.UUID(created["id"])
    async with db() as session, session.begin():
        event = await new_event(session)
        [dead] = (await webhooks.dispatch(session, limit=10, at=now())).deliveries
        assert dead.endpoint_id == endpoint_id
        await webhooks.record_attempt(
            session,
            dead.id,
            attempt(1, 500, response_excerpt="oops"),
            retry_at=None,
            at=now(),
            disable_after=FIVE_DAYS,
        )
        await new_event(session)
        [open_one] = (await webhooks.dispatch(session, limit=10, at=now())).deliveries
    admin = auth("platform_admin")

    letters = (await api.get(f"{DELIVERIES}/dead-letters", headers=admin)).json()
    assert [item["id"] for item in letters["data"]] == [str(dead.id)]
    shown = (await api.get(f"{DELIVERIES}/{dead.id}", headers=admin)).json()
    assert shown["attempts"] == [
        {
            "number": 1,
            "started_at": shown["attempts"][0]["started_at"],
            "status_code": 500,
            "duration_ms": 12,
            "error": None,
            "response_excerpt": "oops",
        }
    ]
    assert (shown["message_id"], shown["data"]["amount"]) == (f"msg_{event.id}", 100)
    filtered = await api.get(DELIVERIES, params={"status": "pending"}, headers=admin)
    assert [item["id"] for item in filtered.json()["data"]] == [str(open_one.id)]

    replay = await api.post(f"{DELIVERIES}/{dead.id}/replay", headers=admin)
    assert replay.status_code == 202, replay.text
    assert (replay.json()["replay_of"], replay.json()["message_id"]) == (
        str(dead.id),
        f"msg_{event.id}",
    )
    still_open = await api.post(f"{DELIVERIES}/{open_one.id}/replay", headers=admin)
    assert (still_open.status_code, error_code(still_open)) == (409, "webhook_delivery_open")
    assert await count(db, WebhookDelivery) == 3


async def test_a_time_range_is_replayed(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    created = await register(api, auth)
    admin = auth("platform_admin")
    url = f"{ENDPOINTS}/{created['id']}"
    await api.post(f"{url}/disable", headers=admin)
    async with db() as session, session.begin():
        missed = await new_event(session)
        await webhooks.dispatch(session, limit=10, at=now())
    await api.post(f"{url}/enable", headers=admin)
    start, end = now() - timedelta(hours=1), now() + timedelta(minutes=1)

    response = await api.post(
        f"{url}/replay", json={"from": start.isoformat(), "to": end.isoformat()}, headers=admin
    )

    assert response.status_code == 202, response.text
    [delivery] = response.json()["data"]
    assert (delivery["event_id"], delivery["replay_of"]) == (missed.id, None)
    backwards = await api.post(
        f"{url}/replay", json={"from": end.isoformat(), "to": start.isoformat()}, headers=admin
    )
    assert backwards.status_code == 400
    naive = await api.post(
        f"{url}/replay", json={"from": "2026-01-01T00:00:00", "to": end.isoformat()}, headers=admin
    )
    assert naive.status_code == 400

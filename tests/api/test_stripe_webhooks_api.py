"""Stripe's webhooks over HTTP, in process, signed as Stripe signs them (``Stripe-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``), and the admins' event endpoints.
Temporal is down unless a test uses ``live_api``."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe
from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.actors import SYSTEM
from models.audit import AuditEvent
from models.payments import StripeEvent
from services import stripe_events
from settings import Settings
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory
from tests.services.test_stripe_events_service import add_payment, intent, stripe_event
from worker import stripe_event_activities
from workflows.stripe_events import StripeEventDeliveryWorkflow

WEBHOOK = "/api/v1/webhooks/stripe"
EVENTS = f"{WEBHOOK}/events"


def signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2).encode()


async def send(api: AsyncClient, payload: bytes, sig: str | None, **headers: str) -> Response:
    if sig is not None:
        headers["Stripe-Signature"] = sig
    return await api.post(
        WEBHOOK, content=payload, headers={"Content-Type": "application/json", **headers}
    )


async def post_event(api: AsyncClient, settings: Settings, event: dict[str, Any]) -> Response:
    payload = encode(event)
    return await send(api, payload, signature(payload, settings.stripe_webhook_secret))


async def count(db: async_sessionmaker[AsyncSession], *where: Any) -> int:
    async with db() as session:
        return int(
            await session.scalar(select(func.count()).select_from(StripeEvent).where(*where)) or 0
        )


async def test_a_signed_event_is_stored_and_accepted(
    api: AsyncClient,
    settings: Settings,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
) -> None:
    event = stripe_event("payment_intent.created", intent("pi_1"))

    # No bearer token: Stripe's signature is the authentication.
    response = await post_event(api, settings, event)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    stored = await api.get(f"{EVENTS}/{event['id']}", headers=auth("platform_admin"))
    assert stored.status_code == 200
    body = stored.json()
    assert (body["type"], body["object_id"], body["status"], body["delivery"]) == (
        "payment_intent.created",
        "pi_1",
        "received",
        0,
    )
    assert body["data"] == event and body["workflow_id"] == f"stripe-event-{event['id']}-0"
    assert await count(db) == 1


def tampered(settings: Settings, event: dict[str, Any]) -> list[tuple[str, bytes, str | None]]:
    """(case, body, Stripe-Signature) pairs Stripe would never send."""
    payload = encode(event)
    secret = settings.stripe_webhook_secret
    stale = int(time.time()) - stripe.Webhook.DEFAULT_TOLERANCE - 60
    altered = encode({**event, "livemode": not event["livemode"]})
    assert altered != payload
    return [
        ("forged", payload, signature(payload, "whsec_not_the_secret")),
        ("stale", payload, signature(payload, secret, stale)),
        ("missing header", payload, None),
        ("body altered after signing", altered, signature(payload, secret)),
        ("no v1 scheme", payload, f"t={int(time.time())},v0=abc"),
    ]


async def test_forged_stale_unsigned_or_altered_webhooks_are_refused_and_not_stored(
    api: AsyncClient, settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    event = stripe_event("payment_intent.succeeded", intent("pi_2"))
    for case, payload, sig in tampered(settings, event):
        response = await send(api, payload, sig)
        assert response.status_code == 400, case
        assert error_code(response) == "webhook_signature_invalid", case
    assert await count(db) == 0
    async with db() as session:
        audited = await session.scalar(
            select(func.count()).where(AuditEvent.entity_type == "stripe_event")
        )
    assert audited == 0
    # The untouched event with a good signature is accepted: the cases above failed for
    # what was changed, not for something else.
    assert (await post_event(api, settings, event)).status_code == 200


@pytest.mark.parametrize(
    "payload", [b"not json", b"[1, 2]", b'"evt"', b'{"object": "event"}', b'{"id": "evt_1"}']
)
async def test_a_signed_payload_that_is_not_an_event_is_a_400(
    api: AsyncClient, settings: Settings, db: async_sessionmaker[AsyncSession], payload: bytes
) -> None:
    response = await send(api, payload, signature(payload, settings.stripe_webhook_secret))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert await count(db) == 0


@pytest.fixture
async def delivery_worker(
    settings: Settings,
    local_temporal: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[None]:
    """The delivery workflow and its real activities on the API's task queue."""
    client = local_temporal.client
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[StripeEventDeliveryWorkflow],
        activities=stripe_event_activities(db, client),
    ):
        yield


async def wait_for_status(db: async_sessionmaker[AsyncSession], event_id: str) -> str:
    for _ in range(200):
        async with db() as session:
            status = (await stripe_events.get(session, event_id)).status
        if status != "received":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_id} was not delivered")


async def test_an_event_replayed_5_times_is_stored_once_and_delivered_once(
    live_api: AsyncClient,
    settings: Settings,
    local_temporal: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    delivery_worker: None,
) -> None:
    async with db() as session, session.begin():
        payment_id = (await add_payment(session)).id
    # The payment's workflow: running, so it can be signalled (no worker runs it here).
    target = await local_temporal.client.start_workflow(
        "Payment", id=f"payment-{payment_id}", task_queue=f"nobody-{uuid.uuid4()}"
    )
    event = stripe_event(
        "payment_intent.amount_capturable_updated",
        intent(f"pi_{uuid.uuid4().hex[:12]}", {"tollgate_payment_id": str(payment_id)}),
    )

    first = await post_event(live_api, settings, event)
    replays = await asyncio.gather(*(post_event(live_api, settings, event) for _ in range(5)))

    assert first.json() == {"received": True, "duplicate": False}
    assert [reply.status_code for reply in replays] == [200] * 5
    assert all(reply.json() == {"received": True, "duplicate": True} for reply in replays)
    assert await count(db) == 1
    assert await wait_for_status(db, event["id"]) == "processed"
    # Replays after processing are acknowledged too, and deliver nothing more.
    assert (await post_event(live_api, settings, event)).json()["duplicate"] is True
    await asyncio.sleep(0.3)
    signals = await signals_of(local_temporal.client, target.id)
    assert [(name, arg["event_id"]) for name, arg in signals] == [("stripe_event", event["id"])]
    async with db() as session:
        row = await stripe_events.get(session, event["id"])
        received = await session.scalar(
            select(func.count()).where(
                AuditEvent.entity_id == event["id"], AuditEvent.action == "stripe_event.received"
            )
        )
    assert (row.status, row.outcome, row.payment_id) == (
        "processed",
        f"signalled payment-{payment_id}",
        payment_id,
    )
    assert received == 1
    await target.terminate("test done")


async def test_a_replay_starts_a_delivery_whose_start_failed(
    api: AsyncClient,
    live_api: AsyncClient,
    settings: Settings,
    local_temporal: WorkflowEnvironment,
) -> None:
    event = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    # Temporal is down for ``api``: the event is committed, its delivery never started.
    assert (await post_event(api, settings, event)).json()["duplicate"] is False
    handle = local_temporal.client.get_workflow_handle(f"stripe-event-{event['id']}-0")

    assert (await post_event(live_api, settings, event)).json()["duplicate"] is True

    described = await handle.describe()
    assert described.workflow_type == "StripeEventDelivery"
    assert described.status is WorkflowExecutionStatus.RUNNING  # no worker polls this queue
    await handle.terminate("test done")


async def store_events(
    db: async_sessionmaker[AsyncSession], events: list[dict[str, Any]], dead: int = 0
) -> None:
    """Store ``events``, the first ``dead`` of them dead letters."""
    async with db() as session, session.begin():
        for event in events:
            await stripe_events.store(session, event)
        for event in events[:dead]:
            await stripe_events.dead_letter(
                session, event["id"], "TargetNotReady: gave up", delivery=0, actor=SYSTEM
            )


async def test_admins_list_filter_and_page_the_events(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session, session.begin():
        payment_id = (await add_payment(session)).id
    ours = [
        stripe_event("payment_intent.succeeded", intent("pi_3", {"tollgate_payment_id": str(pid)}))
        for pid in (payment_id, payment_id, payment_id)
    ]
    others = [stripe_event("charge.succeeded", {"id": f"ch_{n}"}) for n in range(2)]
    await store_events(db, ours + others, dead=1)
    admin = auth("billing_admin")

    async def ids(url: str, **params: Any) -> list[str]:
        response = await api.get(url, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert set(await ids(EVENTS, payment_id=str(payment_id))) == {e["id"] for e in ours}
    assert set(await ids(EVENTS, type="charge.succeeded")) == {e["id"] for e in others}
    assert await ids(EVENTS, status="dead") == [ours[0]["id"]]
    assert await ids(f"{EVENTS}/dead-letters") == [ours[0]["id"]]
    assert ours[0]["id"] not in await ids(EVENTS, status="received")

    every = await ids(EVENTS, limit=100)
    assert len(every) == 5
    page = (await api.get(EVENTS, params={"limit": 2}, headers=admin)).json()
    assert page["has_more"] is True and page["next_cursor"] == every[1]
    rest = await ids(EVENTS, limit=100, starting_after=page["next_cursor"])
    assert [item["id"] for item in page["data"]] + rest == every

    for params in ({"status": "lost"}, {"payment_id": "nope"}, {"starting_after": "evt_x"}):
        assert (await api.get(EVENTS, params=params, headers=admin)).status_code == 400, params
    missing = await api.get(f"{EVENTS}/evt_missing", headers=admin)
    assert missing.status_code == 404 and error_code(missing) == "resource_missing"


async def test_only_admins_see_or_retry_events(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    event = stripe_event("charge.succeeded", {"id": "ch_1"})
    await store_events(db, [event], dead=1)
    calls = [
        ("GET", EVENTS),
        ("GET", f"{EVENTS}/dead-letters"),
        ("GET", f"{EVENTS}/{event['id']}"),
        ("POST", f"{EVENTS}/{event['id']}/retry"),
        ("POST", f"{EVENTS}/retry-dead"),
    ]
    for method, url in calls:
        assert (await api.request(method, url)).status_code == 401, url
        for role in ("customer", "vendor", "driver"):
            response = await api.request(method, url, headers=auth(role))
            assert response.status_code == 403, (url, role)
    async with db() as session:
        assert (await stripe_events.get(session, event["id"])).status == "dead"


async def test_retrying_a_dead_letter(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    dead, received = (stripe_event("charge.succeeded", {"id": f"ch_{n}"}) for n in range(2))
    await store_events(db, [dead, received], dead=1)
    admin = auth("platform_admin")

    refused = await api.post(f"{EVENTS}/{received['id']}/retry", headers=admin)
    assert refused.status_code == 409 and error_code(refused) == "stripe_event_not_dead"
    retried = await api.post(f"{EVENTS}/{dead['id']}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert (body["status"], body["delivery"], body["last_error"]) == (
        "received",
        1,
        "TargetNotReady: gave up",
    )
    assert body["workflow_id"] == f"stripe-event-{dead['id']}-1"
    again = await api.post(f"{EVENTS}/{dead['id']}/retry", headers=admin)
    assert again.status_code == 409
    missing = await api.post(f"{EVENTS}/evt_missing/retry", headers=admin)
    assert missing.status_code == 404


async def test_bulk_retry_of_dead_letters(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    events = [stripe_event("charge.succeeded", {"id": f"ch_{n}"}) for n in range(4)]
    await store_events(db, events, dead=3)
    admin = auth("billing_admin")
    first, second, third, alive = (event["id"] for event in events)

    chosen = await api.post(
        f"{EVENTS}/retry-dead", json={"ids": [first, alive, "evt_missing", first]}, headers=admin
    )
    assert chosen.status_code == 200, chosen.text
    result = chosen.json()
    assert (result["accepted"], result["failed"]) == (1, 2)
    outcome = {
        item["id"]: (item["status"], (item["error"] or {}).get("code")) for item in result["data"]
    }
    assert outcome == {
        first: ("accepted", None),
        alive: ("error", "stripe_event_not_dead"),
        "evt_missing": ("error", "resource_missing"),
    }

    every_dead = await api.post(f"{EVENTS}/retry-dead", headers=admin)
    assert every_dead.status_code == 200
    assert {item["id"] for item in every_dead.json()["data"]} == {second, third}
    assert await count(db, StripeEvent.status == "dead") == 0
    assert await count(db, StripeEvent.delivery == 1) == 3
    too_many = {"ids": [f"evt_{n}" for n in range(501)]}
    assert (await api.post(f"{EVENTS}/retry-dead", json=too_many, headers=admin)).status_code == 400


async def test_with_temporal_up_a_retry_starts_the_next_delivery(
    live_api: AsyncClient,
    auth: TokenFactory,
    local_temporal: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
) -> None:
    event = stripe_event("charge.succeeded", {"id": "ch_9"})
    await store_events(db, [event], dead=1)

    response = await live_api.post(f"{EVENTS}/{event['id']}/retry", headers=auth("platform_admin"))

    assert response.status_code == 202
    handle = local_temporal.client.get_workflow_handle(f"stripe-event-{event['id']}-1")
    described = await handle.describe()
    assert described.workflow_type == "StripeEventDelivery"
    await handle.terminate("test done")

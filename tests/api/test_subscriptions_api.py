"""Subscriptions over HTTP, in process: creation starts the workflow, a bad request is a 4xx
that stores or sends nothing, customers see and operate their own, lookups and pages, each
operation checked against the row then signalled (read back from the local dev server's
history; no worker runs the workflows), and a new payment method retrying the customer's
subscriptions in dunning."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.actors import SYSTEM
from domain.subscriptions import Interval, period_boundary
from models.subscriptions import Plan, Subscription
from services import payment_methods, plans, subscriptions
from settings import Settings
from tests.api.billing import add_method, count, in_dunning, received, status_of
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory, in_process_api
from tests.fixtures.stripe_sandbox import StripeSandbox
from tests.fixtures.subscriptions import new_plan, new_subscription

URL = "/api/v1/subscriptions"


async def subscribe(
    api: AsyncClient, headers: dict[str, str], plan: Plan, **body: Any
) -> dict[str, Any]:
    response = await api.post(URL, json={"plan_id": str(plan.id), **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def started_with(client: Client, workflow_id: str) -> tuple[str, dict[str, Any]]:
    """The workflow's type and the input it was started with."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = next(
        event.workflow_execution_started_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    )
    converter = client.data_converter.payload_converter
    arg: dict[str, Any] = converter.from_payloads(started.input.payloads)[0]
    return started.workflow_type.name, arg


async def test_a_customer_subscribes_and_the_workflow_starts(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
    settings: Settings,
) -> None:
    method = await add_method(db, "cust-1")
    plan = await new_plan(db, 3_000)
    customer = auth("customer", sub="cust-1")

    paid = await subscribe(live_api, customer, plan, metadata={"seat": "7"})
    assert paid["object"] == "subscription"
    assert (paid["customer_id"], paid["plan_id"], paid["status"]) == (
        "cust-1",
        str(plan.id),
        "active",
    )
    assert paid["payment_method_id"] is None  # the default method, when each charge is made
    start = datetime.fromisoformat(paid["current_period_start"])
    end = datetime.fromisoformat(paid["current_period_end"])
    assert end == period_boundary(start, Interval.MONTH, 1, 1)
    assert paid["trial_end"] is None and paid["cancel_at_period_end"] is False
    assert (paid["credit_balance"], paid["metadata"]) == (0, {"seat": "7"})
    assert paid["workflow_id"] == f"subscription-{paid['id']}"
    assert paid["pending_operation"] is None

    kind, arg = await started_with(local_temporal.client, paid["workflow_id"])
    assert kind == "Subscription"
    assert arg["subscription_id"] == paid["id"]
    assert arg["retry_days"] == [1, 3, 5, 7] and arg["dunning_outcome"] == "unpaid"
    assert arg["stripe_task_queue"] == settings.stripe_task_queue

    trial = await subscribe(
        live_api,
        auth("billing_admin"),
        plan,
        customer_id="cust-1",
        payment_method_id=str(method.id),
        trial_days=14,
    )
    assert (trial["status"], trial["payment_method_id"]) == ("trialing", str(method.id))
    trial_end = datetime.fromisoformat(trial["trial_end"])
    assert trial_end - datetime.fromisoformat(trial["current_period_start"]) == timedelta(days=14)
    assert (await started_with(local_temporal.client, trial["workflow_id"]))[0] == "Subscription"

    # A trial needs no payment method.
    trial_plan = await new_plan(db, 1_000, name="Trial", trial_days=7)
    free = await subscribe(live_api, auth("customer", sub="cust-new"), trial_plan)
    assert free["status"] == "trialing"


async def test_bad_subscriptions_are_refused_and_store_nothing(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    await add_method(db, "cust-2")
    others = await add_method(db, "cust-other")
    plan = await new_plan(db)
    retired = await new_plan(db, name="Retired")
    async with db() as session, session.begin():
        await plans.set_active(session, retired.id, False, actor=SYSTEM)
    removed = await add_method(db, "cust-2", default=False)
    async with db() as session, session.begin():
        await payment_methods.remove(session, removed.id, actor=SYSTEM)
    customer = auth("customer", sub="cust-2")
    admin = auth("billing_admin")
    cases: list[tuple[dict[str, str], dict[str, Any], int, str]] = [
        (customer, {"interval": "month"}, 400, "parameter_invalid"),  # unknown field
        (customer, {"plan_id": "plan-1"}, 400, "parameter_invalid"),
        (customer, {"trial_days": -1}, 400, "parameter_invalid"),
        (customer, {"trial_days": 731}, 400, "parameter_invalid"),
        (customer, {"plan_id": str(uuid.uuid4())}, 404, "resource_missing"),
        (customer, {"plan_id": str(retired.id)}, 400, "validation_failed"),
        (customer, {"payment_method_id": str(others.id)}, 404, "resource_missing"),
        (customer, {"payment_method_id": str(removed.id)}, 409, "payment_method_removed"),
        (customer, {"customer_id": "cust-other"}, 403, "forbidden"),
        (auth("driver", sub="cust-2"), {}, 403, "forbidden"),
        (admin, {}, 400, "validation_failed"),  # an admin names the customer
        (admin, {"customer_id": "no-card"}, 400, "payment_method_required"),
    ]
    for headers, changes, status, code in cases:
        body = {"plan_id": str(plan.id), **changes}
        response = await api.post(URL, json=body, headers=headers)
        assert response.status_code == status, (changes, response.text)
        assert error_code(response) == code, changes
    assert await count(db, Subscription) == 0


async def test_operations_are_checked_against_the_row_then_signalled(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    await add_method(db, "cust-3")
    monthly = await new_plan(db, 3_000)
    bigger = await new_plan(db, 5_000, name="Bigger")
    yearly = await new_plan(db, 30_000, name="Yearly", interval=Interval.YEAR)
    euros = await new_plan(db, 3_000, name="Euro", currency="EUR")
    owner = auth("customer", sub="cust-3")
    sub = await subscribe(live_api, owner, monthly)
    path = f"{URL}/{sub['id']}"

    refused: list[tuple[str, dict[str, Any] | None, int, str]] = [
        ("resume", None, 409, "subscription_status"),  # not paused
        ("retry-payment", None, 409, "subscription_status"),  # not in dunning
        ("change-plan", {"plan_id": str(yearly.id)}, 400, "plan_change_unsupported"),
        ("change-plan", {"plan_id": str(euros.id)}, 400, "plan_change_unsupported"),
        ("change-plan", {"plan_id": str(monthly.id)}, 400, "validation_failed"),
        ("change-plan", {"plan_id": str(uuid.uuid4())}, 404, "resource_missing"),
        ("change-plan", {}, 400, "parameter_invalid"),
        ("cancel", {"at_period_end": "soon"}, 400, "parameter_invalid"),
        ("cancel", {"when": "now"}, 400, "parameter_invalid"),
        ("pause", {"reason": " "}, 400, "parameter_invalid"),
    ]
    for operation, body, status, code in refused:
        response = await live_api.post(f"{path}/{operation}", json=body, headers=owner)
        assert response.status_code == status, (operation, body, response.text)
        assert error_code(response) == code, (operation, body)
    assert await signals_of(local_temporal.client, sub["workflow_id"]) == []

    stranger = await live_api.post(f"{path}/pause", json={}, headers=auth("customer", sub="cust-x"))
    assert stranger.status_code == 404
    driver = await live_api.post(f"{path}/pause", headers=auth("driver", sub="cust-3"))
    assert driver.status_code == 403

    accepted: list[tuple[str, dict[str, Any] | None, str]] = [
        ("pause", {"reason": "on holiday"}, "pause"),
        ("change-plan", {"plan_id": str(bigger.id)}, "change_plan"),
        ("renew", None, "renew_now"),
        ("cancel", {"at_period_end": True, "reason": "too dear"}, "cancel"),
    ]
    for operation, body, name in accepted:
        response = await live_api.post(f"{path}/{operation}", json=body, headers=owner)
        assert response.status_code == 202, (operation, response.text)
        answer = response.json()
        # The subscription as it is: the workflow alone changes it.
        assert (answer["status"], answer["pending_operation"]) == ("active", name)
        assert answer["plan_id"] == str(monthly.id)
    admin_cancel = await live_api.post(f"{path}/cancel", headers=auth("platform_admin", sub="ops"))
    assert admin_cancel.status_code == 202

    signals = await signals_of(local_temporal.client, sub["workflow_id"])
    assert [name for name, _ in signals] == [
        "pause",
        "change_plan",
        "renew_now",
        "cancel",
        "cancel",
    ]
    assert signals[0][1] == {"reason": "on holiday", "by": "cust-3"}
    assert signals[1][1] == {"plan_id": str(bigger.id), "by": "cust-3"}
    assert signals[2][1] == {"by": "cust-3"}
    assert signals[3][1] == {"at_period_end": True, "reason": "too dear", "by": "cust-3"}
    assert signals[4][1] == {
        "at_period_end": False,
        "reason": "requested by platform_admin",
        "by": "ops",
    }
    assert await status_of(db, sub["id"]) == "active"  # nothing changed the row


async def test_paused_trialing_canceled_and_past_due_subscriptions(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    method = await add_method(db, "cust-4")
    plan = await new_plan(db, 3_000)
    owner = auth("customer", sub="cust-4")
    trialing = await subscribe(live_api, owner, plan, trial_days=30)
    canceled = await subscribe(live_api, owner, plan)
    paused = await subscribe(live_api, owner, plan)
    overdue = await new_subscription(db, plan, customer_id="cust-4", method=method)
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await subscriptions.cancel(
            session,
            uuid.UUID(canceled["id"]),
            at=now,
            at_period_end=False,
            reason="test",
            actor=SYSTEM,
        )
        await subscriptions.pause(
            session, uuid.UUID(paused["id"]), at=now, reason="test", actor=SYSTEM
        )
    await in_dunning(db, str(overdue.id))

    for sub, operation in (
        (trialing, "pause"),  # a trial is not paused
        (trialing, "retry-payment"),
        (canceled, "pause"),
        (canceled, "cancel"),
        (canceled, "renew"),
        (canceled, "change-plan"),
        (paused, "pause"),
        (paused, "renew"),
    ):
        body = {"plan_id": str(uuid.uuid4())} if operation == "change-plan" else None
        response = await live_api.post(f"{URL}/{sub['id']}/{operation}", json=body, headers=owner)
        assert response.status_code == 409, (sub["status"], operation, response.text)
        assert error_code(response) == "subscription_status"

    resumed = await live_api.post(f"{URL}/{paused['id']}/resume", headers=owner)
    assert resumed.status_code == 202
    assert (resumed.json()["status"], resumed.json()["pending_operation"]) == ("paused", "resume")
    renewed = await live_api.post(f"{URL}/{trialing['id']}/renew", headers=owner)
    assert renewed.status_code == 202  # a trial ends now and converts
    retried = await live_api.post(
        f"{URL}/{overdue.id}/retry-payment", json={"reason": "paid my bank"}, headers=owner
    )
    assert retried.status_code == 202
    assert retried.json()["status"] == "past_due"

    client = local_temporal.client
    assert [name for name, _ in await signals_of(client, paused["workflow_id"])] == ["resume"]
    assert [name for name, _ in await signals_of(client, trialing["workflow_id"])] == ["renew_now"]
    # Never started (made through the service): the signal starts it.
    assert await signals_of(client, f"subscription-{overdue.id}") == [
        ("retry_payment", {"reason": "paid my bank", "by": "cust-4"})
    ]
    assert await signals_of(client, canceled["workflow_id"]) == []


async def test_customers_see_their_own_and_admins_look_up_and_page(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    plan = await new_plan(db, 3_000)
    other_plan = await new_plan(db, 4_000, name="Other")
    await add_method(db, "cust-5")
    await add_method(db, "cust-6")
    owner = auth("customer", sub="cust-5")
    mine = await subscribe(api, owner, plan)
    trial = await subscribe(api, owner, other_plan, trial_days=3)
    other = await subscribe(api, auth("customer", sub="cust-6"), plan)
    admin = auth("billing_admin")

    def ids(response: Any) -> list[str]:
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert (await api.get(f"{URL}/{mine['id']}", headers=owner)).json() == mine
    hidden = await api.get(f"{URL}/{other['id']}", headers=owner)
    assert hidden.status_code == 404 and error_code(hidden) == "resource_missing"
    assert (await api.get(f"{URL}/{uuid.uuid4()}", headers=admin)).status_code == 404
    assert (await api.get(f"{URL}/{other['id']}", headers=auth("vendor"))).status_code == 403
    assert (await api.get(f"{URL}/{other['id']}", headers=admin)).json()["id"] == other["id"]

    assert ids(await api.get(URL, headers=owner)) == [trial["id"], mine["id"]]
    assert (await api.get(URL, params={"customer_id": "cust-6"}, headers=owner)).status_code == 403
    assert ids(await api.get(URL, params={"customer_id": "cust-6"}, headers=admin)) == [other["id"]]
    assert ids(await api.get(URL, params={"plan_id": str(plan.id)}, headers=admin)) == [
        other["id"],
        mine["id"],
    ]
    assert ids(await api.get(URL, params={"status": "trialing"}, headers=admin)) == [trial["id"]]
    assert ids(await api.get(f"{URL}/customer/cust-5", headers=owner)) == [trial["id"], mine["id"]]
    assert (await api.get(f"{URL}/customer/cust-6", headers=owner)).status_code == 403

    assert ids(await api.get(f"{URL}/status/active", headers=admin)) == [other["id"], mine["id"]]
    assert (await api.get(f"{URL}/status/active", headers=owner)).status_code == 403
    assert (await api.get(f"{URL}/status/expired", headers=admin)).status_code == 400

    # Periods end in a month: not due tomorrow (the default), due within 32 days.
    assert ids(await api.get(f"{URL}/renewal/due", headers=admin)) == []
    later = (datetime.now(UTC) + timedelta(days=32)).isoformat()
    due = await api.get(f"{URL}/renewal/due", params={"before": later}, headers=admin)
    assert ids(due) == [other["id"], mine["id"]]
    assert (await api.get(f"{URL}/renewal/due", headers=owner)).status_code == 403
    naive = await api.get(
        f"{URL}/renewal/due", params={"before": "2030-01-01T00:00"}, headers=admin
    )
    assert naive.status_code == 400
    assert ids(await api.get(f"{URL}/trial/conversion-due", headers=admin)) == []
    soon = (datetime.now(UTC) + timedelta(days=4)).isoformat()
    trials = await api.get(f"{URL}/trial/conversion-due", params={"before": soon}, headers=admin)
    assert ids(trials) == [trial["id"]]

    first = await api.get(URL, params={"limit": 2}, headers=admin)
    assert ids(first) == [other["id"], trial["id"]]
    assert first.json()["has_more"] is True and first.json()["next_cursor"] == trial["id"]
    rest = await api.get(URL, params={"limit": 2, "starting_after": trial["id"]}, headers=admin)
    assert ids(rest) == [mine["id"]] and rest.json()["has_more"] is False
    # Another customer's subscription is no cursor of a customer's list.
    foreign = await api.get(URL, params={"starting_after": other["id"]}, headers=owner)
    assert foreign.status_code == 400 and error_code(foreign) == "validation_failed"
    bogus = await api.get(URL, params={"starting_after": "nope"}, headers=admin)
    assert bogus.status_code == 400


@pytest.fixture
async def stripe_live_api(
    settings: Settings, local_temporal: WorkflowEnvironment, stripe_sandbox: StripeSandbox
) -> AsyncIterator[AsyncClient]:
    """The API with Temporal up and its Stripe client on the sandbox."""
    live = settings.model_copy(
        update={
            "temporal_address": local_temporal.client.service_client.config.target_host,
            "stripe_api_base": stripe_sandbox.url,
            "stripe_api_key": stripe_sandbox.api_key,
        }
    )
    async with in_process_api(live) as client:
        yield client


async def test_a_new_payment_method_retries_the_subscriptions_in_dunning(
    stripe_live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    api = stripe_live_api
    customer_id = f"cust-{uuid.uuid4().hex[:10]}"
    owner = auth("customer", sub=customer_id)
    first = await api.post("/api/v1/payment-methods", json={"token": "pm_card_visa"}, headers=owner)
    assert first.status_code == 201, first.text
    plan = await new_plan(db, 3_000)
    async with db() as session:
        method = await payment_methods.get(session, uuid.UUID(first.json()["id"]))
    overdue = await new_subscription(db, plan, customer_id=customer_id, method=method)
    healthy = await new_subscription(db, plan, customer_id=customer_id, method=method)
    await in_dunning(db, str(overdue.id))
    assert await status_of(db, str(overdue.id)) == "past_due"

    second = await api.post(
        "/api/v1/payment-methods", json={"token": "pm_card_mastercard"}, headers=owner
    )
    assert second.status_code == 201, second.text
    assert second.json()["is_default"] is False
    made_default = await api.put(
        f"/api/v1/payment-methods/{second.json()['id']}/set-default", headers=owner
    )
    assert made_default.status_code == 200 and made_default.json()["is_default"] is True
    # Already the default: nothing new to try.
    again = await api.put(
        f"/api/v1/payment-methods/{second.json()['id']}/set-default", headers=owner
    )
    assert again.status_code == 200

    retry = {"reason": "new payment method", "by": customer_id}
    client = local_temporal.client
    assert await signals_of(client, f"subscription-{overdue.id}") == [
        ("retry_payment", retry),
        ("retry_payment", retry),
    ]
    assert await received(client, f"subscription-{healthy.id}") == []  # not in dunning

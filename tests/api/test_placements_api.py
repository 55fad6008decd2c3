"""Placement activation over HTTP: one transaction makes the guarantee hold and its payout;
a second activation returns the same pair. Temporal is down unless ``live_api`` is used."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from models.escrow import EscrowHold, PayoutSchedule
from tests.conftest import TokenFactory


def url(placement_id: str) -> str:
    return f"/api/v1/placements/{placement_id}/activate"


def activation(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payer_id": "client-1",
        "payee_id": "recruiter-1",
        "destination": "acct_1Recruiter",
        "amount": 80_000,
        "currency": "EUR",
        "guarantee_days": 90,
    }
    return {**body, **changes}


async def counts(db: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with db() as session:
        holds = await session.scalar(select(func.count()).select_from(EscrowHold))
        schedules = await session.scalar(select(func.count()).select_from(PayoutSchedule))
    return int(holds or 0), int(schedules or 0)


async def test_activation_makes_the_hold_and_its_payout_once(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    before = datetime.now(UTC)
    first = await api.post(url("pl-1"), json=activation(required_approvals=1), headers=admin)
    assert first.status_code == 201, first.text
    body = first.json()
    hold, schedule = body["hold"], body["payout_schedule"]
    assert body["placement_id"] == "pl-1"
    assert hold["reason"] == "guarantee_period" and hold["placement_id"] == "pl-1"
    assert hold["amount"] == 80_000 and hold["required_approvals"] == 1
    release_at = datetime.fromisoformat(hold["release_at"])
    assert before + timedelta(days=90) <= release_at <= datetime.now(UTC) + timedelta(days=90)
    assert schedule["trigger_event"] == "guarantee_period_end"
    assert schedule["scheduled_for"] == hold["release_at"]
    assert schedule["hold_id"] == hold["id"] and schedule["placement_id"] == "pl-1"
    assert schedule["destination"] == "acct_1Recruiter" and schedule["status"] == "pending"
    funded = await api.get("/api/v1/ledger/accounts/escrow", headers=admin)
    assert funded.json()["balances"] == {"EUR": 80_000}

    again = await api.post(url("pl-1"), json=activation(amount=1), headers=admin)
    assert again.status_code == 200
    assert again.json() == body
    assert await counts(db) == (1, 1)

    other = await api.post(url("pl-2"), json=activation(), headers=admin)
    assert other.status_code == 201 and other.json()["hold"]["id"] != hold["id"]


async def test_concurrent_activations_make_one_pair(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    responses = await asyncio.gather(
        *(api.post(url("pl-race"), json=activation(), headers=admin) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["hold"]["id"] for r in responses}) == 1
    assert await counts(db) == (1, 1)


async def test_guarantee_ends_at(api: AsyncClient, auth: TokenFactory) -> None:
    ends = (datetime.now(UTC) + timedelta(days=200)).replace(microsecond=0)
    body = activation(guarantee_days=None, guarantee_ends_at=ends.isoformat())
    response = await api.post(url("pl-3"), json=body, headers=auth("platform_admin"))
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["hold"]["release_at"] == made["payout_schedule"]["scheduled_for"]
    assert datetime.fromisoformat(made["hold"]["release_at"]) == ends


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"guarantee_days": 0}, "guarantee_days"),
        ({"guarantee_days": 366}, "guarantee_days"),
        ({"guarantee_days": None}, None),
        ({"guarantee_ends_at": "2031-01-01T00:00:00+00:00"}, None),
        ({"guarantee_days": None, "guarantee_ends_at": "2031-01-01T00:00:00"}, "guarantee_ends_at"),
        (
            {"guarantee_days": None, "guarantee_ends_at": "2020-01-01T00:00:00Z"},
            "guarantee_ends_at",
        ),
        (
            {"guarantee_days": None, "guarantee_ends_at": "2999-01-01T00:00:00Z"},
            "guarantee_ends_at",
        ),
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"destination": "bank-1"}, "destination"),
        ({"required_approvals": -1}, "required_approvals"),
    ],
)
async def test_bad_input_is_a_400_and_creates_nothing(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    changes: dict[str, Any],
    param: str | None,
) -> None:
    response = await api.post(
        url("pl-4"), json=activation(**changes), headers=auth("platform_admin")
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert await counts(db) == (0, 0)


async def test_only_platform_admins_activate(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    for role in ("customer", "vendor", "driver", "billing_admin"):
        response = await api.post(url("pl-5"), json=activation(), headers=auth(role))
        assert response.status_code == 403, role
    assert (await api.post(url("pl-5"), json=activation())).status_code == 401
    bad_id = await api.post(url("pl 5!"), json=activation(), headers=auth("platform_admin"))
    assert bad_id.status_code == 400
    assert await counts(db) == (0, 0)


async def test_with_temporal_up_both_workflows_start(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    response = await live_api.post(url("pl-6"), json=activation(), headers=auth("platform_admin"))
    assert response.status_code == 201, response.text
    body = response.json()
    client = local_temporal.client
    hold = await client.get_workflow_handle(body["hold"]["workflow_id"]).describe()
    payout = await client.get_workflow_handle(body["payout_schedule"]["workflow_id"]).describe()
    assert (hold.workflow_type, payout.workflow_type) == ("EscrowHold", "PayoutSchedule")
    again = await live_api.post(url("pl-6"), json=activation(), headers=auth("platform_admin"))
    assert again.status_code == 200
    after = await client.get_workflow_handle(body["hold"]["workflow_id"]).describe()
    assert after.run_id == hold.run_id  # found running, not started twice

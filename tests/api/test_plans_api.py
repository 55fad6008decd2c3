"""Plans over HTTP, in process: admins create them and take them in and out of sale, anyone
signed in reads them, and a bad plan is a 400 that stores nothing."""

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.subscriptions import Plan
from tests.api.billing import count
from tests.api.conftest import error_code
from tests.conftest import TokenFactory

URL = "/api/v1/plans"
PRO = {"name": "Pro", "amount": 3_000, "currency": "usd", "interval": "month"}


async def create(api: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await api.post(URL, json={**PRO, **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_admin_creates_a_plan_that_anyone_signed_in_reads(
    api: AsyncClient, auth: TokenFactory
) -> None:
    plan = await create(api, auth("billing_admin"), metadata={"tier": "2"})

    assert plan["object"] == "plan"
    assert (plan["name"], plan["amount"], plan["currency"]) == ("Pro", 3_000, "USD")
    assert (plan["interval"], plan["interval_count"], plan["trial_days"]) == ("month", 1, 0)
    assert plan["active"] is True and plan["metadata"] == {"tier": "2"}
    yearly = await create(
        api, auth("platform_admin"), name="Yearly", interval="year", interval_count=2, trial_days=30
    )
    assert (yearly["interval"], yearly["interval_count"], yearly["trial_days"]) == ("year", 2, 30)

    read = await api.get(f"{URL}/{plan['id']}", headers=auth("customer", sub="cust-1"))
    assert read.status_code == 200 and read.json() == plan
    assert (await api.get(f"{URL}/{plan['id']}")).status_code == 401
    missing = await api.get(f"{URL}/{uuid.uuid4()}", headers=auth("customer", sub="cust-1"))
    assert missing.status_code == 404 and error_code(missing) == "resource_missing"


async def test_bad_plans_are_refused_and_store_nothing(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("billing_admin")
    cases: list[tuple[dict[str, str], dict[str, Any], int, str | None]] = [
        (admin, {"interval": "fortnight"}, 400, "parameter_invalid"),
        (admin, {"amount": 0}, 400, "parameter_invalid"),
        (admin, {"amount": -100}, 400, "parameter_invalid"),
        (admin, {"amount": 1.5}, 400, "parameter_invalid"),
        (admin, {"currency": "XYZ"}, 400, "invalid_currency"),
        (admin, {"currency": "USDC"}, 400, "invalid_currency"),
        (admin, {"interval_count": 0}, 400, "parameter_invalid"),
        (admin, {"interval_count": 366}, 400, "parameter_invalid"),
        (admin, {"trial_days": -1}, 400, "parameter_invalid"),
        (admin, {"trial_days": 731}, 400, "parameter_invalid"),
        (admin, {"name": " "}, 400, "parameter_invalid"),
        (admin, {"active": False}, 400, "parameter_invalid"),  # not a field: unknown
        (admin, {"price": 3_000}, 400, "parameter_invalid"),
        (auth("customer", sub="cust-2"), {}, 403, "forbidden"),
        (auth("vendor", sub="v-1"), {}, 403, "forbidden"),
    ]
    for headers, changes, status, code in cases:
        response = await api.post(URL, json={**PRO, **changes}, headers=headers)
        assert response.status_code == status, (changes, response.text)
        assert error_code(response) == code, changes
    missing_interval = {key: value for key, value in PRO.items() if key != "interval"}
    assert (await api.post(URL, json=missing_interval, headers=admin)).status_code == 400
    assert await count(db, Plan) == 0


async def test_deactivated_plans_leave_the_active_list_and_come_back(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("billing_admin")
    basic = await create(api, admin, name="Basic", amount=1_000)
    pro = await create(api, admin)
    customer = auth("customer", sub="cust-3")

    refused = await api.post(f"{URL}/{basic['id']}/deactivate", headers=customer)
    assert refused.status_code == 403
    off = await api.post(f"{URL}/{basic['id']}/deactivate", headers=admin)
    assert off.status_code == 200 and off.json()["active"] is False
    again = await api.post(f"{URL}/{basic['id']}/deactivate", headers=admin)
    assert again.status_code == 200 and again.json()["active"] is False

    active = await api.get(URL, params={"active": "true"}, headers=customer)
    assert [item["id"] for item in active.json()["data"]] == [pro["id"]]
    inactive = await api.get(URL, params={"active": "false"}, headers=customer)
    assert [item["id"] for item in inactive.json()["data"]] == [basic["id"]]
    every = await api.get(URL, headers=customer)
    assert [item["id"] for item in every.json()["data"]] == [pro["id"], basic["id"]]

    on = await api.post(f"{URL}/{basic['id']}/activate", headers=auth("platform_admin"))
    assert on.status_code == 200 and on.json()["active"] is True
    active = await api.get(URL, params={"active": "true"}, headers=customer)
    assert {item["id"] for item in active.json()["data"]} == {pro["id"], basic["id"]}
    missing = await api.post(f"{URL}/{uuid.uuid4()}/activate", headers=admin)
    assert missing.status_code == 404


async def test_plans_are_paged_newest_first(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("billing_admin")
    made = [(await create(api, admin, name=f"Plan {n}"))["id"] for n in range(3)]

    first = await api.get(URL, params={"limit": 2}, headers=admin)
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["data"]] == made[:0:-1]
    assert page["has_more"] is True and page["next_cursor"] == made[1]
    rest = await api.get(URL, params={"limit": 2, "starting_after": made[1]}, headers=admin)
    assert [item["id"] for item in rest.json()["data"]] == [made[0]]
    assert rest.json()["has_more"] is False and rest.json()["next_cursor"] is None

    for cursor in ("not-an-id", str(uuid.uuid4())):
        bad = await api.get(URL, params={"starting_after": cursor}, headers=admin)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "starting_after"
    assert (await api.get(URL, params={"limit": 0}, headers=admin)).status_code == 400

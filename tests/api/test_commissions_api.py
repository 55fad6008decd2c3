"""Commission rules over HTTP, in process: admins create them (bad input is a 4xx that stores
nothing, a conflict a 409 naming the rule in the way), take them in and out of force, and
everyone allowed asks which rule applies and what it takes."""

from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.commissions import CommissionRule
from tests.api.conftest import error_code
from tests.conftest import TokenFactory

URL = "/api/v1/commission-rules"
RULE = {
    "scope": "vendor",
    "vendor_id": "vendor-1",
    "priority": 1,
    "effective_from": "2025-01-01T00:00:00Z",
    "percentage_bps": 500,
    "fixed_amount": 30,
    "currency": "USD",
}


async def count(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(CommissionRule)) or 0)


async def create(api: AsyncClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await api.post(URL, json={**RULE, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_admin_creates_reads_and_lists_rules(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("billing_admin", sub="ops-1")
    rule = await create(api, admin, description="launch deal", effective_to="2025-06-01T00:00:00Z")

    assert rule["object"] == "commission_rule"
    assert (rule["scope"], rule["vendor_id"], rule["category"]) == ("vendor", "vendor-1", None)
    assert (rule["percentage_bps"], rule["fixed_amount"], rule["currency"]) == (500, 30, "USD")
    assert (rule["active"], rule["created_by"]) == (True, "ops-1")
    fetched = await api.get(f"{URL}/{rule['id']}", headers=admin)
    assert fetched.status_code == 200 and fetched.json()["id"] == rule["id"]

    default = await create(api, admin, scope="default", vendor_id=None, priority=0)
    listed = await api.get(URL, params={"scope": "default"}, headers=admin)
    assert [item["id"] for item in listed.json()["data"]] == [default["id"]]
    page = await api.get(URL, params={"limit": 1}, headers=admin)
    assert page.json()["has_more"] is True
    rest = await api.get(
        URL, params={"limit": 1, "starting_after": page.json()["next_cursor"]}, headers=admin
    )
    assert [item["id"] for item in rest.json()["data"]] == [rule["id"]]
    missing = await api.get(f"{URL}/00000000-0000-0000-0000-000000000000", headers=admin)
    assert (missing.status_code, error_code(missing)) == (404, "resource_missing")


async def test_bad_rules_are_refused_and_store_nothing(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"scope": "weekly"}, "parameter_invalid", "scope"),
        ({"percentage_bps": 10_001}, "parameter_invalid", "percentage_bps"),
        ({"percentage_bps": None}, "parameter_invalid", "percentage_bps"),
        ({"fixed_amount": -1}, "parameter_invalid", "fixed_amount"),
        ({"priority": -1}, "parameter_invalid", "priority"),
        ({"effective_from": "2025-01-01T00:00:00"}, "parameter_invalid", "effective_from"),
        ({"effective_to": "2024-12-31T00:00:00Z"}, "validation_failed", "effective_to"),
        ({"vendor_id": None}, "validation_failed", "vendor_id"),
        ({"vendor_id": " padded "}, "parameter_invalid", "vendor_id"),
        ({"category": "books"}, "validation_failed", "category"),
        ({"scope": "default"}, "validation_failed", "vendor_id"),
        ({"currency": "XYZ"}, "invalid_currency", "currency"),
        ({"amount": 5}, "parameter_invalid", "amount"),
    ]
    for changes, code, param in cases:
        response = await api.post(URL, json={**RULE, **changes}, headers=admin)
        assert response.status_code == 400, (changes, response.text)
        assert error_code(response) == code, (changes, response.text)
        assert response.json()["error"]["param"] == param, (changes, response.text)
    assert await count(db) == 0


async def test_only_admins_manage_and_list_rules(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    rule = await create(api, auth("platform_admin"))
    for role in ("customer", "driver", "vendor"):
        headers = auth(role, sub="vendor-1")
        for method, path in [
            ("POST", URL),
            ("GET", URL),
            ("GET", f"{URL}/{rule['id']}"),
            ("POST", f"{URL}/{rule['id']}/deactivate"),
        ]:
            response = await api.request(method, path, json=RULE, headers=headers)
            assert (response.status_code, error_code(response)) == (403, "forbidden"), role
    anonymous = await api.post(URL, json=RULE)
    assert anonymous.status_code == 401
    assert await count(db) == 1


async def test_a_conflict_is_a_409_naming_the_rule_and_activation_rechecks(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    first = await create(api, admin, effective_to="2025-03-01T00:00:00Z")

    clash = await api.post(
        URL, json={**RULE, "effective_from": "2025-02-01T00:00:00Z"}, headers=admin
    )
    assert (clash.status_code, error_code(clash)) == (409, "commission_rule_conflict")
    assert first["id"] in clash.json()["error"]["message"]
    assert await count(db) == 1
    # Touching intervals do not conflict.
    await create(api, admin, effective_from="2025-03-01T00:00:00Z")
    waiting = await create(api, admin, active=False)

    refused = await api.post(f"{URL}/{waiting['id']}/activate", headers=admin)
    assert (refused.status_code, error_code(refused)) == (409, "commission_rule_conflict")
    off = await api.post(f"{URL}/{first['id']}/deactivate", headers=admin)
    assert off.status_code == 200 and off.json()["active"] is False
    # Still overlaps the rule starting in March (open-ended): deactivate that one too.
    listed = await api.get(URL, params={"vendor_id": "vendor-1", "active": True}, headers=admin)
    for item in listed.json()["data"]:
        await api.post(f"{URL}/{item['id']}/deactivate", headers=admin)
    on = await api.post(f"{URL}/{waiting['id']}/activate", headers=admin)
    assert on.status_code == 200 and on.json()["active"] is True


async def test_best_applicable_and_calculate(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    default = await create(api, admin, scope="default", vendor_id=None, percentage_bps=1_500)
    books = await create(api, admin, scope="category", vendor_id=None, category="books", priority=9)
    vendor = await create(api, admin)

    async def best(headers: dict[str, str], **params: str) -> Any:
        return await api.get(f"{URL}/best-applicable", params=params, headers=headers)

    at = "2025-02-01T00:00:00Z"
    assert (await best(admin, vendor_id="vendor-1", category="books", at=at)).json()[
        "id"
    ] == vendor["id"]
    assert (await best(admin, vendor_id="vendor-2", category="books", at=at)).json()["id"] == books[
        "id"
    ]
    assert (await best(admin, category="garden", at=at)).json()["id"] == default["id"]
    # A vendor asks about itself (by default, too), not about another.
    own = await best(auth("vendor", sub="vendor-1"), at=at)
    assert own.json()["id"] == vendor["id"]
    other = await best(auth("vendor", sub="vendor-1"), vendor_id="vendor-2", at=at)
    assert (other.status_code, error_code(other)) == (403, "forbidden")
    customer = await best(auth("customer"), at=at)
    assert customer.status_code == 403
    before = await best(admin, at="2024-12-31T23:59:59Z")
    assert (before.status_code, error_code(before)) == (404, "no_applicable_commission_rule")
    naive = await best(admin, at="2025-02-01T00:00:00")
    assert (naive.status_code, error_code(naive)) == (400, "parameter_invalid")

    calculated = await api.post(
        f"{URL}/calculate",
        json={"amount": 12_345, "currency": "USD", "vendor_id": "vendor-1", "at": at},
        headers=auth("vendor", sub="vendor-1"),
    )
    assert calculated.status_code == 200, calculated.text
    body = calculated.json()
    assert body["rule"]["id"] == vendor["id"]
    # 5 % of 12,345 = 617.25 -> 617, plus 30.
    assert (body["percentage_part"], body["fixed_part"], body["commission"]) == (617, 30, 647)
    assert (body["net"], body["capped"]) == (11_698, False)
    category_only = await api.post(
        f"{URL}/calculate",
        json={"amount": 10, "currency": "USD", "category": "books", "at": at},
        headers=admin,
    )
    assert category_only.json()["commission"] == 10  # 1 + 30 capped at the amount
    assert category_only.json()["capped"] is True
    for body_in, status, code in [
        ({"amount": -1, "currency": "USD"}, 400, "parameter_invalid"),
        ({"amount": 100, "currency": "XYZ"}, 400, "invalid_currency"),
        ({"amount": 100, "currency": "EUR", "at": at}, 404, "no_applicable_commission_rule"),
    ]:
        response = await api.post(f"{URL}/calculate", json=body_in, headers=admin)
        assert (response.status_code, error_code(response)) == (status, code), body_in

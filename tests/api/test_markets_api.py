"""Prediction markets over HTTP, in process: grants, markets, commitments, refusals in the
error envelope that change nothing, who may see what, and the resolution signals (checked
first; delivered to the local dev server when Temporal is up)."""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from temporalio.testing import WorkflowEnvironment

from domain.actors import Role
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory

URL = "/api/v1/markets"


async def grant(api: AsyncClient, auth: TokenFactory, user: str, amount: int = 1_000) -> None:
    response = await api.post(
        f"{URL}/token-grants",
        json={"user_id": user, "amount": amount, "reason": "welcome"},
        headers=auth(Role.PLATFORM_ADMIN, sub="ops-1"),
    )
    assert response.status_code == 201, response.text


async def create(api: AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    body = {
        "question": "Will the 8:15 ferry leave on time?",
        "kind": "binary",
        "creator_id": "creator-1",
        "house_fee_bps": 200,
        "creator_fee_bps": 100,
        **changes,
    }
    response = await api.post(URL, json=body, headers=auth(Role.PLATFORM_ADMIN, sub="ops-1"))
    assert response.status_code == 201, response.text
    market: dict[str, Any] = response.json()
    return market


async def balance(api: AsyncClient, auth: TokenFactory, user: str) -> int:
    response = await api.get(f"{URL}/token-balances/{user}", headers=auth(Role.CUSTOMER, sub=user))
    value: int = response.json()["balance"]
    return value


async def test_commitments_by_option_or_position_fill_the_pool(
    api: AsyncClient, auth: TokenFactory
) -> None:
    market = await create(api, auth)
    yes, no = market["options"]
    await grant(api, auth, "alice")
    alice = auth(Role.CUSTOMER, sub="alice")

    by_position = await api.post(
        f"{URL}/{market['id']}/commitments", json={"amount": 300, "position": "yes"}, headers=alice
    )
    by_id = await api.post(
        f"{URL}/{market['id']}/commitments",
        json={"amount": 200, "option_id": no["id"]},
        headers=alice,
    )

    assert by_position.status_code == by_id.status_code == 201
    assert (by_position.json()["option_id"], by_position.json()["matched_by"]) == (
        yes["id"],
        "position",
    )
    assert by_id.json()["matched_by"] == "option_id"
    assert await balance(api, auth, "alice") == 500
    detail = (await api.get(f"{URL}/{market['id']}", headers=alice)).json()
    assert detail["pool"] == 500
    assert [(o["label"], o["position"], o["committed"]) for o in detail["options"]] == [
        ("Yes", "yes", 300),
        ("No", "no", 200),
    ]
    trail = await api.get(
        f"{URL}/{market['id']}/commitments/{by_position.json()['id']}/audit", headers=alice
    )
    assert trail.json()["matched_by"] == "position"
    assert [e["action"] for e in trail.json()["events"]] == ["market_commitment.created"]
    bob = auth(Role.CUSTOMER, sub="bob")
    other = await api.get(
        f"{URL}/{market['id']}/commitments/{by_position.json()['id']}/audit", headers=bob
    )
    assert other.status_code == 403
    mine = await api.get(f"{URL}/{market['id']}/commitments", headers=bob)
    assert mine.json()["data"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": 5_000, "position": "yes"}, 409, "insufficient_tokens"),
        ({"amount": 10}, 400, "validation_failed"),
        ({"amount": 10, "position": "yes", "option_id": str(uuid.uuid4())}, 400, None),
        ({"amount": 10, "option_id": str(uuid.uuid4())}, 400, "validation_failed"),
        ({"amount": 0, "position": "yes"}, 400, "parameter_invalid"),
        ({"amount": 10, "position": "maybe"}, 400, "parameter_invalid"),
        ({"amount": 10, "position": "yes", "user_id": "bob"}, 400, "parameter_invalid"),
    ],
)
async def test_a_refused_commitment_is_an_error_envelope_and_changes_nothing(
    api: AsyncClient, auth: TokenFactory, body: dict[str, Any], status: int, code: str | None
) -> None:
    market = await create(api, auth)
    await grant(api, auth, "alice")

    response = await api.post(
        f"{URL}/{market['id']}/commitments", json=body, headers=auth(Role.CUSTOMER, sub="alice")
    )

    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"type", "code", "message", "param"}
    if code:
        assert error_code(response) == code
    assert await balance(api, auth, "alice") == 1_000
    detail = (await api.get(f"{URL}/{market['id']}", headers=auth(Role.CUSTOMER))).json()
    assert detail["pool"] == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": "multi", "options": ["only one"]},
        {"kind": "multi", "options": ["a", "A"]},
        {"kind": "binary", "options": ["a", "b", "c"]},
        {"house_fee_bps": 6000, "creator_fee_bps": 5000},
        {"house_fee_bps": -1},
        {"kind": "futures"},
        {"question": " "},
        {"no_winners": "burn"},
    ],
)
async def test_a_bad_market_is_a_400_and_creates_nothing(
    api: AsyncClient, auth: TokenFactory, changes: dict[str, Any]
) -> None:
    admin = auth(Role.PLATFORM_ADMIN)
    body = {"question": "Q?", "kind": "binary", "creator_id": "c", **changes}

    response = await api.post(URL, json=body, headers=admin)

    assert response.status_code == 400, response.text
    assert (await api.get(URL, headers=admin)).json()["data"] == []


async def test_roles(api: AsyncClient, auth: TokenFactory) -> None:
    market = await create(api, auth)
    customer = auth(Role.CUSTOMER, sub="alice")
    billing = auth(Role.BILLING_ADMIN)
    body = {"question": "Q?", "kind": "binary", "creator_id": "c"}
    assert (await api.post(URL, json=body, headers=customer)).status_code == 403
    grant_body = {"user_id": "alice", "amount": 5, "reason": "x"}
    assert (
        await api.post(f"{URL}/token-grants", json=grant_body, headers=customer)
    ).status_code == 403
    commit = {"amount": 1, "position": "yes"}
    admin_commit = await api.post(f"{URL}/{market['id']}/commitments", json=commit, headers=billing)
    assert admin_commit.status_code == 403
    resolve = await api.post(
        f"{URL}/{market['id']}/resolve", json={"position": "yes"}, headers=customer
    )
    assert resolve.status_code == 403
    assert (await api.get(f"{URL}/token-balances/bob", headers=customer)).status_code == 403
    assert (await api.get(f"{URL}/payouts?user_id=bob", headers=customer)).status_code == 403
    assert (
        await api.get(f"{URL}/{market['id']}/distribution", headers=customer)
    ).status_code == 403
    assert (await api.get(URL)).status_code == 401


async def test_list_is_cursor_paginated_and_filtered(api: AsyncClient, auth: TokenFactory) -> None:
    created = [await create(api, auth, question=f"Q{n}?") for n in range(3)]
    viewer = auth(Role.CUSTOMER)

    first = (await api.get(f"{URL}?limit=2", headers=viewer)).json()
    second = (
        await api.get(f"{URL}?limit=2&starting_after={first['next_cursor']}", headers=viewer)
    ).json()

    assert [m["id"] for m in first["data"] + second["data"]] == [m["id"] for m in created[::-1]]
    assert (first["has_more"], second["has_more"]) == (True, False)
    assert (await api.get(f"{URL}?status=settled", headers=viewer)).json()["data"] == []
    bad = await api.get(f"{URL}?starting_after=nope", headers=viewer)
    assert bad.status_code == 400
    missing = await api.get(f"{URL}/{uuid.uuid4()}", headers=viewer)
    assert (missing.status_code, error_code(missing)) == (404, "resource_missing")


async def test_signals_are_checked_first(api: AsyncClient, auth: TokenFactory) -> None:
    market = await create(api, auth)
    admin = auth(Role.PLATFORM_ADMIN)
    reason = {"reason": "wrong"}
    refused = [
        ("dispute", reason, 409, "market_not_disputable"),
        ("uphold", None, 409, "market_not_disputed"),
        ("rollback", reason, 409, "market_not_rollbackable"),
        ("resolve", {"option_id": str(uuid.uuid4())}, 400, "validation_failed"),
        ("resolve", {}, 400, "validation_failed"),
        ("dispute", {"reason": " "}, 400, "parameter_invalid"),
    ]
    for verb, body, status, code in refused:
        response = await api.post(f"{URL}/{market['id']}/{verb}", json=body, headers=admin)
        assert (response.status_code, error_code(response)) == (status, code), verb
    # Valid, but Temporal is down here: 503, nothing sent.
    down = await api.post(f"{URL}/{market['id']}/resolve", json={"position": "no"}, headers=admin)
    assert down.status_code == 503
    assert (await api.get(f"{URL}/{market['id']}", headers=admin)).json()["status"] == "open"
    assert (await api.get(f"{URL}/{market['id']}/distribution", headers=admin)).status_code == 404


async def test_with_temporal_up_resolve_starts_the_workflow_with_its_signal(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    market = await create(live_api, auth)
    admin = auth(Role.PLATFORM_ADMIN, sub="ops-1")

    response = await live_api.post(
        f"{URL}/{market['id']}/resolve", json={"position": "no"}, headers=admin
    )

    assert response.status_code == 202, response.text
    no = market["options"][1]["id"]
    signals = await signals_of(local_temporal.client, f"market-resolution-{market['id']}")
    assert signals == [("resolve", {"option_id": no, "by": "ops-1"})]

"""The ledger over HTTP: error envelope, pagination, balances, audit trail."""

from httpx import AsyncClient

from tests.conftest import TokenFactory


async def open_account(api: AsyncClient, headers: dict[str, str], code: str, type_: str) -> None:
    response = await api.post(
        "/api/v1/ledger/accounts", json={"code": code, "name": code, "type": type_}, headers=headers
    )
    assert response.status_code == 201, response.text


async def test_post_transaction_moves_balances_and_is_audited(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin", sub="ops_1")
    await open_account(api, admin, "cash", "asset")
    await open_account(api, admin, "vendor:9", "liability")
    posted = await api.post(
        "/api/v1/ledger/transactions",
        json={
            "description": "vendor top-up",
            "postings": [
                {"account": "cash", "amount": 1250, "currency": "usd"},
                {"account": "vendor:9", "amount": -1250, "currency": "USD"},
            ],
        },
        headers=admin,
    )
    assert posted.status_code == 201, posted.text
    account = await api.get("/api/v1/ledger/accounts/vendor:9", headers=admin)
    assert account.json()["balances"] == {"USD": -1250}
    assert (await api.get("/api/v1/ledger/totals", headers=admin)).json() == {"USD": 0}
    audit = await api.get(
        "/api/v1/audit-events",
        params={"entity_type": "ledger_transaction", "entity_id": posted.json()["id"]},
        headers=admin,
    )
    [event] = audit.json()["data"]
    assert (event["action"], event["actor"], event["actor_role"]) == (
        "ledger.transaction.posted",
        "ops_1",
        "platform_admin",
    )


async def test_unbalanced_post_is_400_in_the_envelope_and_changes_nothing(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    await open_account(api, admin, "cash", "asset")
    await open_account(api, admin, "fees", "revenue")
    response = await api.post(
        "/api/v1/ledger/transactions",
        json={
            "postings": [
                {"account": "cash", "amount": 100, "currency": "USD"},
                {"account": "fees", "amount": -99, "currency": "USD"},
            ]
        },
        headers=admin,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unbalanced_transaction"
    assert (await api.get("/api/v1/ledger/transactions", headers=admin)).json()["data"] == []


async def test_bad_input_never_gets_a_500(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    cases = [
        ("post", "/api/v1/ledger/accounts", {"code": "a b", "name": "x", "type": "asset"}),
        ("post", "/api/v1/ledger/accounts", {"code": "a", "name": "x", "type": "gold"}),
        ("post", "/api/v1/ledger/transactions", {"postings": "many"}),
        (
            "post",
            "/api/v1/ledger/transactions",
            {"postings": [{"account": "a", "amount": 1.5, "currency": "USD"}] * 2},
        ),
        (
            "post",
            "/api/v1/ledger/transactions",
            {"postings": [{"account": "a", "amount": 1, "currency": "ZZZ"}] * 2},
        ),
        ("get", "/api/v1/ledger/transactions?starting_after=not-a-uuid", None),
        ("get", "/api/v1/ledger/transactions?limit=1000", None),
        ("get", "/api/v1/ledger/transactions/not-a-uuid", None),
        ("get", "/api/v1/audit-events?starting_after=abc", None),
        ("get", "/api/v1/ledger/accounts/missing", None),
    ]
    for method, url, body in cases:
        response = await api.request(method, url, json=body, headers=admin)
        assert 400 <= response.status_code < 500, (url, body, response.status_code, response.text)
        error = response.json()["error"]
        assert set(error) == {"type", "code", "message", "param"}


async def test_accounts_paginate_with_cursor(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    for index in range(5):
        await open_account(api, admin, f"acct:{index}", "asset")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        page = (await api.get("/api/v1/ledger/accounts", params=params, headers=admin)).json()
        seen += [item["code"] for item in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == [f"acct:{index}" for index in range(5)]


async def test_reversal_over_http(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    await open_account(api, admin, "cash", "asset")
    await open_account(api, admin, "fees", "revenue")
    posted = await api.post(
        "/api/v1/ledger/transactions",
        json={
            "postings": [
                {"account": "cash", "amount": 40, "currency": "EUR"},
                {"account": "fees", "amount": -40, "currency": "EUR"},
            ]
        },
        headers=admin,
    )
    txn_id = posted.json()["id"]
    reversed_ = await api.post(
        f"/api/v1/ledger/transactions/{txn_id}/reverse", json={"reason": "test"}, headers=admin
    )
    assert reversed_.status_code == 201
    assert reversed_.json()["reverses"] == txn_id
    balances = (await api.get("/api/v1/ledger/accounts/fees", headers=admin)).json()["balances"]
    assert balances == {"EUR": 0}

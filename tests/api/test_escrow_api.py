"""Escrow holds over HTTP, in process. Temporal is not running here: creating a hold still
commits and funds it (the workflow start is best effort), while a signal that cannot be
delivered is a 503 that changed nothing. Signals that arrive use the local dev server."""

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

from api import csv_export, fields
from api.routers import escrow as escrow_router
from domain.actors import SYSTEM
from models.escrow import EscrowHold
from services import escrow
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory

URL = "/api/v1/escrow-holds"
LATER = datetime.now(UTC) + timedelta(days=30)


def hold_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payer_id": "client-1",
        "payee_id": "recruiter-1",
        "amount": 50_000,
        "currency": "EUR",
        "reason": "guarantee_period",
        "release_at": LATER.isoformat(),
    }
    return {**body, **changes}


async def create(api: AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    response = await api.post(URL, json=hold_body(**changes), headers=auth("platform_admin"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def count_holds(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(EscrowHold)) or 0)


async def test_create_commits_and_funds_the_hold_though_temporal_is_down(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin", sub="ops-1")
    response = await api.post(URL, json=hold_body(metadata={"placement": "p-9"}), headers=admin)
    assert response.status_code == 201, response.text
    hold = response.json()
    assert hold["status"] == "active" and hold["held_amount"] == 50_000
    assert hold["workflow_id"] == f"escrow-hold-{hold['id']}"
    assert hold["metadata"] == {"placement": "p-9"}

    assert (await api.get(f"{URL}/{hold['id']}", headers=admin)).json() == hold
    escrow_account = await api.get("/api/v1/ledger/accounts/escrow", headers=admin)
    assert escrow_account.json()["balances"] == {"EUR": 50_000}
    payer = await api.get("/api/v1/ledger/accounts/payer:client-1", headers=admin)
    assert payer.json()["balances"] == {"EUR": -50_000}
    events = await api.get(
        "/api/v1/audit-log", params={"entity_id": hold["id"], "actor": "ops-1"}, headers=admin
    )
    assert [e["action"] for e in events.json()["data"]] == ["escrow_hold.created"]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 2**63}, "amount"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "USDC"}, "currency"),
        ({"release_at": "2030-01-01T00:00:00"}, "release_at"),
        ({"reason": "because"}, "reason"),
        ({"required_approvals": -1}, "required_approvals"),
        ({"payer_id": ""}, "payer_id"),
        ({"placement_id": "p" * 101}, "placement_id"),
    ],
)
async def test_bad_input_is_a_400_and_creates_nothing(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    changes: dict[str, Any],
    param: str,
) -> None:
    response = await api.post(URL, json=hold_body(**changes), headers=auth("platform_admin"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert await count_holds(db) == 0


async def test_roles(api: AsyncClient, auth: TokenFactory) -> None:
    hold = await create(api, auth)
    one = f"{URL}/{hold['id']}"
    reads = [
        ("GET", URL, None),
        ("GET", one, None),
        ("GET", f"{URL}/stats", None),
        ("GET", f"{URL}/export.csv", None),
    ]
    writes = [
        ("POST", URL, hold_body()),
        ("PATCH", one, {"release_at": (LATER + timedelta(days=1)).isoformat()}),
        ("DELETE", one, None),
        ("POST", f"{one}/release", None),
        ("POST", f"{one}/extend", {"release_at": (LATER + timedelta(days=1)).isoformat()}),
        ("POST", f"{one}/refund", None),
        ("POST", f"{one}/dispute", {"reason": "candidate left"}),
        ("POST", f"{one}/resolve", None),
        ("POST", f"{one}/approve", None),
        ("POST", f"{URL}/bulk-release", {"ids": [hold["id"]]}),
    ]
    for role in ("customer", "vendor", "driver"):
        for method, url, body in reads + writes:
            response = await api.request(method, url, json=body, headers=auth(role))
            assert response.status_code == 403, (role, method, url)
            assert error_code(response) == "forbidden"
    billing = auth("billing_admin")
    for method, url, body in reads:
        assert (await api.request(method, url, json=body, headers=billing)).status_code == 200
    for method, url, body in writes:
        response = await api.request(method, url, json=body, headers=billing)
        assert response.status_code == 403, (method, url)
    assert (await api.get(URL)).status_code == 401


async def test_unknown_and_malformed_ids(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    missing = f"{URL}/{uuid.uuid4()}"
    for method, url, body in [
        ("GET", missing, None),
        ("DELETE", missing, None),
        ("PATCH", missing, {"release_at": LATER.isoformat()}),
        ("POST", f"{missing}/release", None),
        ("POST", f"{missing}/refund", None),
        ("POST", f"{missing}/dispute", {"reason": "x"}),
        ("POST", f"{missing}/approve", None),
    ]:
        response = await api.request(method, url, json=body, headers=admin)
        assert response.status_code == 404, (method, url)
        assert error_code(response) == "resource_missing"
    assert (await api.get(f"{URL}/not-an-id", headers=admin)).status_code == 400
    assert (await api.get(URL, params={"id": "nope"}, headers=admin)).status_code == 400
    bad_cursor = await api.get(URL, params={"starting_after": "x"}, headers=admin)
    assert bad_cursor.status_code == 400
    unknown_cursor = await api.get(URL, params={"starting_after": str(uuid.uuid4())}, headers=admin)
    assert unknown_cursor.status_code == 404


async def test_cursor_pagination_filters_and_id_search(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    soon = datetime.now(UTC) + timedelta(days=1)
    first = await create(api, auth, payee_id="r-1", release_at=soon.isoformat())
    second = await create(api, auth, payee_id="r-2", payer_id="client-2")
    third = await create(api, auth, payee_id="r-1")

    page = (await api.get(URL, params={"limit": 2}, headers=admin)).json()
    assert [h["id"] for h in page["data"]] == [third["id"], second["id"]]
    assert page["has_more"] is True and page["next_cursor"] == second["id"]
    rest = (
        await api.get(URL, params={"limit": 2, "starting_after": second["id"]}, headers=admin)
    ).json()
    assert [h["id"] for h in rest["data"]] == [first["id"]] and rest["has_more"] is False

    async def ids(**params: Any) -> list[str]:
        response = await api.get(URL, params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [h["id"] for h in response.json()["data"]]

    assert await ids(payee_id="r-1") == [third["id"], first["id"]]
    assert await ids(payer_id="client-2") == [second["id"]]
    assert await ids(due_before=(soon + timedelta(hours=1)).isoformat()) == [first["id"]]
    assert await ids(status="active") == [third["id"], second["id"], first["id"]]
    assert await ids(status="released") == []
    assert await ids(id=second["id"]) == [second["id"]]
    assert await ids(id=second["id"], payee_id="r-1") == []
    assert await ids(id=str(uuid.uuid4())) == []
    assert (await api.get(URL, params={"status": "frozen"}, headers=admin)).status_code == 400
    naive = await api.get(URL, params={"due_before": "2030-01-01T00:00:00"}, headers=admin)
    assert naive.status_code == 400


async def test_stats(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    due = await create(api, auth, amount=1_000, release_at=past.isoformat())
    partial = await create(api, auth, amount=2_000)
    await create(api, auth, amount=300, currency="USD")
    refunded = await create(api, auth, amount=4_000)
    async with db() as session, session.begin():
        await escrow.release(
            session, uuid.UUID(partial["id"]), key="k-partial", actor=SYSTEM, amount=500
        )
        await escrow.give_back(
            session, uuid.UUID(refunded["id"]), key="k-refund", actor=SYSTEM, cancel=False
        )

    stats = (await api.get(f"{URL}/stats", headers=auth("billing_admin"))).json()
    assert stats == {
        "object": "escrow_hold_stats",
        "count_by_status": {"active": 2, "partially_released": 1, "refunded": 1},
        "held_by_currency": {"EUR": 1_000 + 1_500, "USD": 300},
        "due_for_release": 1,
        "released_today": 1,
    }
    assert due["status"] == "active"


async def test_csv_export_streams_every_matching_row(
    api: AsyncClient, auth: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "EXPORT_PAGE", 2)  # so the export pages
    made = [await create(api, auth, payee_id=f"r-{n}", payer_id="=cmd|calc") for n in range(5)]
    await create(api, auth, payee_id="other", payer_id="client-9")

    response = await api.get(
        f"{URL}/export.csv", params={"payer_id": "=cmd|calc"}, headers=auth("billing_admin")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(escrow_router.HOLD_COLUMNS)
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["id"] for r in records] == [h["id"] for h in reversed(made)]
    assert records[0]["amount"] == "50000" and records[0]["status"] == "active"
    assert records[0]["payer_id"] == "'=cmd|calc"  # never a spreadsheet formula
    assert records[0]["release_at"] == made[-1]["release_at"].replace("Z", "+00:00")

    empty = await api.get(
        f"{URL}/export.csv", params={"status": "released"}, headers=auth("billing_admin")
    )
    assert list(csv.reader(io.StringIO(empty.text))) == [list(escrow_router.HOLD_COLUMNS)]


async def test_signals_are_checked_first_then_503_while_temporal_is_down(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    hold = await create(api, auth, amount=1_000, required_approvals=1)
    one = f"{URL}/{hold['id']}"

    refused = [
        ("POST", f"{one}/release", {"amount": 1_001}, 400, "validation_failed"),
        ("POST", f"{one}/release", {"amount": 0}, 400, "parameter_invalid"),
        ("POST", f"{one}/release", {"amount": -3}, 400, "parameter_invalid"),
        ("POST", f"{one}/release", None, 409, "approvals_missing"),
        ("PATCH", one, {"release_at": hold["release_at"]}, 400, "validation_failed"),
        ("PATCH", one, {"release_at": "2040-01-01T00:00:00"}, 400, "parameter_invalid"),
        ("PATCH", one, {"amount": 5}, 400, "parameter_invalid"),
        ("POST", f"{one}/extend", {}, 400, "parameter_invalid"),
        ("POST", f"{one}/dispute", {"reason": "  "}, 400, "parameter_invalid"),
    ]
    for method, url, body, status, code in refused:
        response = await api.request(method, url, json=body, headers=admin)
        assert response.status_code == status, (url, body, response.text)
        assert error_code(response) == code

    later = (LATER + timedelta(days=7)).isoformat()
    for method, url, body in [
        ("POST", f"{one}/approve", None),
        ("PATCH", one, {"release_at": later}),
        ("POST", f"{one}/extend", {"release_at": later}),
        ("POST", f"{one}/dispute", {"reason": "candidate left"}),
        ("POST", f"{one}/refund", None),
        ("DELETE", one, None),
    ]:
        response = await api.request(method, url, json=body, headers=admin)
        assert response.status_code == 503, (url, response.text)
        assert error_code(response) == "provider_unavailable"
    assert (await api.get(one, headers=admin)).json() == hold

    async with db() as session, session.begin():
        await escrow.approve(session, uuid.UUID(hold["id"]), approver="ops", actor=SYSTEM)
        await escrow.dispute(session, uuid.UUID(hold["id"]), reason="late", actor=SYSTEM)
    disputed = await api.post(f"{one}/release", headers=admin)
    assert disputed.status_code == 409 and error_code(disputed) == "hold_disputed"
    async with db() as session, session.begin():
        await escrow.resolve(session, uuid.UUID(hold["id"]), actor=SYSTEM)
        await escrow.release(session, uuid.UUID(hold["id"]), key="k", actor=SYSTEM)
    for method, url, body in [
        ("POST", f"{one}/release", None),
        ("POST", f"{one}/refund", None),
        ("DELETE", one, None),
        ("POST", f"{one}/extend", {"release_at": later}),
    ]:
        response = await api.request(method, url, json=body, headers=admin)
        assert response.status_code == 409 and error_code(response) == "state_conflict"


async def test_bulk_release_answers_each_id(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    admin = auth("platform_admin")
    released = await create(api, auth)
    ready = await create(api, auth)
    async with db() as session, session.begin():
        await escrow.release(session, uuid.UUID(released["id"]), key="k", actor=SYSTEM)
    missing = str(uuid.uuid4())

    response = await api.post(
        f"{URL}/bulk-release",
        json={"ids": [missing, "bad", released["id"], missing, ready["id"]]},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    outcome = {
        item["id"]: (item["status"], (item["error"] or {}).get("code")) for item in body["data"]
    }
    assert outcome == {
        missing: ("error", "resource_missing"),
        "bad": ("error", "validation_failed"),
        released["id"]: ("error", "state_conflict"),
        ready["id"]: ("error", "provider_unavailable"),
    }
    assert body["accepted"] == 0 and body["failed"] == 4

    too_many = await api.post(f"{URL}/bulk-release", json={"ids": [missing] * 501}, headers=admin)
    assert too_many.status_code == 400 and error_code(too_many) == "parameter_invalid"
    assert (
        await api.post(f"{URL}/bulk-release", json={"ids": []}, headers=admin)
    ).status_code == 400
    assert (await api.get(f"{URL}/{ready['id']}", headers=admin)).json()["status"] == "active"


async def test_with_temporal_up_the_workflow_starts_and_takes_signals(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    admin = auth("platform_admin", sub="ops-7")
    hold = await create(live_api, auth, amount=1_000)
    client = local_temporal.client
    workflow_id = f"escrow-hold-{hold['id']}"
    described = await client.get_workflow_handle(workflow_id).describe()
    assert described.workflow_type == "EscrowHold"

    partial = await live_api.post(
        f"{URL}/{hold['id']}/release", json={"amount": 400}, headers=admin
    )
    assert partial.status_code == 202, partial.text
    assert partial.json()["held_amount"] == 1_000  # the workflow moves the money, not the API
    assert (await live_api.post(f"{URL}/{hold['id']}/release", headers=admin)).status_code == 202
    assert (await live_api.delete(f"{URL}/{hold['id']}", headers=admin)).status_code == 202
    assert await signals_of(client, workflow_id) == [
        ("release_partial", {"amount": 400, "by": "ops-7"}),
        ("release_now", {"by": "ops-7"}),
        ("cancel", {"by": "ops-7"}),
    ]

    await client.get_workflow_handle(workflow_id).terminate("test: the workflow ended")
    ended = await live_api.post(f"{URL}/{hold['id']}/refund", headers=admin)
    assert ended.status_code == 409 and error_code(ended) == "workflow_finished"


async def test_a_signal_starts_a_workflow_whose_start_was_missed(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    async with db() as session, session.begin():
        hold = await escrow.create_hold(
            session,
            payer_id="client-1",
            payee_id="recruiter-1",
            money=fields.money(700, "EUR"),
            reason=escrow_router.HoldReason.OTHER,
            release_at=LATER,
            actor=SYSTEM,
        )
    response = await live_api.post(
        f"{URL}/{hold.id}/dispute", json={"reason": " no show "}, headers=auth("platform_admin")
    )
    assert response.status_code == 202, response.text
    assert await signals_of(local_temporal.client, f"escrow-hold-{hold.id}") == [
        ("dispute", {"reason": "no show", "by": "user_1"})
    ]


async def test_audit_log_filters(api: AsyncClient, auth: TokenFactory) -> None:
    log = "/api/v1/audit-log"
    first = await create(api, auth)
    middle = datetime.now(UTC)
    response = await api.post(URL, json=hold_body(), headers=auth("platform_admin", sub="ops-2"))
    second = response.json()
    reader = auth("billing_admin")

    async def found(**params: Any) -> list[tuple[str, str, str]]:
        response = await api.get(log, params=params, headers=reader)
        assert response.status_code == 200, response.text
        return [(e["action"], e["entity_id"], e["actor"]) for e in response.json()["data"]]

    created = [
        ("escrow_hold.created", second["id"], "ops-2"),
        ("escrow_hold.created", first["id"], "user_1"),
    ]
    assert await found(entity_type="escrow_hold") == created
    assert await found(action="escrow_hold.created", actor="ops-2") == created[:1]
    assert await found(entity_id=first["id"]) == created[1:]
    assert (
        await found(entity_type="escrow_hold", **{"occurred[gte]": middle.isoformat()})
        == (created[:1])
    )
    assert (
        await found(entity_type="escrow_hold", **{"occurred[lt]": middle.isoformat()})
        == (created[1:])
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await found(entity_type="escrow_hold", **{"occurred[lt]": tomorrow}) == created
    assert await found(**{"occurred[gte]": tomorrow}) == []
    assert await found(actor="nobody") == []

    page = (await api.get(log, params={"limit": 1}, headers=reader)).json()
    assert page["has_more"] is True
    rest = await api.get(log, params={"starting_after": page["next_cursor"]}, headers=reader)
    assert page["data"][0]["id"] not in [e["id"] for e in rest.json()["data"]]

    naive = await api.get(log, params={"occurred[gte]": "2030-01-01T00:00:00"}, headers=reader)
    assert naive.status_code == 400 and naive.json()["error"]["param"] == "occurred[gte]"
    assert (await api.get(log, params={"starting_after": "x"}, headers=reader)).status_code == 400
    assert (await api.get(log, headers=auth("vendor"))).status_code == 403

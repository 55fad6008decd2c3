"""Transfers and batch payouts over HTTP, in process; Temporal is down unless a test uses
``live_api``: a batch as JSON, as an uploaded CSV and as a CSV body; a batch refused whole
with every item's errors and nothing stored; progress, items, retrying failed items."""

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.recovery import RecoveryActivities
from domain.actors import SYSTEM
from services import transfers
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory
from workflows.types import RecoveryInput

URL = "/api/v1/transfers"
BATCH = f"{URL}/batch"
ACCOUNT = "acct_1ApiPayee"
ADDRESS = "0x" + "12" * 20


def items(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [
        {"reference": f"inv-{i}", "destination": ACCOUNT, "amount": 500 + i, "currency": "USD"}
        | changes
        for i in range(count)
    ]


def csv_of(rows: list[dict[str, Any]]) -> bytes:
    lines = ["reference,destination,amount,currency,description"]
    for r in rows:
        cells = (r["reference"], r["destination"], r["amount"], r["currency"])
        lines.append(",".join(str(cell) for cell in cells) + f",{r.get('description', '')}")
    return ("\r\n".join(lines) + "\r\n").encode()


async def create(
    api: AsyncClient, auth: TokenFactory, partner: str = "partner-a", count: int = 3
) -> dict[str, Any]:
    response = await api.post(
        BATCH, json={"partner_id": partner, "items": items(count)}, headers=auth("platform_admin")
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_json_batch_is_stored_routed_and_reported(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("billing_admin")
    body = {
        "partner_id": "partner-a",
        "items": [*items(2), {**items(1)[0], "reference": "chain-1", "destination": ADDRESS}],
        "metadata": {"payroll": "2026-11"},
    }

    response = await api.post(BATCH, json=body, headers=admin)

    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["object"] == "transfer_batch"
    assert (batch["status"], batch["source"], batch["total_count"], batch["pending_count"]) == (
        "processing",
        "json",
        3,
        3,
    )
    assert (batch["percent_done"], batch["metadata"]) == (0.0, {"payroll": "2026-11"})
    assert batch["workflow_id"] == f"transfer-batch-{batch['id']}"
    progress = await api.get(f"{BATCH}/{batch['id']}", headers=admin)
    assert progress.status_code == 200
    assert progress.json()["total_count"] == 3

    page = (await api.get(f"{BATCH}/{batch['id']}/items", headers=admin)).json()
    assert [(t["item_index"], t["rail"], t["status"]) for t in page["data"]] == [
        (0, "stripe", "pending"),
        (1, "stripe", "pending"),
        (2, "chain", "pending"),
    ]
    assert page["data"][2]["route_reason"] == "USD to a chain address"
    first = page["data"][0]
    assert first["idempotency_key"] == f"transfer-{first['id']}"
    assert (await api.get(f"{URL}/{first['id']}", headers=admin)).json() == first

    two = (await api.get(f"{BATCH}/{batch['id']}/items", params={"limit": 2}, headers=admin)).json()
    assert two["has_more"] is True
    rest = await api.get(
        f"{BATCH}/{batch['id']}/items",
        params={"limit": 2, "starting_after": two["next_cursor"]},
        headers=admin,
    )
    assert [t["item_index"] for t in rest.json()["data"]] == [2]
    on_chain = await api.get(URL, params={"batch_id": batch["id"], "rail": "chain"}, headers=admin)
    assert [t["reference"] for t in on_chain.json()["data"]] == ["chain-1"]
    listed = await api.get(BATCH, params={"partner_id": "partner-a"}, headers=admin)
    assert [b["id"] for b in listed.json()["data"]] == [batch["id"]]


async def test_a_batch_with_invalid_items_is_refused_whole_with_every_error(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    batch = items(4)
    batch[1]["amount"] = "12.50"
    batch[3] |= {"currency": "USDC", "reference": "inv-0"}

    response = await api.post(
        BATCH, json={"partner_id": "partner-b", "items": batch}, headers=admin
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "batch_invalid",
        "2 of 4 items are invalid: nothing was stored",
    )
    assert [(e["row"], e["field"], e["code"]) for e in error["errors"]] == [
        (2, "amount", "invalid"),
        (4, "destination", "route_incompatible"),
        (4, "reference", "duplicate_reference"),
    ]
    stored = await api.get(URL, params={"partner_id": "partner-b"}, headers=admin)
    assert stored.json()["data"] == []
    assert (await api.get(BATCH, params={"partner_id": "partner-b"}, headers=admin)).json()[
        "data"
    ] == []


async def test_a_csv_upload_makes_a_batch(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    rows = items(3)
    rows[0]["description"] = "first payee"

    response = await api.post(
        BATCH,
        data={"partner_id": "partner-csv"},
        files={"file": ("payouts.csv", csv_of(rows), "text/csv")},
        headers=admin,
    )

    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["source"], batch["total_count"], batch["partner_id"]) == ("csv", 3, "partner-csv")
    page = (await api.get(f"{BATCH}/{batch['id']}/items", headers=admin)).json()
    assert [(t["reference"], t["amount"], t["description"]) for t in page["data"]] == [
        ("inv-0", 500, "first payee"),
        ("inv-1", 501, None),
        ("inv-2", 502, None),
    ]
    # The same file as a text/csv body, for another partner.
    body = await api.post(
        BATCH,
        params={"partner_id": "partner-csv-2"},
        content=csv_of(rows),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert body.status_code == 201, body.text
    assert body.json()["source"] == "csv"


async def test_a_bad_csv_is_a_400_with_its_rows_and_stores_nothing(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    rows = items(3)
    rows[1]["amount"] = "1,5"  # a comma: one cell too many
    malformed = await api.post(
        BATCH,
        data={"partner_id": "partner-bad"},
        files={"file": ("payouts.csv", csv_of(rows), "text/csv")},
        headers=admin,
    )
    assert malformed.status_code == 400
    error = malformed.json()["error"]
    assert error["code"] == "csv_invalid"
    assert [(e["row"], e["code"]) for e in error["errors"]] == [(2, "invalid_row")]

    rows = items(2, destination="nobody")
    invalid = await api.post(
        BATCH,
        data={"partner_id": "partner-bad"},
        files={"file": ("payouts.csv", csv_of(rows), "text/csv")},
        headers=admin,
    )
    assert invalid.status_code == 400
    assert [e["row"] for e in invalid.json()["error"]["errors"]] == [1, 2]

    no_file = await api.post(BATCH, data={"partner_id": "partner-bad"}, headers=admin)
    assert no_file.status_code == 400
    assert (await api.get(URL, params={"partner_id": "partner-bad"}, headers=admin)).json()[
        "data"
    ] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"items": items(1)}, "parameter_invalid"),
        ({"partner_id": "p", "items": []}, "parameter_invalid"),
        ({"partner_id": "p", "items": items(1001)}, "batch_size"),
    ],
)
async def test_malformed_json_batches_are_400s(
    api: AsyncClient, auth: TokenFactory, body: dict[str, Any], code: str
) -> None:
    response = await api.post(BATCH, json=body, headers=auth("platform_admin"))
    assert response.status_code == 400
    assert error_code(response) == code


async def test_only_admins_make_and_read_batches(api: AsyncClient, auth: TokenFactory) -> None:
    body = {"partner_id": "partner-a", "items": items(1)}
    for role in ("customer", "vendor", "driver"):
        refused = await api.post(BATCH, json=body, headers=auth(role))
        assert refused.status_code == 403
        assert (await api.get(URL, headers=auth(role))).status_code == 403
    assert (await api.post(BATCH, json=body)).status_code == 401


async def test_an_idempotency_key_replays_the_batch(api: AsyncClient, auth: TokenFactory) -> None:
    headers = {**auth("platform_admin"), "Idempotency-Key": uuid.uuid4().hex}
    body = {"partner_id": "partner-idem", "items": items(2)}

    first = await api.post(BATCH, json=body, headers=headers)
    second = await api.post(BATCH, json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    listed = await api.get(BATCH, params={"partner_id": "partner-idem"}, headers=headers)
    assert len(listed.json()["data"]) == 1


async def test_retry_puts_failed_items_back_and_signals_the_workflow(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    api = live_api
    admin = auth("platform_admin", sub="ops-retry")
    batch = await create(api, auth, partner=f"partner-{uuid.uuid4().hex[:6]}")
    retry = f"{BATCH}/{batch['id']}/retry"
    nothing = await api.post(retry, headers=admin)
    assert nothing.status_code == 409
    assert error_code(nothing) == "nothing_to_retry"

    # Items driven the way the workflow's activities drive them: one paid, one refused.
    page = (await api.get(f"{BATCH}/{batch['id']}/items", headers=admin)).json()["data"]
    paid, refused = (uuid.UUID(page[0]["id"]), uuid.UUID(page[1]["id"]))
    async with db() as session, session.begin():
        await transfers.start(session, paid, actor=SYSTEM)
        await transfers.succeed(session, paid, external_id="tr_paid", actor=SYSTEM)
        await transfers.start(session, refused, actor=SYSTEM)
        await transfers.fail(session, refused, error="NotFound: gone", final=True, actor=SYSTEM)
    failed = (
        await api.get(f"{BATCH}/{batch['id']}/items", params={"status": "failed"}, headers=admin)
    ).json()
    assert [(t["id"], t["last_error"]) for t in failed["data"]] == [
        (str(refused), "NotFound: gone")
    ]

    retried = await api.post(retry, headers=admin)

    assert retried.status_code == 202, retried.text
    view = retried.json()
    assert (view["status"], view["run_count"]) == ("processing", 2)
    assert (view["pending_count"], view["succeeded_count"], view["failed_count"]) == (2, 1, 0)
    statuses = (await api.get(f"{BATCH}/{batch['id']}/items", headers=admin)).json()["data"]
    assert [t["status"] for t in statuses] == ["succeeded", "pending", "pending"]
    assert statuses[1]["idempotency_key"] == f"transfer-{refused}-retry-1"
    signals = await signals_of(local_temporal.client, f"transfer-batch-{batch['id']}")
    assert signals == [("retry_failed", {"by": "ops-retry"})]


async def test_a_batch_whose_workflow_never_started_is_started_by_the_safety_net(
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    # Temporal is down for ``api``: the batch commits, its workflow does not start.
    batch = await create(api, auth, partner=f"partner-{uuid.uuid4().hex[:6]}")
    # Nobody polls this queue: the test looks at what was started.
    request = RecoveryInput(task_queue=f"recovery-{uuid.uuid4()}", transfer_concurrency=7)
    recovery = RecoveryActivities(db, local_temporal.client)

    first = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)
    second = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)

    assert (first.restarted_transfer_batches, second.restarted_transfer_batches) == (1, 0)
    handle = local_temporal.client.get_workflow_handle(f"transfer-batch-{batch['id']}")
    described = await handle.describe()
    assert described.status is WorkflowExecutionStatus.RUNNING
    assert described.task_queue == request.task_queue


async def test_an_upload_too_large_is_refused_unread(api: AsyncClient, auth: TokenFactory) -> None:
    huge = b"reference,destination,amount,currency\n" + b"x" * (3 * 1024 * 1024)
    response = await api.post(
        BATCH,
        params={"partner_id": "partner-huge"},
        content=huge,
        headers={**auth("platform_admin"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 400
    assert error_code(response) == "batch_size"
    unsupported = await api.post(
        BATCH, content=b"<xml/>", headers={**auth("platform_admin"), "Content-Type": "text/xml"}
    )
    assert (unsupported.status_code, error_code(unsupported)) == (400, "unsupported_media_type")

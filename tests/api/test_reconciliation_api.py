"""Reconciliation over HTTP, in process (Temporal down unless a test uses ``live_api``): runs
started on demand by platform admins and refused whole on bad input; a run's counts and
match rate, its discrepancies filtered, paged and exported as CSV; resolving one with a
note."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.recovery import RecoveryActivities
from api.routers.reconciliation import DISCREPANCY_COLUMNS
from domain.actors import SYSTEM
from domain.reconciliation import ExternalRecord, RunTrigger, Source, reconcile
from domain.transfers import idempotency_key
from models.transfers import Transfer
from services import reconciliation
from tests.api.conftest import error_code
from tests.conftest import TokenFactory
from workflows.types import RecoveryInput

URL = "/api/v1/reconciliation"
RUNS = f"{URL}/runs"
DAY = datetime(2021, 6, 1, tzinfo=UTC)

Sessions = async_sessionmaker[AsyncSession]


async def completed_run(db: Sessions, missing: int = 3, matched: int = 2) -> uuid.UUID:
    """A completed run of ``DAY`` on Stripe: ``matched`` transfers matched, ``missing``
    missing at Stripe, and one Stripe transfer the ledger does not know (``=tr_stray``)."""
    async with db() as session, session.begin():
        refs = []
        for i in range(missing + matched):
            transfer_id = uuid.uuid4()
            refs.append(f"tr_api_{transfer_id.hex[:12]}")
            await session.execute(
                insert(Transfer).values(
                    id=transfer_id,
                    partner_id="partner-api",
                    reference=f"ref-{i}-{transfer_id.hex[:6]}",
                    destination="acct_api",
                    amount=500 + i,
                    currency="USD",
                    rail="stripe",
                    route_reason="test",
                    status="succeeded",
                    attempts=1,
                    key_run=0,
                    idempotency_key=idempotency_key(transfer_id),
                    external_id=refs[-1],
                    completed_at=DAY + timedelta(minutes=10 * i),
                )
            )
        run = await reconciliation.create_run(
            session,
            period_start=DAY,
            period_end=DAY + timedelta(days=1),
            trigger=RunTrigger.SCHEDULE,
            sources=["stripe"],
            actor=SYSTEM,
            workflow=f"reconciliation-daily-run-{uuid.uuid4().hex[:6]}",
        )
        start, end = reconciliation.window(run, timedelta(hours=1))
        records = await reconciliation.ledger_records(
            session,
            Source.STRIPE,
            window_start=start,
            window_end=end,
            period_start=run.period_start,
            period_end=run.period_end,
        )
        external = [
            ExternalRecord(ref, 500 + missing + i, "USD", f"txn_{i}")
            for i, ref in enumerate(refs[missing:])
        ] + [ExternalRecord("=tr_stray", 9, "USD", "txn_stray")]
        await reconciliation.store_source(
            session, run.id, Source.STRIPE, reconcile(records, external)
        )
        await reconciliation.complete_run(session, run.id, actor=SYSTEM)
        return run.id


async def test_an_admin_starts_a_run_of_the_last_day(api: AsyncClient, auth: TokenFactory) -> None:
    before = datetime.now(UTC)

    response = await api.post(RUNS, headers=auth("platform_admin", sub="ops-rec"))

    assert response.status_code == 202, response.text
    run = response.json()
    assert run["object"] == "reconciliation_run"
    assert (run["status"], run["trigger"], run["started_by"]) == ("running", "manual", "ops-rec")
    assert run["sources"] == ["stripe", "chain"]
    assert run["workflow_id"] == f"reconciliation-{run['id']}"
    assert run["match_rate"] is None and run["completed_at"] is None
    start = datetime.fromisoformat(run["period_start"])
    end = datetime.fromisoformat(run["period_end"])
    assert end - start == timedelta(hours=24)
    assert before <= end <= datetime.now(UTC)
    listed = await api.get(RUNS, headers=auth("billing_admin"))
    assert [r["id"] for r in listed.json()["data"]] == [run["id"]]


async def test_a_run_of_a_chosen_period(api: AsyncClient, auth: TokenFactory) -> None:
    body = {"period_start": "2021-06-01T00:00:00+02:00", "period_end": "2021-06-02T00:00:00Z"}

    response = await api.post(RUNS, json=body, headers=auth("platform_admin"))

    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["period_start"], run["period_end"]) == (
        "2021-05-31T22:00:00Z",
        "2021-06-02T00:00:00Z",
    )


async def test_bad_runs_are_refused_and_nothing_is_stored(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"period_start": "2021-06-02T00:00:00Z", "period_end": "2021-06-01T00:00:00Z"},
            "period_start",
        ),
        (
            {"period_start": "2021-01-01T00:00:00Z", "period_end": "2021-03-01T00:00:00Z"},
            "period_end",
        ),
        ({"period_start": later}, "period_start"),
        ({"period_start": "2021-06-01T00:00:00"}, "period_start"),  # no timezone
        ({"period_start": "yesterday"}, "period_start"),
        ({"sources": ["stripe"]}, "sources"),
    ]
    for body, param in cases:
        response = await api.post(RUNS, json=body, headers=admin)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, body
    assert (await api.get(RUNS, headers=admin)).json()["data"] == []


async def test_only_admins_reconcile_and_only_platform_admins_start_runs(
    api: AsyncClient, auth: TokenFactory, db: Sessions
) -> None:
    run_id = await completed_run(db, missing=1, matched=0)
    reads = [
        RUNS,
        f"{RUNS}/{run_id}",
        f"{RUNS}/{run_id}/discrepancies",
        f"{RUNS}/{run_id}/discrepancies.csv",
        f"{URL}/discrepancies",
    ]
    for role in ("customer", "vendor", "driver"):
        for url in reads:
            response = await api.get(url, headers=auth(role))
            assert (response.status_code, error_code(response)) == (403, "forbidden"), url
        assert (await api.post(RUNS, headers=auth(role))).status_code == 403
    billing = auth("billing_admin")
    for url in reads:
        assert (await api.get(url, headers=billing)).status_code == 200, url
    assert (await api.post(RUNS, headers=billing)).status_code == 403
    assert (await api.get(RUNS)).status_code == 401


async def test_a_runs_counts_and_discrepancies(
    api: AsyncClient, auth: TokenFactory, db: Sessions
) -> None:
    run_id = await completed_run(db, missing=3, matched=2)
    admin = auth("billing_admin")

    run = (await api.get(f"{RUNS}/{run_id}", headers=admin)).json()

    assert (run["status"], run["trigger"], run["sources"]) == ("completed", "schedule", ["stripe"])
    assert (run["ledger_count"], run["external_count"], run["matched_count"]) == (5, 3, 2)
    assert (run["discrepancy_count"], run["match_rate"]) == (4, 33.3333)
    assert run["totals"]["USD"]["matched"] == 503 + 504
    assert run["source_results"]["stripe"]["discrepancy_count"] == 4

    first = await api.get(f"{RUNS}/{run_id}/discrepancies", params={"limit": 3}, headers=admin)
    assert first.status_code == 200
    page = first.json()
    assert (len(page["data"]), page["has_more"]) == (3, True)
    rest = await api.get(
        f"{RUNS}/{run_id}/discrepancies",
        params={"limit": 3, "starting_after": page["next_cursor"]},
        headers=admin,
    )
    everything = page["data"] + rest.json()["data"]
    assert sorted(d["type"] for d in everything) == [
        "missing_settlement",
        "missing_settlement",
        "missing_settlement",
        "unexpected_external",
    ]
    missing = await api.get(
        f"{RUNS}/{run_id}/discrepancies",
        params={"type": "missing_settlement", "limit": 100},
        headers=admin,
    )
    found = missing.json()["data"]
    assert len(found) == 3
    assert {(d["source"], d["ledger_kind"], d["currency"], d["status"]) for d in found} == {
        ("stripe", "transfer", "USD", "open")
    }
    assert {d["expected_amount"] for d in found} == {500, 501, 502}
    assert all(d["actual_amount"] is None for d in found)
    stray = await api.get(
        f"{URL}/discrepancies", params={"external_id": "=tr_stray"}, headers=admin
    )
    assert [d["actual_amount"] for d in stray.json()["data"]] == [9]

    bad = await api.get(f"{RUNS}/{run_id}/discrepancies", params={"type": "lost"}, headers=admin)
    assert (bad.status_code, error_code(bad)) == (400, "parameter_invalid")
    cursor = await api.get(
        f"{RUNS}/{run_id}/discrepancies", params={"starting_after": "nope"}, headers=admin
    )
    assert cursor.status_code == 400
    unknown = await api.get(f"{RUNS}/{uuid.uuid4()}", headers=admin)
    assert (unknown.status_code, error_code(unknown)) == (404, "resource_missing")
    assert (await api.get(f"{RUNS}/{uuid.uuid4()}/discrepancies", headers=admin)).status_code == 404


async def test_discrepancies_export_as_csv(
    api: AsyncClient, auth: TokenFactory, db: Sessions
) -> None:
    run_id = await completed_run(db, missing=2, matched=1)

    response = await api.get(f"{RUNS}/{run_id}/discrepancies.csv", headers=auth("billing_admin"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"reconciliation-{run_id}-discrepancies.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(DISCREPANCY_COLUMNS)
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert sorted(r["type"] for r in records) == [
        "missing_settlement",
        "missing_settlement",
        "unexpected_external",
    ]
    assert {r["run_id"] for r in records} == {str(run_id)}
    stray = next(r for r in records if r["type"] == "unexpected_external")
    assert stray["external_id"] == "'=tr_stray"  # never a spreadsheet formula
    assert (stray["actual_amount"], stray["expected_amount"], stray["ledger_id"]) == ("9", "", "")
    only_missing = await api.get(
        f"{RUNS}/{run_id}/discrepancies.csv",
        params={"type": "missing_settlement"},
        headers=auth("billing_admin"),
    )
    assert len(list(csv.reader(io.StringIO(only_missing.text)))) == 3


async def test_a_discrepancy_is_resolved_with_a_note(
    api: AsyncClient, auth: TokenFactory, db: Sessions
) -> None:
    run_id = await completed_run(db, missing=1, matched=0)
    admin = auth("billing_admin", sub="ops-fin")
    [found] = (
        await api.get(
            f"{RUNS}/{run_id}/discrepancies", params={"type": "missing_settlement"}, headers=admin
        )
    ).json()["data"]
    resolve = f"{URL}/discrepancies/{found['id']}/resolve"

    for body in ({}, {"note": "   "}, {"note": 5}, {"note": "x" * 2001}):
        refused = await api.post(resolve, json=body, headers=admin)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["param"] == "note"
    still = await api.get(f"{URL}/discrepancies/{found['id']}", headers=admin)
    assert still.json()["status"] == "open"

    response = await api.post(
        resolve, json={"note": "Stripe support confirmed the transfer"}, headers=admin
    )
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert (resolved["status"], resolved["resolution_note"], resolved["resolved_by"]) == (
        "resolved",
        "Stripe support confirmed the transfer",
        "ops-fin",
    )
    assert resolved["resolved_at"] is not None
    again = await api.post(resolve, json={"note": "twice"}, headers=admin)
    assert (again.status_code, error_code(again)) == (409, "discrepancy_resolved")
    still_open = await api.get(
        f"{URL}/discrepancies", params={"status": "open", "run_id": str(run_id)}, headers=admin
    )
    assert [d["type"] for d in still_open.json()["data"]] == ["unexpected_external"]
    missing = await api.post(
        f"{URL}/discrepancies/{uuid.uuid4()}/resolve", json={"note": "x"}, headers=admin
    )
    assert missing.status_code == 404
    assert (
        await api.post(resolve, json={"note": "x"}, headers=auth("customer"))
    ).status_code == 403


async def test_with_temporal_up_the_runs_workflow_starts(
    live_api: AsyncClient, auth: TokenFactory, local_temporal: WorkflowEnvironment
) -> None:
    response = await live_api.post(RUNS, headers=auth("platform_admin"))
    assert response.status_code == 202, response.text
    run = response.json()

    handle = local_temporal.client.get_workflow_handle(f"reconciliation-{run['id']}")
    described = await handle.describe()
    assert described.workflow_type == "Reconciliation"
    await handle.terminate("test: no worker runs it")


async def test_a_run_whose_workflow_never_started_is_started_by_the_safety_net(
    api: AsyncClient, auth: TokenFactory, db: Sessions, local_temporal: WorkflowEnvironment
) -> None:
    # Temporal is down for ``api``: the run is stored ``running``, its workflow never starts.
    run = (await api.post(RUNS, headers=auth("platform_admin"))).json()
    request = RecoveryInput(task_queue=f"recovery-{uuid.uuid4()}", reconciliation_margin_seconds=60)
    recovery = RecoveryActivities(db, local_temporal.client)

    first = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)
    second = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)

    assert (first.restarted_reconciliations, second.restarted_reconciliations) == (1, 0)
    handle = local_temporal.client.get_workflow_handle(run["workflow_id"])
    described = await handle.describe()
    assert (described.status, described.task_queue) == (
        WorkflowExecutionStatus.RUNNING,
        request.task_queue,
    )
    await handle.terminate("test: no worker runs it")

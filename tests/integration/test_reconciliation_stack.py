"""Reconciliation on the embedded stack, through HTTP: a 1,000-item CSV batch (Stripe items,
and a few on the chain) completes with exactly one Stripe transfer per Stripe item under its
key ``transfer-{id}``, the ledger's float moved by what the sandbox moved; reconciling its
period (``POST /api/v1/reconciliation/runs``, run by ``reconciliation-{id}`` on the stack's
worker against the Stripe sandbox's balance transactions and anvil's token events) matches
100%; once one of its transfers is deleted from the sandbox's records, the next run reports
exactly that one as ``missing_settlement``, which an admin resolves with a note, and the CSV
export lists it. The batch takes about a minute (Stripe calls are rate-limited by
Temporal)."""

import asyncio
import csv
import io
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from devstack.ephemeral import RunningStack
from services.transfers import STRIPE_FLOAT_ACCOUNT
from tests.conftest import TokenFactory
from tests.integration.conftest import Names

pytestmark = pytest.mark.integration

ITEMS = 1000
CHAIN_ROWS = frozenset({0, 500, 999})
BATCH_WITHIN_SECONDS = 240
RUN_WITHIN_SECONDS = 90
RUNS = "/api/v1/reconciliation/runs"


def amount_of(i: int) -> int:
    return 100 + i % 900


async def batch_items(api: AsyncClient, headers: dict[str, str], batch_id: str) -> list[Any]:
    found: list[Any] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
        page = await api.get(
            f"/api/v1/transfers/batch/{batch_id}/items", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["data"]
        if not body["has_more"]:
            return found
        cursor = body["next_cursor"]


async def float_balance(api: AsyncClient, headers: dict[str, str]) -> int:
    """The ledger's Stripe float in USD (0 before anything used it)."""
    found = await api.get(f"/api/v1/ledger/accounts/{STRIPE_FLOAT_ACCOUNT}", headers=headers)
    if found.status_code == 404:
        return 0
    assert found.status_code == 200, found.text
    return int(found.json()["balances"].get("USD", 0))


async def reconcile(
    api: AsyncClient, headers: dict[str, str], start: datetime, end: datetime
) -> dict[str, Any]:
    """A run of ``start``..``end`` started on demand, once its workflow finished it."""
    started = await api.post(
        RUNS,
        json={"period_start": start.isoformat(), "period_end": end.isoformat()},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert started.status_code == 202, started.text
    run: dict[str, Any] = started.json()
    deadline = time.monotonic() + RUN_WITHIN_SECONDS
    while run["status"] == "running":
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.5)
        answer = await api.get(f"{RUNS}/{run['id']}", headers=headers)
        assert answer.status_code == 200, answer.text
        run = answer.json()
    return run


async def test_a_reconciled_batch_matches_until_the_sandbox_loses_a_transfer(
    stack_api: AsyncClient, auth: TokenFactory, n: Names, embedded: RunningStack
) -> None:
    admin = auth("platform_admin", sub="ops-reconciliation")
    partner = n("partner")
    rows = [
        f"{partner}-{i},0x{uuid.uuid4().hex}{i:08x},{amount_of(i)},USD,chain {i}"
        if i in CHAIN_ROWS
        else f"{partner}-{i},acct_{uuid.uuid4().hex[:16]},{amount_of(i)},USD,payout {i}"
        for i in range(ITEMS)
    ]
    csv_file = ("reference,destination,amount,currency,description\n" + "\n".join(rows)).encode()
    base = embedded.settings.stripe_api_base
    assert base is not None
    async with AsyncClient(base_url=base, timeout=30) as sandbox:
        funded = await sandbox.post(
            "/_sandbox/fund",
            json={"amount": sum(amount_of(i) for i in range(ITEMS)), "currency": "usd"},
        )
        assert funded.status_code == 200, funded.text
        stripe_total = sum(amount_of(i) for i in range(ITEMS) if i not in CHAIN_ROWS)
        float_before = await float_balance(stack_api, admin)
        # Stripe's and the chain's times are whole seconds: the period starts before the
        # batch's first second.
        start = datetime.now(UTC)
        await asyncio.sleep(1.05)

        created = await stack_api.post(
            "/api/v1/transfers/batch",
            data={"partner_id": partner},
            files={"file": ("payouts.csv", csv_file, "text/csv")},
            headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert created.status_code == 201, created.text
        batch = created.json()
        began = time.monotonic()
        while batch["status"] == "processing":
            assert time.monotonic() - began < BATCH_WITHIN_SECONDS, batch
            await asyncio.sleep(1)
            batch = (
                await stack_api.get(f"/api/v1/transfers/batch/{batch['id']}", headers=admin)
            ).json()
        assert (batch["status"], batch["succeeded_count"]) == ("completed", ITEMS)
        print(f"{ITEMS} transfers completed in {time.monotonic() - began:.1f} s")
        items = await batch_items(stack_api, admin, batch["id"])
        assert len(items) == ITEMS and {item["status"] for item in items} == {"succeeded"}
        assert sum(item["rail"] == "chain" for item in items) == len(CHAIN_ROWS)
        # One Stripe transfer per Stripe item, none twice, each under the item's own key.
        moved = await sandbox.get("/_sandbox/movements", params={"kind": "transfer"})
        assert moved.status_code == 200, moved.text
        ours = {f"transfer-{item['id']}": item for item in items if item["rail"] == "stripe"}
        mine = [m for m in moved.json()["data"] if m["idempotency_key"] in ours]
        assert Counter(m["idempotency_key"] for m in mine) == Counter(set(ours))
        assert all(ours[m["idempotency_key"]]["external_id"] == m["object_id"] for m in mine)
        assert sum(m["amount"] for m in mine) == stripe_total
        assert await float_balance(stack_api, admin) == float_before - stripe_total
        end = datetime.now(UTC) + timedelta(seconds=2)

        began = time.monotonic()
        first = await reconcile(stack_api, admin, start, end)
        print(f"reconciled {ITEMS} transfers in {time.monotonic() - began:.1f} s")

        # The period holds the batch (and whatever else the shared stack paid meanwhile).
        assert first["status"] == "completed", first
        assert (first["discrepancy_count"], first["match_rate"]) == (0, 100.0), first
        paid = first["ledger_count"]
        assert paid >= ITEMS and first["matched_count"] == first["external_count"] == paid
        stripe, chain = first["source_results"]["stripe"], first["source_results"]["chain"]
        assert stripe["matched_count"] >= ITEMS - len(CHAIN_ROWS)
        assert chain["matched_count"] >= len(CHAIN_ROWS)
        usd = first["totals"]["USD"]
        assert usd["ledger"] == usd["external"] == usd["matched"] >= stripe_total
        # 1.00 USD is 1,000,000 base units of the 6-decimal token, counted as USDC.
        usdc = first["totals"]["USDC"]
        assert usdc["ledger"] == usdc["matched"] >= sum(amount_of(i) * 10_000 for i in CHAIN_ROWS)

        lost = next(item for item in items if item["rail"] == "stripe")
        deleted = await sandbox.delete(f"/_sandbox/objects/{lost['external_id']}")
        assert deleted.status_code == 200, deleted.text

        second = await reconcile(stack_api, admin, start, end)

    assert second["status"] == "completed", second
    assert (second["ledger_count"], second["matched_count"]) == (paid, paid - 1), second
    assert second["external_count"] == paid - 1
    # 999 of 1,000 items matched: 99.9%.
    assert second["discrepancy_count"] == 1, second
    assert second["match_rate"] == (1_000_000 * (paid - 1) // paid) / 10_000
    listed = await stack_api.get(f"{RUNS}/{second['id']}/discrepancies", headers=admin)
    assert listed.status_code == 200, listed.text
    [missing] = listed.json()["data"]
    assert (missing["type"], missing["source"], missing["status"]) == (
        "missing_settlement",
        "stripe",
        "open",
    )
    assert (missing["external_id"], missing["ledger_kind"], missing["ledger_id"]) == (
        lost["external_id"],
        "transfer",
        lost["id"],
    )
    assert (missing["expected_amount"], missing["actual_amount"]) == (lost["amount"], None)

    resolved = await stack_api.post(
        f"/api/v1/reconciliation/discrepancies/{missing['id']}/resolve",
        json={"note": "deleted on purpose by the reconciliation test"},
        headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == (
        "resolved",
        "ops-reconciliation",
    )

    exported = await stack_api.get(f"{RUNS}/{second['id']}/discrepancies.csv", headers=admin)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    [header, row] = list(csv.reader(io.StringIO(exported.text)))
    record = dict(zip(header, row, strict=True))
    assert (record["type"], record["external_id"], record["status"]) == (
        "missing_settlement",
        lost["external_id"],
        "resolved",
    )
    assert record["resolution_note"] == "deleted on purpose by the reconciliation test"

"""Vendor settlements over HTTP, in process: admins compute (once per period), list the due
ones and process them into a transfer request; a vendor reads its own settlements and
summary, and nobody else's. Payments are made through the services (no workflow runs)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.payments import Allocation
from tests.api.conftest import error_code
from tests.conftest import TokenFactory
from tests.services.test_vendor_settlements_service import add_method, paid, refund

URL = "/api/v1/vendor-settlements"
JANUARY = {
    "vendor_id": "vendor-a",
    "currency": "USD",
    "period_start": "2025-01-01T00:00:00Z",
    "period_end": "2025-02-01T00:00:00Z",
}


async def test_compute_due_process_and_the_summary(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    method = await add_method(db)
    payment = await paid(
        db, method, 10_000, [Allocation("vendor-a", 6_000, 1_000), Allocation("vendor-b", 3_000, 0)]
    )
    await refund(db, payment, 2_000)
    admin = auth("billing_admin", sub="ops-1")

    created = await api.post(URL, json=JANUARY, headers=admin)
    assert created.status_code == 201, created.text
    settlement = created.json()
    assert settlement["object"] == "vendor_settlement"
    assert (settlement["status"], settlement["hold_until"]) == (
        "pending_hold",
        "2025-02-08T00:00:00Z",
    )
    figures = ("gross_captured", "commission", "refunded", "net_amount", "payment_count")
    assert [settlement[key] for key in figures] == [6_000, 600, 1_080, 4_320, 1]
    assert settlement["transfer"] is None
    again = await api.post(URL, json=JANUARY, headers=admin)
    assert (again.status_code, again.json()["id"]) == (200, settlement["id"])

    # The hold of January ended long ago: the due list makes it due.
    due = await api.get(f"{URL}/due", headers=admin)
    assert [(item["id"], item["status"]) for item in due.json()["data"]] == [
        (settlement["id"], "due")
    ]
    processed = await api.post(f"{URL}/{settlement['id']}/process", headers=admin)
    assert processed.status_code == 200, processed.text
    assert processed.json()["status"] == "processing"
    transfer = processed.json()["transfer"]
    assert (transfer["destination"], transfer["amount"], transfer["currency"]) == (
        "vendor-a",
        4_320,
        "USD",
    )
    assert (transfer["status"], transfer["rail"]) == ("requested", None)
    assert transfer["idempotency_key"] == f"vendor-settlement-{settlement['id']}"

    # A period that ended yesterday is still on hold.
    now = datetime.now(UTC).replace(microsecond=0)
    recent = {
        **JANUARY,
        "period_start": (now - timedelta(days=2)).isoformat(),
        "period_end": (now - timedelta(days=1)).isoformat(),
    }
    held = (await api.post(URL, json=recent, headers=admin)).json()
    early = await api.post(f"{URL}/{held['id']}/process", headers=admin)
    assert (early.status_code, error_code(early)) == (409, "settlement_not_due")

    summary = await api.get(f"{URL}/vendors/vendor-a/summary", headers=auth("vendor", "vendor-a"))
    assert summary.status_code == 200, summary.text
    assert summary.json()["currencies"] == [
        {
            "currency": "USD",
            "gross_captured": 6_000,
            "commission": 600,
            "refunded": 1_080,
            "net": 4_320,
            "settled": 4_320,
            "in_settlement": 0,
            "pending": 0,
            "payment_count": 1,
        }
    ]


async def test_bad_computes_are_refused(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    now = datetime.now(UTC)
    running = {
        "period_start": (now - timedelta(days=1)).isoformat(),
        "period_end": (now + timedelta(days=1)).isoformat(),
    }
    cases: list[tuple[dict[str, Any], int, str]] = [
        (running, 400, "period_not_ended"),
        ({"period_end": "2025-02-01T00:00:00"}, 400, "parameter_invalid"),
        ({"period_end": "2024-12-01T00:00:00Z"}, 400, "validation_failed"),
        ({"currency": "XYZ"}, 400, "invalid_currency"),
        ({"vendor_id": ""}, 400, "parameter_invalid"),
        ({"hold_days": 0}, 400, "parameter_invalid"),
    ]
    for changes, status, code in cases:
        response = await api.post(URL, json={**JANUARY, **changes}, headers=admin)
        assert (response.status_code, error_code(response)) == (status, code), changes
    listed = await api.get(URL, headers=admin)
    assert listed.json()["data"] == []
    overlap = {
        **JANUARY,
        "period_start": "2025-01-15T00:00:00Z",
        "period_end": "2025-02-15T00:00:00Z",
    }
    assert (await api.post(URL, json=JANUARY, headers=admin)).status_code == 201
    clash = await api.post(URL, json=overlap, headers=admin)
    assert (clash.status_code, error_code(clash)) == (409, "settlement_period_overlaps")


async def test_vendors_see_only_their_own(api: AsyncClient, auth: TokenFactory) -> None:
    admin = auth("platform_admin")
    own = (await api.post(URL, json=JANUARY, headers=admin)).json()
    theirs = (await api.post(URL, json={**JANUARY, "vendor_id": "vendor-b"}, headers=admin)).json()
    vendor_a = auth("vendor", sub="vendor-a")

    listed = await api.get(URL, headers=vendor_a)
    assert [item["id"] for item in listed.json()["data"]] == [own["id"]]
    assert (await api.get(f"{URL}/{own['id']}", headers=vendor_a)).status_code == 200
    hidden = await api.get(f"{URL}/{theirs['id']}", headers=vendor_a)
    assert (hidden.status_code, error_code(hidden)) == (404, "resource_missing")
    for method, path in [
        ("GET", f"{URL}?vendor_id=vendor-b"),
        ("GET", f"{URL}/vendors/vendor-b/summary"),
        ("GET", f"{URL}/due"),
        ("POST", URL),
        ("POST", f"{URL}/{own['id']}/process"),
    ]:
        response = await api.request(method, path, json=JANUARY, headers=vendor_a)
        assert (response.status_code, error_code(response)) == (403, "forbidden"), path
    customer = await api.get(f"{URL}/vendors/vendor-a/summary", headers=auth("customer"))
    assert customer.status_code == 403
    admin_view = await api.get(f"{URL}/vendors/vendor-a/summary", headers=admin)
    assert admin_view.json() == {
        "object": "vendor_settlement_summary",
        "vendor_id": "vendor-a",
        "currencies": [  # an empty settlement: nothing captured, nothing settled
            {
                "currency": "USD",
                "gross_captured": 0,
                "commission": 0,
                "refunded": 0,
                "net": 0,
                "settled": 0,
                "in_settlement": 0,
                "pending": 0,
                "payment_count": 0,
            }
        ],
    }

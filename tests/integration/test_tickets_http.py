"""Tickets through HTTP against the embedded stack that `make run` starts (one per session);
ids carry a per-test suffix so tests sharing the stack stay independent."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from temporalio.client import Client

from tests.conftest import TokenFactory
from tests.integration.conftest import Names


def ticket_request(
    n: Names, booking: str | None = None, user: str | None = None, driver: str | None = None
) -> dict[str, Any]:
    """A ticket request; ids default to this test's bk-1, rider_a and drv_1."""
    now = datetime.now(UTC)
    return {
        "booking_id": booking or n("bk-1"),
        "user_id": user or n("rider_a"),
        "driver_id": driver or n("drv_1"),
        "trip": {"pickup": "Main St 1", "dropoff": "Airport T2"},
        "valid_from": (now - timedelta(minutes=5)).isoformat(),
        "valid_until": (now + timedelta(hours=2)).isoformat(),
    }


async def issue(api: AsyncClient, auth: TokenFactory, n: Names, **ids: str) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/tickets",
        json=ticket_request(n, **ids),
        headers=auth("platform_admin", sub="booking-svc"),
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def verify(
    api: AsyncClient, auth: TokenFactory, n: Names, payload: str, driver: str | None = None
) -> dict[str, Any]:
    driver = driver or n("drv_1")
    response = await api.post(
        "/api/v1/tickets/verify",
        json={"payload": payload, "driver_id": driver, "location": {"lat": 52.52, "lng": 13.4}},
        headers=auth("driver", sub=driver),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_issue_qr_verify_then_second_verify_refused(
    n: Names, stack_api: AsyncClient, auth: TokenFactory, stack_temporal: Client
) -> None:
    ticket = await issue(stack_api, auth, n)
    assert ticket["status"] == "ACTIVE"
    png = await stack_api.get(ticket["links"]["qr_png"], headers=auth("customer", sub=n("rider_a")))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    cached = await stack_api.get(
        ticket["links"]["qr_png"],
        headers={**auth("customer", sub=n("rider_a")), "If-None-Match": png.headers["etag"]},
    )
    assert cached.status_code == 304

    first = await verify(stack_api, auth, n, ticket["qr_payload"])
    assert (first["valid"], first["reason"], first["booking_id"], first["user_id"]) == (
        True,
        "valid",
        n("bk-1"),
        n("rider_a"),
    )
    second = await verify(stack_api, auth, n, ticket["qr_payload"])
    assert (second["valid"], second["reason"]) == (False, "already_used")

    handle = stack_temporal.get_workflow_handle(f"ticket-{ticket['id']}")
    result = await asyncio.wait_for(handle.result(), 30)
    assert result["status"] == "USED"


async def test_fifty_concurrent_verifications_accept_exactly_one(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket = await issue(stack_api, auth, n, booking=n("bk-burst"))
    answers = await asyncio.gather(
        *(verify(stack_api, auth, n, ticket["qr_payload"]) for _ in range(50))
    )
    assert sum(answer["valid"] for answer in answers) == 1
    assert {answer["reason"] for answer in answers if not answer["valid"]} == {"already_used"}
    log = await stack_api.get(
        f"/api/v1/tickets/{ticket['id']}/verifications", headers=auth("platform_admin")
    )
    assert len(log.json()) == 50
    assert sum(entry["accepted"] for entry in log.json()) == 1


async def test_wrong_driver_is_refused_and_logged(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket = await issue(stack_api, auth, n, booking=n("bk-wrong"))
    answer = await verify(stack_api, auth, n, ticket["qr_payload"], driver=n("drv_2"))
    assert (answer["valid"], answer["reason"]) == (False, "wrong_driver")
    log = (
        await stack_api.get(
            f"/api/v1/tickets/{ticket['id']}/verifications", headers=auth("platform_admin")
        )
    ).json()
    assert [(e["driver_id"], e["accepted"], e["reason"]) for e in log] == [
        (n("drv_2"), False, "wrong_driver")
    ]
    still = await stack_api.get(f"/api/v1/tickets/{ticket['id']}", headers=auth("platform_admin"))
    assert still.json()["status"] == "ACTIVE"


async def test_a_driver_cannot_verify_as_another_driver(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket = await issue(stack_api, auth, n, booking=n("bk-impersonate"))
    response = await stack_api.post(
        "/api/v1/tickets/verify",
        json={"payload": ticket["qr_payload"], "driver_id": n("drv_1")},
        headers=auth("driver", sub=n("drv_2")),
    )
    assert response.status_code == 403


async def test_passenger_a_cannot_read_passenger_bs_ticket(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket_b = await issue(stack_api, auth, n, booking=n("bk-b"), user=n("rider_b"))
    await issue(stack_api, auth, n, booking=n("bk-a"), user=n("rider_a"))
    as_a = auth("customer", sub=n("rider_a"))
    assert (
        await stack_api.get(f"/api/v1/tickets/{ticket_b['id']}", headers=as_a)
    ).status_code == 404
    assert (await stack_api.get(ticket_b["links"]["qr_png"], headers=as_a)).status_code == 404
    listed = (await stack_api.get("/api/v1/tickets", headers=as_a)).json()["data"]
    assert [t["booking_id"] for t in listed] == [n("bk-a")]
    as_b = auth("customer", sub=n("rider_b"))
    assert (
        await stack_api.get(f"/api/v1/tickets/{ticket_b['id']}", headers=as_b)
    ).status_code == 200
    driver_view = (
        await stack_api.get("/api/v1/tickets", headers=auth("driver", sub=n("drv_1")))
    ).json()
    assert {t["booking_id"] for t in driver_view["data"]} == {n("bk-a"), n("bk-b")}
    other_driver = (
        await stack_api.get("/api/v1/tickets", headers=auth("driver", sub=n("drv_9")))
    ).json()
    assert other_driver["data"] == []


async def test_duplicate_issue_for_a_booking_returns_the_same_ticket(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    headers = auth("platform_admin", sub="booking-svc")
    body = ticket_request(n, booking=n("bk-dup"))
    responses = await asyncio.gather(
        *(stack_api.post("/api/v1/tickets", json=body, headers=headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = (
        await stack_api.get("/api/v1/tickets", params={"booking_id": n("bk-dup")}, headers=headers)
    ).json()
    assert len(listed["data"]) == 1


async def test_cancel_then_revocation_then_used_ticket_cannot_be_cancelled(
    n: Names, stack_api: AsyncClient, auth: TokenFactory, stack_temporal: Client
) -> None:
    rider = auth("customer", sub=n("rider_a"))
    ticket = await issue(stack_api, auth, n, booking=n("bk-cancel"))
    cancelled_after = datetime.now(UTC) - timedelta(seconds=5)
    cancelled = await stack_api.delete(
        f"/api/v1/tickets/{ticket['id']}", params={"reason": "plans changed"}, headers=rider
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    handle = stack_temporal.get_workflow_handle(f"ticket-{ticket['id']}")
    assert (await asyncio.wait_for(handle.result(), 30))["status"] == "CANCELLED"
    revoked = (
        await stack_api.get(
            "/api/v1/tickets/revocations",
            params={"since": cancelled_after.isoformat(), "limit": 100},
            headers=auth("driver", sub=n("drv_1")),
        )
    ).json()
    # The session's stack is shared: other tests' cancelled tickets are revoked too.
    assert ticket["id"] in [r["ticket_id"] for r in revoked["data"]]
    assert (await verify(stack_api, auth, n, ticket["qr_payload"]))["reason"] == "cancelled"

    used = await issue(stack_api, auth, n, booking=n("bk-used"))
    await verify(stack_api, auth, n, used["qr_payload"])
    again = await stack_api.delete(f"/api/v1/tickets/{used['id']}", headers=rider)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "ticket_not_active"


async def test_admin_cancel_signal_from_the_ui_cancels(
    n: Names, stack_api: AsyncClient, auth: TokenFactory, stack_temporal: Client
) -> None:
    ticket = await issue(stack_api, auth, n, booking=n("bk-ui"))
    handle = stack_temporal.get_workflow_handle(f"ticket-{ticket['id']}")
    for _ in range(50):  # the workflow is started right after the issuing commit
        if (await handle.describe()).status is not None:
            break
        await asyncio.sleep(0.1)
    await handle.signal("cancel", {"reason": "fraud suspected", "by": "ops_1"})
    assert (await asyncio.wait_for(handle.result(), 30))["status"] == "CANCELLED"
    row = (
        await stack_api.get(f"/api/v1/tickets/{ticket['id']}", headers=auth("platform_admin"))
    ).json()
    assert (row["status"], row["cancel_reason"]) == ("CANCELLED", "fraud suspected")


async def test_offline_scans_upload_once_and_flag_double_scans(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    ticket = await issue(stack_api, auth, n, booking=n("bk-offline"))
    driver = auth("driver", sub=n("drv_1"))
    scanned = datetime.now(UTC)
    scans = [
        {
            "nonce": f"scan-{uuid.uuid4()}",
            "payload": ticket["qr_payload"],
            "driver_id": n("drv_1"),
            "scanned_at": (scanned + timedelta(seconds=i)).isoformat(),
        }
        for i in range(2)
    ]
    first = (
        await stack_api.post("/api/v1/tickets/scans", json={"scans": scans}, headers=driver)
    ).json()
    assert [(s["accepted"], s["flagged"]) for s in first["data"]] == [(True, False), (False, True)]
    again = (
        await stack_api.post("/api/v1/tickets/scans", json={"scans": scans}, headers=driver)
    ).json()
    assert again["data"] == first["data"]
    log = (
        await stack_api.get(
            f"/api/v1/tickets/{ticket['id']}/verifications", headers=auth("platform_admin")
        )
    ).json()
    assert len(log) == 2


async def test_keys_are_published_and_bad_input_is_400(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    keys = (await stack_api.get("/api/v1/tickets/keys")).json()["keys"]
    assert [(k["key_id"], k["status"]) for k in keys] == [("dev-1", "active")]
    admin = auth("platform_admin")
    bad = ticket_request(n)
    bad["valid_until"] = bad["valid_from"]
    response = await stack_api.post("/api/v1/tickets", json=bad, headers=admin)
    assert response.status_code == 400
    naive = {**ticket_request(n), "valid_from": "2026-01-01T00:00:00"}
    assert (await stack_api.post("/api/v1/tickets", json=naive, headers=admin)).status_code == 400
    garbage = await verify(stack_api, auth, n, "not a ticket")
    assert (garbage["valid"], garbage["reason"]) == (False, "malformed")


async def test_an_expired_ticket_is_refused_with_whose_it_is(
    n: Names, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    now = datetime.now(UTC)
    body = {
        **ticket_request(n, booking=n("bk-late")),
        "valid_from": (now - timedelta(hours=3)).isoformat(),
        "valid_until": (now - timedelta(hours=1)).isoformat(),
    }
    issued = await stack_api.post("/api/v1/tickets", json=body, headers=auth("platform_admin"))
    answer = await verify(stack_api, auth, n, issued.json()["qr_payload"])
    assert (answer["valid"], answer["reason"], answer["booking_id"], answer["user_id"]) == (
        False,
        "expired",
        n("bk-late"),
        n("rider_a"),
    )

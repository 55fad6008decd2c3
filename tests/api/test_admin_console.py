"""The admin console (/admin) in process: signing in (and the tokens it refuses), CSRF, the
pages and their filters, and every action's refusal shown with the API's own message. Temporal
is down unless a test uses ``live_api``; actions that reach it send the API's signals."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from domain.actors import SYSTEM
from services import escrow, payouts
from settings import Settings
from tests.api.conftest import signals_of
from tests.conftest import TokenFactory, token_headers

LATER = datetime.now(UTC) + timedelta(days=30)
HTMX = {"HX-Request": "true"}


def token_of(settings: Settings, role: str, sub: str = "ops_1", ttl: float = 3600) -> str:
    return token_headers(settings, role, sub=sub, ttl=ttl)["Authorization"].removeprefix("Bearer ")


def login_csrf(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


def session_csrf(page: Response) -> str:
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(api: AsyncClient, token: str, next_url: str = "") -> Response:
    form = await api.get("/admin/login")
    assert form.status_code == 200
    return await api.post(
        "/admin/login",
        data={"csrf_token": login_csrf(form), "token": token, "next": next_url},
    )


async def signed_in(api: AsyncClient, settings: Settings, role: str = "platform_admin") -> str:
    """Sign in as ``role``; the session's CSRF token."""
    done = await sign_in(api, token_of(settings, role))
    assert done.status_code == 303, done.text
    page = await api.get("/admin")
    assert page.status_code == 200, page.text
    return session_csrf(page)


async def new_schedule(api: AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    body = {
        "payee_id": "recruiter-1",
        "destination": "acct_123ABC",
        "amount": 25_000,
        "currency": "EUR",
        "trigger_event": "guarantee_period_end",
        "scheduled_for": LATER.isoformat(),
        **changes,
    }
    created = await api.post("/api/v1/payout-schedules", json=body, headers=auth("platform_admin"))
    assert created.status_code == 201, created.text
    schedule: dict[str, Any] = created.json()
    return schedule


async def new_hold(api: AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    body = {
        "payer_id": "client-1",
        "payee_id": "recruiter-1",
        "amount": 50_000,
        "currency": "EUR",
        "reason": "guarantee_period",
        "release_at": LATER.isoformat(),
        **changes,
    }
    created = await api.post("/api/v1/escrow-holds", json=body, headers=auth("platform_admin"))
    assert created.status_code == 201, created.text
    hold: dict[str, Any] = created.json()
    return hold


def flashed(response: Response) -> str:
    """The flash message of an htmx answer retargeted at the flash area."""
    assert response.headers.get("HX-Retarget") == "#flash", response.text
    found = re.search(r'<div id="flash"[^>]*>\s*<p>(.*?)</p>', response.text, re.S)
    assert found, response.text
    return found.group(1)


# Signing in and out -------------------------------------------------------------------------


async def test_signed_out_pages_go_to_the_login_page(api: AsyncClient) -> None:
    for path in ("/admin", "/admin/payouts?status=failed", "/admin/escrow", "/admin/audit"):
        response = await api.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    back = await api.get("/admin/payouts?status=failed")
    assert back.headers["location"] == "/admin/login?next=%2Fadmin%2Fpayouts%3Fstatus%3Dfailed"
    # htmx follows HX-Redirect rather than swapping a login page into a table.
    polled = await api.get(f"/admin/payouts/{uuid.uuid4()}/row", headers=HTMX)
    assert polled.status_code == 200 and polled.headers["HX-Redirect"].startswith("/admin/login")
    assert (await api.post(f"/admin/payouts/{uuid.uuid4()}/trigger")).status_code == 303


async def test_login_refuses_bad_expired_and_non_admin_tokens(
    api: AsyncClient, settings: Settings
) -> None:
    other = Settings(
        jwt_secret="another-secret-0123456789-0123456789-0123456789",
        database_url=settings.database_url,
        _env_file=None,
    )
    cases = [
        ("not-a-jwt", 401, "That token was refused: Invalid token"),
        (token_of(other, "platform_admin"), 401, "That token was refused: Invalid token"),
        (token_of(settings, "platform_admin", ttl=-60), 401, "Token has expired"),
        (token_of(settings, "customer"), 403, "A customer token cannot sign in"),
        (token_of(settings, "vendor"), 403, "A vendor token cannot sign in"),
        ("", 400, "Paste an admin token"),
    ]
    for token, status, message in cases:
        response = await sign_in(api, token)
        assert response.status_code == status, (token, response.text)
        assert message in response.text
        assert "tollgate_admin=" not in response.headers.get("set-cookie", "")
        assert (await api.get("/admin")).status_code == 303


async def test_login_needs_the_forms_own_token(api: AsyncClient, settings: Settings) -> None:
    await api.get("/admin/login")
    token = token_of(settings, "platform_admin")
    forged = await api.post("/admin/login", data={"csrf_token": "0" * 64, "token": token})
    assert forged.status_code == 403 and "The sign-in form had expired" in forged.text
    api.cookies.clear()
    missing = await api.post("/admin/login", data={"token": token})
    assert missing.status_code == 403
    assert (await api.get("/admin")).status_code == 303


async def test_sign_in_sets_a_strict_http_only_cookie_then_sign_out_clears_it(
    api: AsyncClient, settings: Settings
) -> None:
    done = await sign_in(api, "Bearer " + token_of(settings, "billing_admin"), "/admin/audit")
    assert done.status_code == 303 and done.headers["location"] == "/admin/audit"
    cookie = done.headers["set-cookie"].lower()
    assert "tollgate_admin=" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    page = await api.get("/admin")
    assert page.status_code == 200 and "ops_1" in page.text and "billing_admin" in page.text
    csrf = session_csrf(page)

    refused = await api.post("/admin/logout")
    assert refused.status_code == 403 and "security token" in refused.text
    out = await api.post("/admin/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/admin/login?reason=signed_out"
    assert "You are signed out." in (await api.get(out.headers["location"])).text
    assert (await api.get("/admin")).status_code == 303


async def test_an_expired_or_foreign_session_goes_back_to_the_login_page(
    api: AsyncClient, settings: Settings
) -> None:
    api.cookies.set("tollgate_admin", token_of(settings, "platform_admin", ttl=-5), path="/admin")
    expired = await api.get("/admin/escrow")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/admin/login?next=%2Fadmin%2Fescrow&reason=expired"
    assert "Your session has expired" in (await api.get(expired.headers["location"])).text
    api.cookies.set("tollgate_admin", token_of(settings, "driver"), path="/admin")
    assert "reason=role" in (await api.get("/admin")).headers["location"]


async def test_next_never_leaves_the_console(api: AsyncClient, settings: Settings) -> None:
    for target in ("https://evil.example/admin", "//evil.example/admin", "/api/v1/ledger"):
        done = await sign_in(api, token_of(settings, "platform_admin"), target)
        assert done.headers["location"] == "/admin", target


# CSRF ---------------------------------------------------------------------------------------


async def test_actions_need_the_sessions_csrf_token(
    api: AsyncClient, settings: Settings, auth: TokenFactory
) -> None:
    schedule = await new_schedule(api, auth)
    hold = await new_hold(api, auth)
    csrf = await signed_in(api, settings)
    actions = [
        f"/admin/payouts/{schedule['id']}/trigger",
        f"/admin/payouts/{schedule['id']}/cancel",
        "/admin/payouts/bulk-trigger",
        f"/admin/escrow/{hold['id']}/release",
        f"/admin/escrow/{hold['id']}/extend",
        f"/admin/escrow/{hold['id']}/cancel",
        "/admin/escrow/bulk-release",
    ]
    another_session = await api.get("/admin")  # same session: same token
    assert session_csrf(another_session) == csrf
    for url in actions:
        for headers in ({}, {"X-CSRF-Token": "f" * 64}):
            refused = await api.post(url, headers={**HTMX, **headers})
            assert refused.status_code == 403, url
            assert "security token is missing or does not match" in flashed(refused)
    # Nothing was sent: the rows are as they were.
    admin = auth("platform_admin")
    one = await api.get(f"/api/v1/payout-schedules/{schedule['id']}", headers=admin)
    assert one.json()["status"] == "pending"
    # A token of another session is refused too.
    other = token_of(settings, "platform_admin", sub="ops_2")
    api.cookies.set("tollgate_admin", other, path="/admin")
    stale = await api.post(
        f"/admin/payouts/{schedule['id']}/trigger", headers={**HTMX, "X-CSRF-Token": csrf}
    )
    assert stale.status_code == 403


# Pages --------------------------------------------------------------------------------------


async def test_pages_render_and_link_each_workflow_to_the_temporal_ui(
    api: AsyncClient, settings: Settings, auth: TokenFactory
) -> None:
    schedule = await new_schedule(api, auth)
    hold = await new_hold(api, auth)
    await signed_in(api, settings)
    ui = settings.temporal_ui_url
    payouts_page = await api.get("/admin/payouts")
    assert payouts_page.status_code == 200
    assert f'{ui}/namespaces/default/workflows/payout-schedule-{schedule["id"]}"' in (
        payouts_page.text
    )
    escrow_page = await api.get("/admin/escrow")
    assert f'{ui}/namespaces/default/workflows/escrow-hold-{hold["id"]}"' in escrow_page.text
    audit_page = await api.get("/admin/audit")
    assert "payout_schedule.created" in audit_page.text
    assert "escrow_hold.created" in audit_page.text
    assert f"workflows/escrow-hold-{hold['id']}" in audit_page.text
    overview = await api.get("/admin")
    for text in ("Payouts per day", "Held in escrow", "Dunning outcomes", "Anchoring backlog"):
        assert text in overview.text
    assert "500.00 EUR" in overview.text  # the hold's 50,000 cents
    assert 'hx-get="/admin/health"' in overview.text
    health = await api.get("/admin/health", headers=HTMX)
    assert health.status_code == 200 and "database" in health.text and "down" in health.text
    for asset in ("/admin/static/console.css", "/admin/static/console.js"):
        assert (await api.get(asset)).status_code == 200
    htmx = await api.get("/admin/static/vendor/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text


async def test_payout_filters_search_and_empty_state(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    pending = await new_schedule(api, auth, payee_id="payee-a")
    failed = await new_schedule(api, auth, payee_id="payee-b", trigger_event="manual")
    async with db() as session, session.begin():
        key = uuid.UUID(failed["id"])
        await payouts.start_run(session, key, event="manual", actor=SYSTEM)
        await payouts.fail(
            session, key, error="No such destination: 'acct_x'", actor=SYSTEM, final=True
        )
    await signed_in(api, settings)

    partial = {**HTMX, "HX-Target": "results"}
    only_failed = await api.get("/admin/payouts", params={"status": "failed"}, headers=partial)
    assert only_failed.text.lstrip().startswith('<div id="results"')  # just the results
    assert failed["id"] in only_failed.text and pending["id"] not in only_failed.text
    assert "No such destination: &#39;acct_x&#39;" in only_failed.text  # the error tooltip
    assert 'role="tooltip"' in only_failed.text

    by_payee = await api.get("/admin/payouts", params={"payee_id": "payee-a"}, headers=partial)
    assert pending["id"] in by_payee.text and failed["id"] not in by_payee.text
    by_workflow_id = await api.get(
        "/admin/payouts", params={"id": f"payout-schedule-{pending['id']}"}, headers=partial
    )
    assert pending["id"] in by_workflow_id.text and failed["id"] not in by_workflow_id.text
    none = await api.get("/admin/payouts", params={"status": "completed"}, headers=partial)
    assert "No payout schedules match these filters." in none.text
    bad = await api.get("/admin/payouts", params={"id": "nope"}, headers=partial)
    assert bad.status_code == 400 and "&#39;nope&#39; is not a payout schedule id" in bad.text
    bad_status = await api.get("/admin/payouts", params={"status": "paid"})
    assert bad_status.status_code == 400 and "is not a payout status" in bad_status.text


async def test_escrow_page_warns_of_holds_due_now(
    api: AsyncClient, settings: Settings, auth: TokenFactory
) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    due = await new_hold(api, auth, release_at=past)
    later = await new_hold(api, auth)
    await signed_in(api, settings)
    page = await api.get("/admin/escrow")
    assert "1 hold is past the release date" in page.text
    assert "due now</span>" in page.text
    only_due = await api.get("/admin/escrow", params={"due": "1"})
    assert due["id"] in only_due.text and later["id"] not in only_due.text


async def test_audit_filters_and_entries_show_before_and_after(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    hold = await new_hold(api, auth)
    other = await new_hold(api, auth)
    async with db() as session, session.begin():
        await escrow.dispute(session, uuid.UUID(hold["id"]), reason="late start", actor=SYSTEM)
    await signed_in(api, settings)
    page = await api.get("/admin/audit", params={"entity_id": hold["id"]})
    assert page.status_code == 200
    assert "escrow_hold.disputed" in page.text and "escrow_hold.created" in page.text
    assert other["id"] not in page.text
    entry = page.text.split('data-action="escrow_hold.disputed"')[1].split("</details>")[0]
    assert '<tr class="changed"><th>dispute_reason</th><td><code>null</code></td>' in entry
    assert "<td><code>late start</code></td>" in entry
    by_actor = await api.get("/admin/audit", params={"actor": "nobody"})
    assert "No audit entries match these filters." in by_actor.text
    bad = await api.get("/admin/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "is not a date" in bad.text
    today = datetime.now(UTC).date().isoformat()
    dated = await api.get("/admin/audit", params={"since": today, "until": today})
    assert "escrow_hold.disputed" in dated.text


# Actions: refused ones say why ------------------------------------------------------------


async def test_each_payout_action_shows_why_it_was_refused(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    pending = await new_schedule(api, auth)
    done = await new_schedule(api, auth)
    async with db() as session, session.begin():
        key = uuid.UUID(done["id"])
        await payouts.start_run(session, key, event="manual", actor=SYSTEM)
        await payouts.complete(session, key, transfer_id="tr_1", actor=SYSTEM)
    csrf = await signed_in(api, settings)
    headers = {**HTMX, "X-CSRF-Token": csrf}

    async def post(url: str, data: dict[str, Any] | None = None) -> Response:
        return await api.post(url, data=data, headers=headers)

    down = await post(f"/admin/payouts/{pending['id']}/trigger")
    assert down.status_code == 503
    assert "Temporal at" in flashed(down) and "is unreachable" in flashed(down)
    completed = await post(f"/admin/payouts/{done['id']}/trigger")
    assert completed.status_code == 409
    assert flashed(completed) == "a completed payout schedule cannot become processing"
    cancel_done = await post(f"/admin/payouts/{done['id']}/cancel")
    assert cancel_done.status_code == 409
    missing = await post(f"/admin/payouts/{uuid.uuid4()}/trigger")
    assert missing.status_code == 404 and "no payout schedule" in flashed(missing)
    malformed = await post("/admin/payouts/xyz/trigger")
    assert malformed.status_code == 400 and "schedule_id" in flashed(malformed)
    nothing = await post("/admin/payouts/bulk-trigger")
    assert nothing.status_code == 400
    assert flashed(nothing) == "Select at least one payout schedule to trigger."
    bulk = await post("/admin/payouts/bulk-trigger", {"ids": [done["id"], pending["id"]]})
    assert bulk.status_code == 200
    assert flashed(bulk) == "Trigger sent for 0 of 2 payout schedules; 2 refused."
    assert f"{done['id']}: a completed payout schedule cannot become processing" in bulk.text
    assert f"{pending['id']}: Temporal at" in bulk.text

    billing = await signed_in(api, settings, "billing_admin")
    refused = await api.post(
        f"/admin/payouts/{pending['id']}/cancel", headers={**HTMX, "X-CSRF-Token": billing}
    )
    assert refused.status_code == 403
    assert "Role &#39;billing_admin&#39; may not do this" in flashed(refused)
    # Without htmx (a plain form post), the refusal is a page saying why.
    plain = await api.post(f"/admin/payouts/{done['id']}/trigger", data={"csrf_token": billing})
    assert plain.status_code == 409 and "cannot become processing" in plain.text


async def test_each_escrow_action_shows_why_it_was_refused(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    hold = await new_hold(api, auth)
    released = await new_hold(api, auth)
    disputed = await new_hold(api, auth)
    async with db() as session, session.begin():
        await escrow.release(session, uuid.UUID(released["id"]), key="k", actor=SYSTEM)
        await escrow.dispute(session, uuid.UUID(disputed["id"]), reason="late", actor=SYSTEM)
    csrf = await signed_in(api, settings)
    headers = {**HTMX, "X-CSRF-Token": csrf}

    async def post(url: str, data: dict[str, Any] | None = None) -> Response:
        return await api.post(url, data=data, headers=headers)

    down = await post(f"/admin/escrow/{hold['id']}/release")
    assert down.status_code == 503 and "is unreachable" in flashed(down)
    is_disputed = await post(f"/admin/escrow/{disputed['id']}/release")
    assert is_disputed.status_code == 409
    assert flashed(is_disputed) == "the hold is disputed (late): resolve it first"
    gone = await post(f"/admin/escrow/{released['id']}/cancel")
    assert gone.status_code == 409
    assert flashed(gone) == "the hold is released: nothing is held any more"
    earlier = await post(f"/admin/escrow/{hold['id']}/extend", {"release_at": "2020-01-01T00:00"})
    assert earlier.status_code == 400 and "extend moves the release later than" in flashed(earlier)
    garbled = await post(f"/admin/escrow/{hold['id']}/extend", {"release_at": "soon"})
    assert (
        garbled.status_code == 400 and flashed(garbled) == "&#39;soon&#39; is not a date and time"
    )
    blank = await post(f"/admin/escrow/{hold['id']}/extend", {"release_at": ""})
    assert blank.status_code == 400 and flashed(blank) == "Pick the new release date."
    later = await post(f"/admin/escrow/{hold['id']}/extend", {"release_at": "2099-01-01T09:30"})
    assert later.status_code == 503  # checked and accepted: only Temporal is missing
    bulk = await post("/admin/escrow/bulk-release", {"ids": [released["id"], "bad"]})
    assert flashed(bulk) == "Release sent for 0 of 2 holds; 2 refused."
    assert "bad: &#39;bad&#39; is not an id" in bulk.text

    billing = await signed_in(api, settings, "billing_admin")
    refused = await api.post(
        f"/admin/escrow/{hold['id']}/release", headers={**HTMX, "X-CSRF-Token": billing}
    )
    assert refused.status_code == 403 and "needs one of platform_admin" in flashed(refused)


# Actions that reach Temporal send the API's signals --------------------------------------


@pytest.mark.parametrize("via", ["one", "bulk"])
async def test_console_actions_send_the_apis_signals(
    live_api: AsyncClient,
    settings: Settings,
    auth: TokenFactory,
    local_temporal: WorkflowEnvironment,
    via: str,
) -> None:
    api = live_api
    schedule = await new_schedule(api, auth)
    hold = await new_hold(api, auth)
    csrf = await signed_in(api, settings)
    headers = {**HTMX, "X-CSRF-Token": csrf}
    if via == "one":
        trigger = await api.post(f"/admin/payouts/{schedule['id']}/trigger", headers=headers)
        assert trigger.status_code == 200, trigger.text
        assert trigger.text.lstrip().startswith(f'<tr id="payout-{schedule["id"]}"')
        assert "every 1s" in trigger.text  # the row watches for the workflow's move
        assert "Trigger sent to payout-schedule-" in trigger.text
        assert 'hx-swap-oob="true"' in trigger.text
        release = await api.post(f"/admin/escrow/{hold['id']}/release", headers=headers)
        assert release.status_code == 200, release.text
    else:
        trigger = await api.post(
            "/admin/payouts/bulk-trigger", data={"ids": [schedule["id"]]}, headers=headers
        )
        assert flashed(trigger) == "Trigger sent for 1 of 1 payout schedules."
        assert re.search(f'<template>\\s*<tr id="payout-{schedule["id"]}"', trigger.text)
        release = await api.post(
            "/admin/escrow/bulk-release", data={"ids": [hold["id"]]}, headers=headers
        )
        assert flashed(release) == "Release sent for 1 of 1 holds."
    client = local_temporal.client
    assert await signals_of(client, f"payout-schedule-{schedule['id']}") == [
        ("trigger", {"event": "manual", "by": "ops_1"})
    ]
    assert await signals_of(client, f"escrow-hold-{hold['id']}") == [
        ("release_now", {"by": "ops_1"})
    ]


async def test_a_filter_the_database_refuses_is_a_400_saying_why(
    api: AsyncClient, settings: Settings
) -> None:
    await signed_in(api, settings)
    for page in ("/admin/payouts", "/admin/escrow"):
        refused = await api.get(page, params={"payee_id": "a\x00b"})
        assert refused.status_code == 400, (page, refused.status_code)
        assert "cannot be used" in refused.text
        assert "Something went wrong" not in refused.text

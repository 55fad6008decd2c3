"""The admin console in headless Chromium against the embedded stack: sign in, filter payout
schedules (and read a failed one's error), trigger one and watch its workflow complete it,
release a hold, open an audit entry, and follow a workflow's link to the Temporal Web UI.
Screenshots of the four main pages go to ``docs/screenshots/``."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from playwright.async_api import Page, expect

from devstack.ephemeral import RunningStack
from tests.browser.conftest import bare_token, screenshot, sign_in
from tests.conftest import TokenFactory
from tests.fixtures.stack import Names
from tests.fixtures.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CURRENCY = "USD"
WORKFLOW_MS = 45_000  # a workflow's move, seen by a row re-reading itself every second


async def fund_stripe(embedded: RunningStack, amount: int) -> None:
    base = embedded.settings.stripe_api_base
    assert base is not None
    async with AsyncClient(base_url=base, timeout=10) as stripe:
        funded = await stripe.post(
            "/_sandbox/fund", json={"amount": amount, "currency": CURRENCY.lower()}
        )
        assert funded.status_code == 200, funded.text


async def new_schedule(
    api: AsyncClient, auth: TokenFactory, payee: str, **changes: Any
) -> dict[str, Any]:
    body = {
        "payee_id": payee,
        "destination": f"acct_{uuid.uuid4().hex[:16]}",
        "amount": 12_500,
        "currency": CURRENCY,
        "trigger_event": "manual",
        "scheduled_for": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        **changes,
    }
    created = await api.post("/api/v1/payout-schedules", json=body, headers=auth("platform_admin"))
    assert created.status_code == 201, created.text
    schedule: dict[str, Any] = created.json()
    return schedule


async def new_hold(
    api: AsyncClient, auth: TokenFactory, n: Names, **changes: Any
) -> dict[str, Any]:
    body = {
        "payer_id": n("client"),
        "payee_id": n("recruiter"),
        "amount": 80_000,
        "currency": CURRENCY,
        "reason": "guarantee_period",
        "release_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        **changes,
    }
    created = await api.post("/api/v1/escrow-holds", json=body, headers=auth("platform_admin"))
    assert created.status_code == 201, created.text
    hold: dict[str, Any] = created.json()
    return hold


async def status_of(api: AsyncClient, auth: TokenFactory, url: str) -> str:
    found = await api.get(url, headers=auth("platform_admin"))
    assert found.status_code == 200, found.text
    status: str = found.json()["status"]
    return status


async def failed_schedule(api: AsyncClient, auth: TokenFactory, payee: str) -> dict[str, Any]:
    """A schedule whose run failed for real: more than the Stripe sandbox holds, due now."""
    schedule = await new_schedule(
        api,
        auth,
        payee,
        amount=5_000_000_000,  # 50,000,000.00 USD
        scheduled_for=(datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        max_attempts=1,
    )
    url = f"/api/v1/payout-schedules/{schedule['id']}"

    async def failed() -> bool:
        return await status_of(api, auth, url) == "failed"

    await until(failed, "the oversized payout to fail")
    return schedule


async def confirm(page: Page, question: str) -> None:
    """Answer the console's confirmation dialog."""
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(question)
    await page.click("#confirm-ok")
    await expect(dialog).to_be_hidden()


async def test_sign_in_refuses_a_customer_token_then_lets_an_admin_in(
    page: Page, auth: TokenFactory
) -> None:
    await page.goto("/admin")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
    await page.fill("#token", bare_token(auth, "customer"))
    await page.click("button[type=submit]")
    await expect(page.locator(".error-message")).to_contain_text(
        "A customer token cannot sign in to the admin console"
    )
    await page.fill("#token", bare_token(auth, "platform_admin", sub="ops-alice"))
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/admin$"))
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.locator(".who")).to_contain_text("ops-alice")
    # The health table loads after the page.
    await expect(page.locator("#health table")).to_contain_text("temporal")
    await page.click(".who button")  # sign out
    await expect(page.locator(".notice")).to_have_text("You are signed out.")


async def test_filter_payout_schedules_and_read_a_failed_ones_error(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, n: Names
) -> None:
    payee = n("payee")
    pending = [await new_schedule(stack_api, auth, payee) for _ in range(2)]
    failed = await failed_schedule(stack_api, auth, payee)
    await sign_in(page, auth, "/admin/payouts")

    rows = page.locator("#results tbody tr")
    await page.fill("input[name=payee_id]", payee)
    await page.press("input[name=payee_id]", "Enter")
    await expect(rows).to_have_count(3)
    await expect(page).to_have_url(re.compile(f"payee_id={payee}"))

    await page.select_option("select[name=status]", "failed")
    await expect(rows).to_have_count(1)
    row = page.locator(f"#payout-{failed['id']}")
    await expect(row).to_have_attribute("data-status", "failed")
    tooltip = row.get_by_role("tooltip")
    await expect(tooltip).to_be_hidden()
    await row.locator(".tip").hover()
    await expect(tooltip).to_be_visible()
    await expect(tooltip).to_contain_text("balance is too low")

    await page.select_option("select[name=status]", "completed")
    await expect(page.locator("#results .empty")).to_have_text(
        re.compile("No payout schedules match these filters.")
    )

    await page.select_option("select[name=status]", "")
    await page.fill("input[name=id]", f"payout-schedule-{pending[1]['id']}")
    await page.press("input[name=id]", "Enter")
    await expect(rows).to_have_count(1)
    await expect(page.locator(f"#payout-{pending[1]['id']}")).to_be_visible()
    await page.fill("input[name=id]", "not-an-id")
    await page.press("input[name=id]", "Enter")
    await expect(page.locator("#results .problem")).to_contain_text("is not a payout schedule id")


async def test_trigger_a_payout_schedule_and_see_its_status_change(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, embedded: RunningStack, n: Names
) -> None:
    payee = n("payee")
    await fund_stripe(embedded, 12_500)
    await failed_schedule(stack_api, auth, payee)  # for the screenshot: one of each
    waiting = await new_schedule(stack_api, auth, payee, amount=4_200)
    schedule = await new_schedule(stack_api, auth, payee)
    await sign_in(page, auth, f"/admin/payouts?payee_id={payee}")

    row = page.locator(f"#payout-{schedule['id']}")
    await expect(row).to_have_attribute("data-status", "pending")
    await row.get_by_role("button", name="Trigger").click()
    await confirm(page, f"Trigger payout schedule {schedule['id']} now?")
    await expect(page.locator("#flash")).to_contain_text(
        f"Trigger sent to payout-schedule-{schedule['id']}"
    )
    # The row re-reads itself until the workflow has paid.
    await expect(row).to_have_attribute("data-status", "completed", timeout=WORKFLOW_MS)
    await expect(row.locator(".badge")).to_have_text("completed")
    await expect(row.get_by_role("button", name="Trigger")).to_have_count(0)
    url = f"/api/v1/payout-schedules/{schedule['id']}"
    assert await status_of(stack_api, auth, url) == "completed"
    waiting_url = f"/api/v1/payout-schedules/{waiting['id']}"
    assert await status_of(stack_api, auth, waiting_url) == "pending"
    await screenshot(page, "payout-schedules", hover="#results tr[data-status=failed] .tip")


async def test_release_a_hold(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, n: Names
) -> None:
    # Past its date but waiting for an approval: the page warns that it is due.
    due = await new_hold(
        stack_api,
        auth,
        n,
        amount=15_000,
        required_approvals=1,
        release_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
    )
    hold = await new_hold(stack_api, auth, n)
    await new_hold(stack_api, auth, n, amount=230_000, reason="verification")
    await sign_in(page, auth, f"/admin/escrow?payer_id={n('client')}")

    await expect(page.locator(".warning")).to_contain_text("past")
    await expect(page.locator(f"#hold-{due['id']} .badge.s-due")).to_have_text("due now")
    row = page.locator(f"#hold-{hold['id']}")
    await expect(row).to_have_attribute("data-status", "active")
    await row.get_by_role("button", name="Release").click()
    await confirm(page, f"Release hold {hold['id']} now?")
    await expect(page.locator("#flash")).to_contain_text(
        f"Release sent to escrow-hold-{hold['id']}"
    )
    await expect(row).to_have_attribute("data-status", "released", timeout=WORKFLOW_MS)
    await expect(row.get_by_role("button", name="Release")).to_have_count(0)
    assert await status_of(stack_api, auth, f"/api/v1/escrow-holds/{hold['id']}") == "released"
    await screenshot(page, "escrow-holds")


async def test_open_an_audit_entry(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, n: Names
) -> None:
    hold = await new_hold(stack_api, auth, n)
    released = await stack_api.post(
        f"/api/v1/escrow-holds/{hold['id']}/release", headers=auth("platform_admin", sub="ops-bob")
    )
    assert released.status_code == 202, released.text
    url = f"/api/v1/escrow-holds/{hold['id']}"

    async def done() -> bool:
        return await status_of(stack_api, auth, url) == "released"

    await until(done, "the release")
    await sign_in(page, auth, "/admin/audit")
    await page.fill("input[name=entity_id]", hold["id"])
    await page.press("input[name=entity_id]", "Enter")
    entries = page.locator("#results .entry")
    await expect(entries).to_have_count(2)  # created, released

    entry = page.locator("#results .entry[data-action='escrow_hold.released']")
    body = entry.locator(".entry-body")
    await expect(body).to_be_hidden()
    await entry.locator("summary").click()
    await expect(body).to_be_visible()
    await expect(entry.locator("summary")).to_contain_text("by ops-bob")
    status = body.locator("tr.changed", has=page.locator("th", has_text="status"))
    await expect(status.locator("td").nth(0)).to_have_text("active")
    await expect(status.locator("td").nth(1)).to_have_text("released")
    await expect(body.locator("tr.changed", has_text="released_amount")).to_contain_text("80000")
    await expect(body.get_by_role("link", name=f"escrow-hold-{hold['id']}")).to_be_visible()
    await screenshot(page, "audit-log")


async def test_follow_a_workflow_link_to_the_temporal_ui(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, embedded: RunningStack, n: Names
) -> None:
    schedule = await new_schedule(stack_api, auth, n("payee"))
    workflow_id = f"payout-schedule-{schedule['id']}"
    await sign_in(page, auth, f"/admin/payouts?id={schedule['id']}")
    settings = embedded.settings
    namespace = settings.temporal_namespace
    expected = f"{settings.temporal_ui_url}/namespaces/{namespace}/workflows/{workflow_id}"
    link = page.locator(f"#payout-{schedule['id']}").get_by_role("link", name=workflow_id)
    await expect(link).to_have_attribute("href", expected)
    async with page.expect_popup() as opened:
        await link.click()
    ui = await opened.value
    await ui.wait_for_load_state()
    assert ui.url.startswith(expected), ui.url
    # The Temporal Web UI itself shows the workflow.
    await expect(ui.get_by_text(workflow_id).first).to_be_visible(timeout=30_000)


async def test_overview_shows_figures_and_charts(page: Page, auth: TokenFactory) -> None:
    """Last, so the day's payouts (one completed, failed ones) are in the chart."""
    await sign_in(page, auth)
    await expect(page.locator(".card")).to_have_count(7)
    chart = page.locator("figure", has_text="Payouts per day")
    await expect(chart.locator("rect.bar.ok")).to_have_count(14)
    await expect(page.locator("#health table")).to_contain_text("database")
    await expect(page.locator("#health")).to_contain_text("Every component answers.")
    await screenshot(page, "overview")

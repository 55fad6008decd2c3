"""The console's tickets, transfers, reconciliation, webhooks and subscriptions pages in headless
Chromium against the embedded stack: read a ticket's verification log and proof, retry a
batch's failed transfer and watch its workflow run it again, resolve a reconciliation
discrepancy, replay a dead-lettered webhook delivery, and retry a past-due subscription's
payment until its workflow has charged it. Each saves its page's screenshot to
``docs/screenshots/``."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.ephemeral import RunningStack
from models.engine import make_engine, make_sessionmaker
from tests.api.test_reconciliation_api import completed_run
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_admin_console import WORKFLOW_MS, confirm, fund_stripe, until
from tests.conftest import TokenFactory
from tests.fixtures.stack import Names
from tests.integration.test_tickets_http import issue, verify

pytestmark = [pytest.mark.integration, pytest.mark.browser]

TOO_MUCH = 5_000_000_000  # 50,000,000.00 USD: more than the Stripe sandbox holds


@pytest.fixture
async def stack_db(embedded: RunningStack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the stack's own database, to seed what only a long process would make."""
    engine = make_engine(embedded.settings.sqlalchemy_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def read(api: AsyncClient, auth: TokenFactory, url: str) -> dict[str, Any]:
    found = await api.get(url, headers=auth("platform_admin"))
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


async def test_a_tickets_verification_log_and_proof(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, n: Names
) -> None:
    ticket = await issue(stack_api, auth, n)
    await verify(stack_api, auth, n, ticket["qr_payload"], driver=n("drv_2"))  # refused
    await verify(stack_api, auth, n, ticket["qr_payload"])  # accepted
    await sign_in(page, auth, f"/admin/tickets?user_id={n('rider_a')}")

    row = page.locator(f"#ticket-{ticket['id']}")
    await expect(row).to_have_attribute("data-status", "USED")
    await row.get_by_role("link", name=ticket["id"][:8], exact=True).click()
    await expect(page.get_by_role("heading", name=f"Ticket {ticket['id']}")).to_be_visible()
    log = page.locator("#verifications tbody tr")
    await expect(log).to_have_count(2)
    await expect(log.nth(0)).to_contain_text("wrong_driver")
    await expect(log.nth(1)).to_contain_text("accepted")
    await expect(page.locator("#proof")).to_contain_text("Anchoring proof")
    await expect(page.get_by_role("link", name=f"ticket-{ticket['id']}")).to_be_visible()
    await screenshot(page, "tickets")


async def test_retry_a_batchs_failed_transfer(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, embedded: RunningStack, n: Names
) -> None:
    await fund_stripe(embedded, 3_000)
    partner = n("partner")
    items = [
        {"reference": "ok-1", "destination": f"acct_{uuid.uuid4().hex[:16]}", "amount": 1_000},
        {"reference": "ok-2", "destination": f"acct_{uuid.uuid4().hex[:16]}", "amount": 2_000},
        {"reference": "big", "destination": f"acct_{uuid.uuid4().hex[:16]}", "amount": TOO_MUCH},
    ]
    created = await stack_api.post(
        "/api/v1/transfers/batch",
        json={"partner_id": partner, "items": [item | {"currency": "USD"} for item in items]},
        headers=auth("platform_admin"),
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    url = f"/api/v1/transfers/batch/{batch_id}"

    async def finished() -> dict[str, Any] | None:
        batch = await read(stack_api, auth, url)
        return batch if batch["status"] != "processing" else None

    assert (await until(finished, "the batch to finish"))["failed_count"] == 1
    await sign_in(page, auth, f"/admin/transfers?partner_id={partner}")

    row = page.locator(f"#batch-{batch_id}")
    await expect(row).to_have_attribute("data-status", "partially_completed")
    await expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100.0")
    await expect(row).to_contain_text("2 succeeded, 1 failed")
    await expect(page.locator("#window-stripe")).to_contain_text("sent at once")
    await screenshot(page, "transfers")

    await row.get_by_role("link", name=batch_id[:8], exact=True).click()
    failed = page.locator("#items tr[data-status=failed]")
    await expect(failed).to_have_count(1)
    await failed.locator(".tip").hover()
    await expect(failed.get_by_role("tooltip")).to_contain_text("balance is too low")
    await page.get_by_role("button", name="Retry failed (1)").click()
    await confirm(page, "Retry the 1 failed transfer of this batch?")
    await expect(page.locator("#flash")).to_contain_text(
        f"1 failed transfer is pending again: retry sent to transfer-batch-{batch_id}"
    )
    # The page re-reads the batch while its workflow runs the item again (refused again:
    # the sandbox still holds too little), until the batch has finished its second run.
    batch = page.locator("#batch")
    await expect(batch).to_have_attribute("data-status", "partially_completed", timeout=WORKFLOW_MS)
    await expect(batch).to_contain_text("2 (1, plus one per retry)")
    assert (await read(stack_api, auth, url))["run_count"] == 2


async def test_resolve_a_reconciliation_discrepancy(
    page: Page, auth: TokenFactory, stack_db: async_sessionmaker[AsyncSession]
) -> None:
    run_id = await completed_run(stack_db)
    await sign_in(page, auth, f"/admin/reconciliation?run_id={run_id}")

    await expect(page.locator(f"#run-{run_id} .match-rate")).to_have_text("33.33%")
    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(4)
    await page.select_option("select[name=type]", "unexpected_external")
    await expect(rows).to_have_count(1)
    row = rows.first
    await expect(row).to_have_attribute("data-status", "open")
    await row.locator("summary", has_text="Resolve").click()
    await row.locator("button[type=submit]").click()  # without a note: refused, saying why
    await expect(page.locator("#flash.error")).to_contain_text(
        "a note saying how it was resolved is required"
    )
    await row.locator("textarea[name=note]").fill("A test transfer made by hand at Stripe.")
    await row.locator("button[type=submit]").click()
    await expect(page.locator("#flash")).to_contain_text("resolved: A test transfer made by hand")
    await expect(rows.first).to_have_attribute("data-status", "resolved")
    await expect(rows.first).to_contain_text("by ops-browser")

    await page.select_option("select[name=type]", "")
    await expect(rows).to_have_count(4)
    await screenshot(page, "reconciliation")
    csv = page.locator(f"#run-{run_id}").get_by_role("link", name="CSV")
    async with page.expect_download() as downloading:
        await csv.click()
    download = await downloading.value
    assert download.suggested_filename == f"reconciliation-{run_id}-discrepancies.csv"


async def test_replay_a_dead_lettered_webhook_delivery(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, n: Names
) -> None:
    admin = auth("platform_admin")
    created = await stack_api.post(
        "/api/v1/webhook-endpoints",
        # Nothing listens there; retried once after a second, then dead-lettered.
        json={
            "url": f"http://127.0.0.1:9/{n('hook')}",
            "event_types": ["webhook.*"],
            "retry_schedule_seconds": [1],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    sent = await stack_api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/test", headers=admin)
    assert sent.status_code == 202, sent.text
    delivery_id = sent.json()["id"]
    url = f"/api/v1/webhook-deliveries/{delivery_id}"

    async def dead() -> bool:
        return (await read(stack_api, auth, url))["status"] == "dead_lettered"

    await until(dead, "the delivery to be dead-lettered")
    await sign_in(page, auth, f"/admin/webhooks?endpoint_id={endpoint_id}")
    await page.get_by_role("link", name="Dead letters").click()
    await expect(page.locator("select[name=status]")).to_have_value("dead_lettered")
    await page.fill("input[name=endpoint_id]", endpoint_id)
    await page.press("input[name=endpoint_id]", "Enter")
    row = page.locator(f"#delivery-{delivery_id}")
    await expect(row).to_have_attribute("data-status", "dead_lettered")
    await expect(row).to_contain_text("webhook.test")
    await screenshot(page, "webhooks", hover=f"#delivery-{delivery_id} .tip")

    await row.get_by_role("button", name="Replay").click()
    await confirm(page, f"Replay delivery {delivery_id}?")
    await expect(page.locator("#flash")).to_contain_text("Replay queued as delivery")
    fresh = page.locator("#results tbody tr.fresh")
    await expect(fresh).to_have_count(1)
    await expect(fresh).to_contain_text(f"replay of {delivery_id[:8]}")
    listed = await stack_api.get(
        "/api/v1/webhook-deliveries", params={"endpoint_id": endpoint_id}, headers=admin
    )
    assert [d["replay_of"] for d in listed.json()["data"]] == [delivery_id, None]


async def test_retry_a_past_due_subscriptions_payment(
    page: Page, auth: TokenFactory, stack_api: AsyncClient, embedded: RunningStack, n: Names
) -> None:
    plan = await stack_api.post(
        "/api/v1/plans",
        json={"name": n("Team"), "amount": 4_900, "currency": "USD", "interval": "month"},
        headers=auth("billing_admin"),
    )
    assert plan.status_code == 201, plan.text
    customer = n("customer")
    card = await stack_api.post(
        "/api/v1/payment-methods",
        json={"token": "pm_card_visa"},
        headers=auth("customer", sub=customer),
    )
    assert card.status_code == 201, card.text
    async with AsyncClient(base_url=str(embedded.settings.stripe_api_base), timeout=10) as stripe:
        # The first charge declines; the next one (the console's retry) pays.
        scripted = await stripe.post(
            f"/_sandbox/payment_methods/{card.json()['stripe_payment_method_id']}/declines",
            json={"count": 1, "card": "pm_card_chargeDeclinedInsufficientFunds"},
        )
        assert scripted.status_code == 200, scripted.text
    subscribed = await stack_api.post(
        "/api/v1/subscriptions",
        json={"plan_id": plan.json()["id"]},
        headers=auth("customer", sub=customer),
    )
    assert subscribed.status_code == 201, subscribed.text
    subscription_id = subscribed.json()["id"]
    url = f"/api/v1/subscriptions/{subscription_id}"

    async def past_due() -> bool:
        return (await read(stack_api, auth, url))["status"] == "past_due"

    await until(past_due, "the subscription to be past due")
    await sign_in(page, auth, "/admin/subscriptions?status=past_due")
    row = page.locator(f"#subscription-{subscription_id}")
    await expect(row).to_have_attribute("data-status", "past_due")
    await expect(row.locator("code.decline")).to_have_text("insufficient_funds")
    await expect(row).to_contain_text("1 failed charge")
    await screenshot(page, "subscriptions")

    await row.get_by_role("button", name="Retry payment").click()
    await confirm(page, f"Charge the overdue invoice of subscription {subscription_id} now?")
    await expect(page.locator("#flash")).to_contain_text(
        f"Retry payment sent to subscription-{subscription_id}"
    )
    # The row re-reads itself until the workflow has charged the invoice.
    await expect(row).to_have_attribute("data-status", "active", timeout=WORKFLOW_MS)
    await expect(row.get_by_role("button", name="Retry payment")).to_have_count(0)
    assert (await read(stack_api, auth, url))["status"] == "active"

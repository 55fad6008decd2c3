"""The admin console's tickets, transfers, reconciliation, webhooks and subscriptions pages in
process: each renders, shows its empty state and filters; each action says what it did or
why it was refused (the API's own message); none runs without the session's CSRF token; and
with Temporal up the actions send the API's signals. Temporal is down unless a test uses
``live_api``."""

import re
import uuid
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from domain.actors import SYSTEM, Actor, Role
from services import anchoring, reconciliation, tickets, transfers, webhooks
from settings import Settings
from tests.api.billing import add_method, in_dunning
from tests.api.conftest import signals_of
from tests.api.test_admin_console import HTMX, flashed, signed_in
from tests.api.test_reconciliation_api import completed_run
from tests.conftest import TokenFactory
from tests.fixtures.subscriptions import new_plan, new_subscription
from tests.fixtures.tickets import RING, issue_tickets
from tests.services.test_webhooks_service import FIVE_DAYS, attempt, new_event, now

Sessions = async_sessionmaker[AsyncSession]
PARTIAL = {**HTMX, "HX-Target": "results"}
PAGES = (
    "/admin/tickets",
    "/admin/transfers",
    "/admin/reconciliation",
    "/admin/webhooks",
    "/admin/subscriptions",
)
TX = "0x" + "ab" * 32
CONTRACT = "0x" + "cd" * 20


def poster(api: AsyncClient, csrf: str) -> Any:
    async def post(url: str, data: dict[str, Any] | None = None, **headers: str) -> Response:
        return await api.post(url, data=data, headers={**HTMX, "X-CSRF-Token": csrf, **headers})

    return post


async def new_batch(api: AsyncClient, auth: TokenFactory, partner: str, count: int = 3) -> str:
    items = [
        {"reference": f"inv-{i}", "destination": "acct_1Console", "amount": 500 + i}
        | {"currency": "USD"}
        for i in range(count)
    ]
    created = await api.post(
        "/api/v1/transfers/batch",
        json={"partner_id": partner, "items": items},
        headers=auth("platform_admin"),
    )
    assert created.status_code == 201, created.text
    batch_id: str = created.json()["id"]
    return batch_id


async def fail_one(
    db: Sessions, batch_id: str, error: str = "NotFound: no such destination"
) -> str:
    """The batch's first item refused by the rail, the second paid (as the workflow does)."""
    async with db() as session, session.begin():
        first, second = (await transfers.list_items(session, uuid.UUID(batch_id), limit=5))[:2]
        await transfers.start(session, first.id, actor=SYSTEM)
        await transfers.fail(session, first.id, error=error, final=True, actor=SYSTEM)
        await transfers.start(session, second.id, actor=SYSTEM)
        await transfers.succeed(session, second.id, external_id="tr_paid", actor=SYSTEM)
        return str(first.id)


async def dead_letter(db: Sessions, api: AsyncClient, auth: TokenFactory) -> tuple[str, str]:
    """A dead-lettered delivery (its one attempt answered 500) and one still pending."""
    created = await api.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/console", "event_types": ["invoice.*"]},
        headers=auth("platform_admin"),
    )
    assert created.status_code == 201, created.text
    async with db() as session, session.begin():
        await new_event(session)
        [dead] = (await webhooks.dispatch(session, limit=10, at=now())).deliveries
        await webhooks.record_attempt(
            session,
            dead.id,
            attempt(1, 500, response_excerpt="receiver exploded", error="HTTP 500"),
            retry_at=None,
            at=now(),
            disable_after=FIVE_DAYS,
        )
        await new_event(session, "invoice.finalized")
        [pending] = (await webhooks.dispatch(session, limit=10, at=now())).deliveries
    return str(dead.id), str(pending.id)


# Signed out, CSRF -------------------------------------------------------------------------


async def test_the_new_pages_need_a_session_and_are_in_the_navigation(
    api: AsyncClient, settings: Settings
) -> None:
    for path in PAGES:
        response = await api.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")
    await signed_in(api, settings)
    overview = await api.get("/admin")
    for path in PAGES:
        assert f'href="{path}"' in overview.text
    page = await api.get("/admin/transfers")
    assert 'aria-current="page" class="active">Transfers</a>' in page.text


async def test_every_new_action_needs_the_sessions_csrf_token(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: Sessions
) -> None:
    batch_id = await new_batch(api, auth, "partner-csrf")
    await fail_one(db, batch_id)
    dead, _ = await dead_letter(db, api, auth)
    run_id = await completed_run(db)
    async with db() as session:
        found = await reconciliation.list_discrepancies(session, limit=10, run_id=run_id)
    item = found[0].id
    await signed_in(api, settings)
    actions = [
        (f"/admin/transfers/{batch_id}/retry", {}),
        ("/admin/transfers/windows/stripe/settle-now", {}),
        (f"/admin/reconciliation/discrepancies/{item}/resolve", {"note": "settled late"}),
        (f"/admin/webhooks/{dead}/replay", {}),
        (f"/admin/subscriptions/{uuid.uuid4()}/retry-payment", {}),
    ]
    for url, data in actions:
        for headers in ({}, {"X-CSRF-Token": "f" * 64}):
            refused = await api.post(url, data=data, headers={**HTMX, **headers})
            assert refused.status_code == 403, url
            assert "security token is missing or does not match" in flashed(refused)
    # Nothing changed: the item is still failed, the discrepancy open, nothing replayed.
    admin = auth("platform_admin")
    batch = (await api.get(f"/api/v1/transfers/batch/{batch_id}", headers=admin)).json()
    assert batch["failed_count"] == 1
    one = await api.get(f"/api/v1/reconciliation/discrepancies/{item}", headers=admin)
    assert one.json()["status"] == "open"
    deliveries = await api.get("/api/v1/webhook-deliveries", headers=admin)
    assert len(deliveries.json()["data"]) == 2


async def test_filters_refuse_what_no_row_can_hold_saying_why(
    api: AsyncClient, settings: Settings
) -> None:
    await signed_in(api, settings)
    cases = [
        ("/admin/tickets", "user_id"),
        ("/admin/transfers", "partner_id"),
        ("/admin/webhooks", "event_type"),
        ("/admin/subscriptions", "customer_id"),
    ]
    for path, name in cases:
        nul = await api.get(path, params={name: "a\x00b"}, headers=PARTIAL)
        assert nul.status_code == 400, (path, nul.text)
        assert f"{name} must not contain control characters" in nul.text
        long = await api.get(path, params={name: "x" * 201})
        assert long.status_code == 400 and f"{name} is at most 200 characters" in long.text
    run = uuid.uuid4()
    unknown = await api.get("/admin/reconciliation", params={"run_id": str(run)}, headers=PARTIAL)
    assert unknown.status_code == 404 and f"no reconciliation run {run}" in unknown.text


# Tickets ----------------------------------------------------------------------------------


async def test_tickets_filters_and_a_tickets_verification_log_and_proof(
    api: AsyncClient, settings: Settings, db: Sessions
) -> None:
    await signed_in(api, settings)
    empty = await api.get("/admin/tickets")
    assert empty.status_code == 200 and "No tickets yet" in empty.text

    mine = await issue_tickets(db, 2, rider="rider-a", driver="drv-1")
    other = await issue_tickets(db, 1, rider="rider-b", driver="drv-2")
    ticket = mine[0]
    page = await api.get("/admin/tickets")
    ui = settings.temporal_ui_url
    assert f'{ui}/namespaces/default/workflows/ticket-{ticket.id}"' in page.text
    assert page.text.count('<tr id="ticket-') == 3

    by_holder = await api.get("/admin/tickets", params={"user_id": "rider-a"}, headers=PARTIAL)
    assert by_holder.text.lstrip().startswith('<div id="results"')
    assert by_holder.text.count('<tr id="ticket-') == 2 and str(other[0].id) not in by_holder.text
    by_driver = await api.get("/admin/tickets", params={"driver_id": "drv-2"}, headers=PARTIAL)
    assert str(other[0].id) in by_driver.text and str(ticket.id) not in by_driver.text
    by_id = await api.get("/admin/tickets", params={"id": f"ticket-{ticket.id}"}, headers=PARTIAL)
    assert by_id.text.count('<tr id="ticket-') == 1
    none = await api.get("/admin/tickets", params={"status": "CANCELLED"}, headers=PARTIAL)
    assert "No tickets match these filters." in none.text
    bad = await api.get("/admin/tickets", params={"status": "gone"})
    assert bad.status_code == 400 and "&#39;gone&#39; is not a ticket status" in bad.text
    bad_id = await api.get("/admin/tickets", params={"id": "nope"}, headers=PARTIAL)
    assert bad_id.status_code == 400 and "is not a ticket id" in bad_id.text

    detail = await api.get(f"/admin/tickets/{ticket.id}")
    assert detail.status_code == 200
    assert "Not scanned yet" in detail.text
    assert "not anchored yet: the ticket joins the next anchoring batch" in detail.text
    assert f"workflows/ticket-{ticket.id}" in detail.text

    driver = Actor("drv-x", Role.DRIVER)
    async with db() as session, session.begin():
        for driver_id in ("drv-x", "drv-1"):  # the wrong driver, then the right one
            await tickets.verify(
                session,
                payload=ticket.payload,
                driver=driver,
                driver_id=driver_id,
                location={"lat": 52.52, "lng": 13.405},
                ring=RING,
            )
        batch = await anchoring.create_batch(session, max_leaves=100, actor=SYSTEM)
        assert batch is not None
        await anchoring.mark_submitted(
            session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
        )
    detail = await api.get(f"/admin/tickets/{ticket.id}")
    log = detail.text.split('id="verifications"')[1].split("</section>")[0]
    assert log.count("<tr class=") == 2
    assert 'data-accepted="false"' in log and "wrong_driver" in log
    assert 'data-accepted="true"' in log and "52.52, 13.405" in log
    proof = detail.text.split('id="proof"')[1].split("</section>")[0]
    assert "not anchored yet: the transaction waits for its confirmations" in proof
    assert TX in proof and CONTRACT in proof and f"#{batch.id}" in proof
    assert "leaf 0 of 3" in proof or "leaf 1 of 3" in proof or "leaf 2 of 3" in proof
    missing = await api.get(f"/admin/tickets/{uuid.uuid4()}")
    assert missing.status_code == 404 and "No ticket" in missing.text


# Transfers --------------------------------------------------------------------------------


async def test_transfer_batches_progress_items_and_retry(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: Sessions
) -> None:
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)
    empty = await api.get("/admin/transfers")
    assert "No transfer batches yet" in empty.text
    for rail in ("stripe", "chain"):
        assert f'id="window-{rail}"' in empty.text
    assert "No windows: transfers on this rail are sent at once." in empty.text

    batch_id = await new_batch(api, auth, "partner-console")
    other = await new_batch(api, auth, "partner-other", count=1)
    failed_item = await fail_one(db, batch_id)
    page = await api.get("/admin/transfers")
    row = page.text.split(f'<tr id="batch-{batch_id}"')[1].split("</tr>")[0]
    assert 'data-status="processing"' in row and "every 2s" in row  # re-reads while running
    assert 'aria-valuenow="66.7"' in row and "1 succeeded, 1 failed, 1 open" in row
    assert f"workflows/transfer-batch-{batch_id}" in row
    assert "Retry failed (1)" in row

    by_partner = await api.get(
        "/admin/transfers", params={"partner_id": "partner-other"}, headers=PARTIAL
    )
    assert other in by_partner.text and batch_id not in by_partner.text
    none = await api.get("/admin/transfers", params={"status": "completed"}, headers=PARTIAL)
    assert "No transfer batches match these filters." in none.text
    bad = await api.get("/admin/transfers", params={"status": "done"}, headers=PARTIAL)
    assert bad.status_code == 400 and "is not a batch status" in bad.text

    detail = await api.get(f"/admin/transfers/{batch_id}")
    assert detail.status_code == 200 and detail.text.count('<tr id="transfer-') == 3
    assert "NotFound: no such destination" in detail.text and 'role="tooltip"' in detail.text
    only_failed = await api.get(
        f"/admin/transfers/{batch_id}",
        params={"status": "failed"},
        headers={**HTMX, "HX-Target": "batch"},
    )
    assert only_failed.text.lstrip().startswith('<div id="batch"')
    assert only_failed.text.count('<tr id="transfer-') == 1 and failed_item in only_failed.text

    retried = await post(f"/admin/transfers/{batch_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.text.lstrip().startswith(f'<tr id="batch-{batch_id}"')
    assert "1 failed transfer is pending again: retry sent to transfer-batch-" in retried.text
    assert "Retry failed" not in retried.text.split("</tr>")[0]
    again = await post(f"/admin/transfers/{batch_id}/retry")
    assert again.status_code == 409
    assert flashed(again) == f"transfer batch {batch_id} has no failed transfers to retry"
    assert "code: nothing_to_retry" in again.text
    missing = await post(f"/admin/transfers/{uuid.uuid4()}/retry")
    assert missing.status_code == 404 and "no transfer batch" in flashed(missing)
    admin = auth("platform_admin")
    items = await api.get(f"/api/v1/transfers/batch/{batch_id}/items", headers=admin)
    assert [t["status"] for t in items.json()["data"]] == ["pending", "succeeded", "pending"]

    # The audit log links the batch to its page and its workflow.
    audit = await api.get("/admin/audit", params={"entity_id": batch_id})
    assert f'href="/admin/transfers/{batch_id}"' in audit.text
    assert f"workflows/transfer-batch-{batch_id}" in audit.text

    # On the batch's own page the retry re-renders the batch.
    await fail_one_again(db, failed_item)
    on_page = await post(f"/admin/transfers/{batch_id}/retry", **{"HX-Target": "batch"})
    assert on_page.status_code == 200 and on_page.text.lstrip().startswith('<div id="batch"')


async def fail_one_again(db: Sessions, transfer_id: str) -> None:
    async with db() as session, session.begin():
        await transfers.start(session, uuid.UUID(transfer_id), actor=SYSTEM)
        await transfers.fail(
            session, uuid.UUID(transfer_id), error="still gone", final=True, actor=SYSTEM
        )


async def test_settle_now_says_why_it_was_refused(
    api: AsyncClient, settings: Settings, auth: TokenFactory
) -> None:
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)
    down = await post("/admin/transfers/windows/stripe/settle-now")
    assert down.status_code == 503
    assert "Temporal at" in flashed(down) and "is unreachable" in flashed(down)
    unknown = await post("/admin/transfers/windows/paypal/settle-now")
    assert unknown.status_code == 404
    assert flashed(unknown) == "no rail &#39;paypal&#39;; the rails are stripe, chain"
    billing = await signed_in(api, settings, "billing_admin")
    refused = await poster(api, billing)("/admin/transfers/windows/stripe/settle-now")
    assert refused.status_code == 403
    assert "Role &#39;billing_admin&#39; may not do this" in flashed(refused)


# Reconciliation ---------------------------------------------------------------------------


async def test_reconciliation_runs_discrepancies_resolve_and_csv(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: Sessions
) -> None:
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)
    empty = await api.get("/admin/reconciliation")
    assert "No reconciliation runs yet" in empty.text
    assert "No discrepancies: every run so far matched" in empty.text

    run_id = await completed_run(db)
    page = await api.get("/admin/reconciliation")
    runs = page.text.split('id="runs"')[1].split("</section>")[0]
    assert f'<tr id="run-{run_id}" data-status="completed"' in runs
    assert "33.33%" in runs  # 2 matched of 2 pairs and 4 discrepancies
    assert f"/admin/reconciliation/runs/{run_id}/discrepancies.csv" in runs
    assert "workflows/reconciliation-daily-run-" in runs
    assert page.text.count('<tr id="discrepancy-') == 4

    missing = await api.get(
        "/admin/reconciliation", params={"type": "missing_settlement"}, headers=PARTIAL
    )
    assert missing.text.count('<tr id="discrepancy-') == 3
    bad = await api.get("/admin/reconciliation", params={"type": "lost"}, headers=PARTIAL)
    assert bad.status_code == 400 and "is not a discrepancy type" in bad.text
    of_run = await api.get("/admin/reconciliation", params={"run_id": str(run_id)})
    assert "Export these as CSV" in of_run.text

    stray = await api.get(
        "/admin/reconciliation", params={"type": "unexpected_external"}, headers=PARTIAL
    )
    [item] = re.findall(r'<tr id="discrepancy-([0-9a-f-]+)"', stray.text)
    url = f"/admin/reconciliation/discrepancies/{item}/resolve"
    no_note = await post(url, {"note": "  "})
    assert no_note.status_code == 400
    assert flashed(no_note) == "a note saying how it was resolved is required"
    done = await post(url, {"note": "a test transfer made by hand at Stripe"})
    assert done.status_code == 200, done.text
    assert done.text.lstrip().startswith(f'<tr id="discrepancy-{item}" data-status="resolved"')
    assert "Discrepancy" in done.text and "resolved: a test transfer made by hand" in done.text
    assert "by ops_1" in done.text
    twice = await post(url, {"note": "again"})
    assert twice.status_code == 409
    assert flashed(twice) == f"discrepancy {item} was resolved by ops_1"
    resolved = await api.get("/admin/reconciliation", params={"status": "resolved"})
    assert resolved.text.count('<tr id="discrepancy-') == 1
    billing = await signed_in(api, settings, "billing_admin")
    open_one = re.findall(r'<tr id="discrepancy-([0-9a-f-]+)"', missing.text)[0]
    by_billing = await poster(api, billing)(
        f"/admin/reconciliation/discrepancies/{open_one}/resolve", {"note": "paid late"}
    )
    assert by_billing.status_code == 200  # billing admins resolve too, as in the API

    exported = await api.get(
        f"/admin/reconciliation/runs/{run_id}/discrepancies.csv",
        params={"type": "missing_settlement"},
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("id,run_id,type,source,external_id") and len(lines) == 4
    same = await api.get(
        f"/api/v1/reconciliation/runs/{run_id}/discrepancies.csv",
        params={"type": "missing_settlement"},
        headers=auth("platform_admin"),
    )
    assert same.text == exported.text  # the API's export, byte for byte


# Webhooks ---------------------------------------------------------------------------------


async def test_webhook_deliveries_dead_letters_and_replay(
    api: AsyncClient, settings: Settings, auth: TokenFactory, db: Sessions
) -> None:
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)
    empty = await api.get("/admin/webhooks")
    assert "No webhook deliveries yet" in empty.text
    no_dead = await api.get("/admin/webhooks", params={"status": "dead_lettered"})
    assert "No dead letters" in no_dead.text

    dead, pending = await dead_letter(db, api, auth)
    page = await api.get("/admin/webhooks")
    assert page.text.count('<tr id="delivery-') == 2
    assert f"workflows/webhook-delivery-{dead}" in page.text
    letters = await api.get("/admin/webhooks", params={"status": "dead_lettered"})
    assert letters.text.count('<tr id="delivery-') == 1 and dead in letters.text
    assert "HTTP 500" in letters.text and 'role="tooltip"' in letters.text
    by_type = await api.get(
        "/admin/webhooks", params={"event_type": "invoice.finalized"}, headers=PARTIAL
    )
    assert pending in by_type.text and dead not in by_type.text
    bad = await api.get("/admin/webhooks", params={"endpoint_id": "x"}, headers=PARTIAL)
    assert bad.status_code == 400 and "is not an endpoint id" in bad.text

    detail = await api.get(f"/admin/webhooks/{dead}")
    assert detail.status_code == 200 and "receiver exploded" in detail.text
    assert "HTTP 500" in detail.text and "msg_" in detail.text

    replayed = await post(f"/admin/webhooks/{dead}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.text.lstrip().startswith(f'<tr id="delivery-{dead}"')
    assert 'hx-swap-oob="afterbegin:#deliveries"' in replayed.text
    assert "Replay queued as delivery" in replayed.text and "same webhook-id" in replayed.text
    still_open = await post(f"/admin/webhooks/{pending}/replay")
    assert still_open.status_code == 409
    assert flashed(still_open) == (
        f"webhook delivery {pending} is pending: it is still being delivered"
    )
    admin = auth("platform_admin")
    listed = (await api.get("/api/v1/webhook-deliveries", headers=admin)).json()["data"]
    assert listed[0]["replay_of"] == dead and len(listed) == 3
    on_page = await post(f"/admin/webhooks/{dead}/replay", **{"HX-Target": "delivery"})
    assert on_page.text.lstrip().startswith('<section class="panel" id="delivery"')


# Subscriptions ----------------------------------------------------------------------------


async def test_subscriptions_dunning_state_and_retry_payment(
    api: AsyncClient, settings: Settings, db: Sessions
) -> None:
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)
    empty = await api.get("/admin/subscriptions")
    assert "No subscriptions yet" in empty.text

    plan = await new_plan(db, 3_000)
    method = await add_method(db, "cust-ok")
    fine = await new_subscription(db, plan, customer_id="cust-ok", method=method)
    late_method = await add_method(db, "cust-late")
    late = await new_subscription(db, plan, customer_id="cust-late", method=late_method)
    await in_dunning(db, str(late.id))

    page = await api.get("/admin/subscriptions")
    assert page.text.count('<tr id="subscription-') == 2
    row = page.text.split(f'<tr id="subscription-{late.id}"')[1].split("</tr>")[0]
    assert 'data-status="past_due" class="dunning"' in row
    assert "30.00 USD</strong> due" in row and "1 failed charge" in row
    assert (
        '<code class="decline" title="Your card has insufficient funds.">insufficient_funds' in row
    )
    assert "next retry" in row and "Retry payment" in row
    assert f"workflows/subscription-{late.id}" in row
    fine_row = page.text.split(f'<tr id="subscription-{fine.id}"')[1].split("</tr>")[0]
    assert "Retry payment" not in fine_row

    past_due = await api.get("/admin/subscriptions", params={"status": "past_due"}, headers=PARTIAL)
    assert str(late.id) in past_due.text and str(fine.id) not in past_due.text
    unpaid = await api.get("/admin/subscriptions", params={"status": "unpaid"}, headers=PARTIAL)
    assert "No subscriptions match these filters." in unpaid.text
    by_id = await api.get(
        "/admin/subscriptions", params={"id": f"subscription-{fine.id}"}, headers=PARTIAL
    )
    assert str(fine.id) in by_id.text and str(late.id) not in by_id.text
    bad = await api.get("/admin/subscriptions", params={"plan_id": "pro"}, headers=PARTIAL)
    assert bad.status_code == 400 and "is not a plan id" in bad.text

    down = await post(f"/admin/subscriptions/{late.id}/retry-payment")
    assert down.status_code == 503 and "is unreachable" in flashed(down)
    not_due = await post(f"/admin/subscriptions/{fine.id}/retry-payment")
    assert not_due.status_code == 409
    assert flashed(not_due) == "Cannot retry a active subscription"
    gone = await post(f"/admin/subscriptions/{uuid.uuid4()}/retry-payment")
    assert gone.status_code == 404 and "no subscription" in flashed(gone)


# With Temporal up: the API's signals --------------------------------------------------------


async def test_console_actions_signal_the_workflows_as_the_api_does(
    live_api: AsyncClient,
    settings: Settings,
    auth: TokenFactory,
    db: Sessions,
    local_temporal: WorkflowEnvironment,
) -> None:
    api = live_api
    batch_id = await new_batch(api, auth, f"partner-{uuid.uuid4().hex[:6]}")
    await fail_one(db, batch_id)
    plan = await new_plan(db, 3_000)
    method = await add_method(db, "cust-live")
    late = await new_subscription(db, plan, customer_id="cust-live", method=method)
    await in_dunning(db, str(late.id))
    csrf = await signed_in(api, settings)
    post = poster(api, csrf)

    retried = await post(f"/admin/transfers/{batch_id}/retry")
    assert retried.status_code == 200, retried.text
    charged = await post(f"/admin/subscriptions/{late.id}/retry-payment")
    assert charged.status_code == 200, charged.text
    assert charged.text.lstrip().startswith(f'<tr id="subscription-{late.id}"')
    assert "every 1s" in charged.text  # the row watches for the workflow's charge
    assert f"Retry payment sent to subscription-{late.id}" in charged.text
    reason = f"end of day {uuid.uuid4().hex[:6]}"
    settled = await post("/admin/transfers/windows/stripe/settle-now", {"reason": reason})
    assert settled.status_code == 200, settled.text
    assert settled.text.lstrip().startswith('<article class="panel window" id="window-stripe"')
    assert "Settle now sent to settlement-window-stripe" in settled.text

    client = local_temporal.client
    assert await signals_of(client, f"transfer-batch-{batch_id}") == [
        ("retry_failed", {"by": "ops_1"})
    ]
    assert await signals_of(client, f"subscription-{late.id}") == [
        ("retry_payment", {"reason": "retried in the admin console by ops_1", "by": "ops_1"})
    ]
    window = await signals_of(client, "settlement-window-stripe")
    assert ("settle_now", {"by": "ops_1", "reason": reason}) in window

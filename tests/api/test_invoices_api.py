"""Invoices over HTTP, in process: read with their lines and charge attempts, looked up and
paged, customers seeing their own; an admin's mark-paid (posted to the ledger) and finalize
signalled to the subscription's workflow, one-off invoices, the preview of the next period
and the bulk retry of failed charges. Billing and failed charges are driven through the
services as the workflow would (no worker runs here); signals are read back from the local
dev server's history."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from domain.actors import SYSTEM
from models.subscriptions import Invoice, InvoiceLine, Plan, Subscription
from services import invoices, ledger, subscriptions
from tests.api.billing import (
    add_method,
    bill,
    count,
    fail_charge,
    in_dunning,
    received,
    status_of,
)
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory
from tests.fixtures.subscriptions import new_plan, new_subscription

URL = "/api/v1/invoices"


async def subscribed(
    db: async_sessionmaker[AsyncSession], customer_id: str, amount: int = 3_000
) -> tuple[Plan, Subscription]:
    method = await add_method(db, customer_id)
    plan = await new_plan(db, amount)
    return plan, await new_subscription(db, plan, customer_id=customer_id, method=method)


def ids(response: Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


async def balances(db: async_sessionmaker[AsyncSession], *codes: str) -> list[int]:
    async with db() as session:
        return [(await ledger.balances(session, code)).get("USD", 0) for code in codes]


async def test_a_billed_period_is_read_with_its_lines_and_attempts(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    plan, sub = await subscribed(db, "cust-1")
    invoice = await in_dunning(db, str(sub.id))
    owner = auth("customer", sub="cust-1")

    read = await api.get(f"{URL}/{invoice.id}", headers=owner)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["object"] == "invoice" and body["number"] == "INV-00000001"
    assert (body["kind"], body["status"], body["currency"]) == ("cycle", "open", "USD")
    assert (body["subscription_id"], body["customer_id"]) == (str(sub.id), "cust-1")
    assert (body["subtotal"], body["total"], body["amount_paid"], body["amount_due"]) == (
        3_000,
        3_000,
        0,
        3_000,
    )
    assert (body["credit_applied"], body["credit_added"], body["paid_out_of_band"]) == (0, 0, False)
    assert datetime.fromisoformat(body["period_start"]) == sub.current_period_start
    assert datetime.fromisoformat(body["period_end"]) == sub.current_period_end
    assert body["finalized_at"] is not None and body["paid_at"] is None
    assert body["attempt_count"] == 1
    first_failure = datetime.fromisoformat(body["due_at"])
    assert datetime.fromisoformat(body["next_payment_attempt"]) - first_failure < timedelta(
        days=1, seconds=5
    )
    [line] = body["lines"]
    assert (line["kind"], line["amount"]) == ("subscription", 3_000)
    assert line["description"].startswith(plan.name)
    [attempt] = body["attempts"]
    assert (attempt["number"], attempt["status"], attempt["amount"]) == (1, "failed", 3_000)
    assert (attempt["failure_code"], attempt["decline_code"]) == (
        "card_declined",
        "insufficient_funds",
    )

    by_number = await api.get(f"{URL}/number/INV-00000001", headers=owner)
    assert by_number.json() == body
    assert (await api.get(f"{URL}/number/INV-99999999", headers=owner)).status_code == 404
    stranger = auth("customer", sub="cust-x")
    hidden = await api.get(f"{URL}/{invoice.id}", headers=stranger)
    assert hidden.status_code == 404 and error_code(hidden) == "resource_missing"
    assert (await api.get(f"{URL}/number/INV-00000001", headers=stranger)).status_code == 404
    assert (await api.get(f"{URL}/{invoice.id}", headers=auth("driver"))).status_code == 403


async def test_invoices_are_looked_up_filtered_and_paged(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    _, mine = await subscribed(db, "cust-2")
    _, theirs = await subscribed(db, "cust-3", 5_000)
    overdue = await in_dunning(db, str(mine.id))
    open_one = await bill(db, theirs.id)
    admin = auth("billing_admin")
    one_off = await api.post(
        URL,
        json={"subscription_id": str(mine.id), "lines": [{"description": "Setup", "amount": 900}]},
        headers=admin,
    )
    assert one_off.status_code == 201, one_off.text
    draft = one_off.json()["id"]
    owner = auth("customer", sub="cust-2")

    assert ids(await api.get(URL, headers=owner)) == [draft, str(overdue.id)]
    listed = await api.get(URL, headers=owner)
    assert [len(item["lines"]) for item in listed.json()["data"]] == [1, 1]
    assert "attempts" not in listed.json()["data"][0]
    assert (await api.get(URL, params={"customer_id": "cust-3"}, headers=owner)).status_code == 403
    assert ids(await api.get(URL, params={"customer_id": "cust-3"}, headers=admin)) == [
        str(open_one.id)
    ]
    assert ids(await api.get(URL, params={"status": "draft"}, headers=admin)) == [draft]
    assert ids(await api.get(URL, params={"subscription_id": str(mine.id)}, headers=admin)) == [
        draft,
        str(overdue.id),
    ]
    assert (await api.get(URL, params={"status": "late"}, headers=admin)).status_code == 400

    assert ids(await api.get(f"{URL}/subscription/{theirs.id}", headers=admin)) == [
        str(open_one.id)
    ]
    assert ids(await api.get(f"{URL}/subscription/{mine.id}", headers=owner)) == [
        draft,
        str(overdue.id),
    ]
    other = await api.get(f"{URL}/subscription/{theirs.id}", headers=owner)
    assert other.status_code == 404

    # Overdue: open, past due, and charged at least once without success.
    assert ids(await api.get(f"{URL}/overdue", headers=admin)) == [str(overdue.id)]
    assert (await api.get(f"{URL}/overdue", headers=owner)).status_code == 403
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    due = await api.get(f"{URL}/due-before", params={"date": tomorrow}, headers=admin)
    assert ids(due) == [str(open_one.id), str(overdue.id)]  # the draft has no due date yet
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert ids(await api.get(f"{URL}/due-before", params={"date": past}, headers=admin)) == []
    missing = await api.get(f"{URL}/due-before", headers=admin)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "date"

    first = await api.get(URL, params={"limit": 2}, headers=admin)
    assert ids(first) == [draft, str(open_one.id)] and first.json()["has_more"] is True
    rest = await api.get(
        URL, params={"limit": 2, "starting_after": first.json()["next_cursor"]}, headers=admin
    )
    assert ids(rest) == [str(overdue.id)] and rest.json()["has_more"] is False
    foreign = await api.get(URL, params={"starting_after": str(open_one.id)}, headers=owner)
    assert foreign.status_code == 400


async def test_mark_paid_posts_to_the_ledger_and_is_signalled(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    _, sub = await subscribed(db, "cust-4")
    invoice = await in_dunning(db, str(sub.id))
    receivable = invoices.receivable_account("cust-4")
    accounts = (receivable, invoices.REVENUE_ACCOUNT, invoices.OUT_OF_BAND_ACCOUNT)
    assert await balances(db, receivable, invoices.REVENUE_ACCOUNT) == [3_000, -3_000]
    path = f"{URL}/{invoice.id}/mark-paid"

    refused = await live_api.post(path, headers=auth("customer", sub="cust-4"))
    assert refused.status_code == 403
    unknown = await live_api.post(path, json={"amount": 3_000}, headers=auth("billing_admin"))
    assert unknown.status_code == 400
    paid = await live_api.post(
        path, json={"note": "bank transfer 2024-118"}, headers=auth("billing_admin", sub="ops-1")
    )
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert (body["status"], body["paid_out_of_band"], body["note"]) == (
        "paid",
        True,
        "bank transfer 2024-118",
    )
    assert (body["amount_paid"], body["amount_due"], body["next_payment_attempt"]) == (
        3_000,
        0,
        None,
    )
    assert body["paid_at"] is not None
    assert await balances(db, *accounts) == [0, -3_000, 3_000]
    assert await status_of(db, str(sub.id)) == "active"  # nothing overdue any more

    again = await live_api.post(path, headers=auth("billing_admin"))
    assert again.status_code == 409 and error_code(again) == "invoice_status"
    assert await balances(db, *accounts) == [0, -3_000, 3_000]
    missing = await live_api.post(f"{URL}/{uuid.uuid4()}/mark-paid", headers=auth("billing_admin"))
    assert missing.status_code == 404

    # In the request, then again once committed (see the router).
    signals = await signals_of(local_temporal.client, f"subscription-{sub.id}")
    changed = {"invoice_id": str(invoice.id), "by": "ops-1"}
    assert signals == [("invoice_changed", changed), ("invoice_changed", changed)]


async def test_the_next_periods_draft_is_finalized_when_its_period_starts(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    _, sub = await subscribed(db, "cust-5")
    await bill(db, sub.id)
    admin = auth("platform_admin", sub="ops-2")
    generate = f"{URL}/subscription/{sub.id}/generate-next"

    assert (
        await live_api.post(generate, headers=auth("customer", sub="cust-5"))
    ).status_code == 403
    made = await live_api.post(generate, headers=admin)
    assert made.status_code == 201, made.text
    draft = made.json()
    assert (draft["status"], draft["number"], draft["kind"]) == ("draft", None, "cycle")
    assert datetime.fromisoformat(draft["period_start"]) == sub.current_period_end
    assert draft["total"] == 3_000 and len(draft["lines"]) == 1
    twice = await live_api.post(generate, headers=admin)
    assert twice.status_code == 409 and error_code(twice) == "invoice_exists"

    finalize = f"{URL}/{draft['id']}/finalize"
    early = await live_api.post(finalize, headers=admin)
    assert early.status_code == 409 and error_code(early) == "invoice_period_not_started"
    assert await received(local_temporal.client, f"subscription-{sub.id}") == []

    async with db() as session, session.begin():  # the period ends: the workflow advances
        await subscriptions.advance_period(session, sub.id, at=sub.current_period_end, actor=SYSTEM)
    assert (
        await live_api.post(finalize, headers=auth("customer", sub="cust-5"))
    ).status_code == 403
    final = await live_api.post(finalize, headers=admin)
    assert final.status_code == 200, final.text
    body = final.json()
    assert (body["status"], body["number"], body["total"]) == ("open", "INV-00000002", 3_000)
    assert body["finalized_at"] is not None and body["amount_due"] == 3_000
    receivable = invoices.receivable_account("cust-5")
    assert await balances(db, receivable, invoices.REVENUE_ACCOUNT) == [6_000, -6_000]
    again = await live_api.post(finalize, headers=admin)
    assert again.status_code == 409 and error_code(again) == "invoice_status"

    changed = {"invoice_id": draft["id"], "by": "ops-2"}
    assert await signals_of(local_temporal.client, f"subscription-{sub.id}") == [
        ("invoice_changed", changed),
        ("invoice_changed", changed),
    ]


async def test_one_off_invoices_are_checked_then_finalized(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    _, sub = await subscribed(db, "cust-6")
    _, gone = await subscribed(db, "cust-7")
    async with db() as session, session.begin():
        await subscriptions.cancel(
            session, gone.id, at=datetime.now(UTC), at_period_end=False, reason="x", actor=SYSTEM
        )
    admin = auth("billing_admin", sub="ops-3")
    lines = [
        {"description": "Setup", "amount": 5_000},
        {"description": "Welcome", "amount": -1_000},
    ]

    cases: list[tuple[dict[str, str], dict[str, Any], int, str]] = [
        (admin, {"lines": []}, 400, "parameter_invalid"),
        (admin, {"lines": [{"description": "Refund", "amount": -500}]}, 400, "validation_failed"),
        (
            admin,
            {"lines": [{"description": "A", "amount": 500}, {"description": "B", "amount": -500}]},
            400,
            "validation_failed",
        ),
        (admin, {"lines": [{"description": "", "amount": 500}]}, 400, "parameter_invalid"),
        (admin, {"lines": [{"description": "A", "amount": 5, "tax": 1}]}, 400, "parameter_invalid"),
        (admin, {"total": 4_000}, 400, "parameter_invalid"),
        (admin, {"subscription_id": str(uuid.uuid4())}, 404, "resource_missing"),
        (admin, {"subscription_id": str(gone.id)}, 409, "subscription_status"),
        (auth("customer", sub="cust-6"), {}, 403, "forbidden"),
    ]
    for headers, changes, status, code in cases:
        body = {"subscription_id": str(sub.id), "lines": lines, **changes}
        response = await live_api.post(URL, json=body, headers=headers)
        assert response.status_code == status, (changes, response.text)
        assert error_code(response) == code, changes
    assert await count(db, Invoice) == 0 and await count(db, InvoiceLine) == 0

    made = await live_api.post(
        URL,
        json={"subscription_id": str(sub.id), "description": "Onboarding", "lines": lines},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    draft = made.json()
    assert (draft["kind"], draft["status"], draft["description"]) == (
        "one_off",
        "draft",
        "Onboarding",
    )
    assert (draft["subtotal"], draft["total"], draft["period_start"]) == (4_000, 4_000, None)
    assert [(line["description"], line["amount"]) for line in draft["lines"]] == [
        ("Setup", 5_000),
        ("Welcome", -1_000),
    ]
    assert draft["attempts"] == []

    final = await live_api.post(f"{URL}/{draft['id']}/finalize", headers=admin)
    assert final.status_code == 200, final.text
    assert (final.json()["status"], final.json()["number"]) == ("open", "INV-00000001")
    signals = await signals_of(local_temporal.client, f"subscription-{sub.id}")
    assert [name for name, _ in signals] == ["invoice_changed", "invoice_changed"]


async def test_failed_charges_are_retried_in_bulk_one_signal_per_subscription(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: WorkflowEnvironment,
) -> None:
    _, first = await subscribed(db, "cust-8")
    _, second = await subscribed(db, "cust-9")
    _, healthy = await subscribed(db, "cust-10")
    first_invoice = await in_dunning(db, str(first.id))
    second_invoice = await in_dunning(db, str(second.id))
    open_invoice = await bill(db, healthy.id)
    async with db() as session, session.begin():  # a second overdue invoice of the first
        extra = await invoices.create_one_off(
            session, first.id, lines=[("Overage", 700)], description=None, actor=SYSTEM
        )
        await invoices.finalize(session, extra.id, at=datetime.now(UTC), actor=SYSTEM)
    await fail_charge(db, extra.id)
    admin = auth("billing_admin", sub="ops-4")
    url = f"{URL}/process-payment-retries"

    assert (await live_api.post(url, headers=auth("customer", sub="cust-8"))).status_code == 403
    too_many = await live_api.post(url, json={"invoice_ids": ["x"] * 501}, headers=admin)
    assert too_many.status_code == 400
    assert (await live_api.post(url, json={"invoice_ids": []}, headers=admin)).status_code == 400

    unknown = str(uuid.uuid4())
    chosen = [str(first_invoice.id), str(open_invoice.id), unknown, "garbage", str(extra.id)]
    answer = await live_api.post(url, json={"invoice_ids": chosen}, headers=admin)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["object"], result["accepted"], result["failed"]) == ("list", 2, 3)
    outcome = {
        item["id"]: (item["status"], (item["error"] or {}).get("code")) for item in result["data"]
    }
    assert outcome == {
        str(first_invoice.id): ("accepted", None),
        str(open_invoice.id): ("error", "invoice_not_retryable"),
        unknown: ("error", "resource_missing"),
        "garbage": ("error", "validation_failed"),
        str(extra.id): ("accepted", None),  # the same subscription: signalled once
    }
    retry = {"reason": "bulk retry", "by": "ops-4"}
    client = local_temporal.client
    assert await signals_of(client, f"subscription-{first.id}") == [("retry_payment", retry)]

    every = await live_api.post(url, headers=admin)  # no body: every failed open invoice
    assert every.status_code == 200
    assert sorted(item["id"] for item in every.json()["data"]) == sorted(
        [str(first_invoice.id), str(second_invoice.id), str(extra.id)]
    )
    assert every.json()["accepted"] == 3
    assert await signals_of(client, f"subscription-{first.id}") == [("retry_payment", retry)] * 2
    assert await signals_of(client, f"subscription-{second.id}") == [("retry_payment", retry)]

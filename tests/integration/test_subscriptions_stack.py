"""Subscriptions on the embedded stack, through HTTP: the first invoice paid by the real worker
at the Stripe sandbox (one charge, under the attempt's key, posted to the ledger); a declined
card that makes the subscription past due until the customer adds a new default card, which
retries the charge at once; and a pause then resume reaching the workflow."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from devstack.ephemeral import RunningStack
from models.engine import make_engine, make_sessionmaker
from models.ledger import LedgerTransaction
from tests.api.conftest import signals_of
from tests.conftest import TokenFactory
from tests.fixtures.waiting import until
from tests.integration.conftest import Names

pytestmark = pytest.mark.integration

PRICE = 2_500


@pytest.fixture
async def db(embedded: RunningStack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(embedded.settings.sqlalchemy_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def sandbox(embedded: RunningStack) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=str(embedded.settings.stripe_api_base), timeout=10) as client:
        yield client


@pytest.fixture
async def plan_id(stack_api: AsyncClient, auth: TokenFactory, n: Names) -> str:
    created = await stack_api.post(
        "/api/v1/plans",
        json={"name": n("monthly"), "amount": PRICE, "currency": "USD", "interval": "month"},
        headers=auth("billing_admin", sub="ops-plans"),
    )
    assert created.status_code == 201, created.text
    plan: str = created.json()["id"]
    return plan


async def add_card(
    api: AsyncClient, auth: TokenFactory, customer: str, *, set_default: bool = False
) -> dict[str, Any]:
    """A Visa test card added by the customer itself (its first becomes the default)."""
    added = await api.post(
        "/api/v1/payment-methods",
        json={"token": "pm_card_visa", "set_default": set_default},
        headers=auth("customer", sub=customer),
    )
    assert added.status_code == 201, added.text
    method: dict[str, Any] = added.json()
    return method


async def subscribe(
    api: AsyncClient, auth: TokenFactory, customer: str, plan_id: str
) -> dict[str, Any]:
    created = await api.post(
        "/api/v1/subscriptions", json={"plan_id": plan_id}, headers=auth("customer", sub=customer)
    )
    assert created.status_code == 201, created.text
    subscription: dict[str, Any] = created.json()
    assert subscription["status"] == "active"
    return subscription


async def subscription_reaches(
    api: AsyncClient, auth: TokenFactory, subscription_id: str, status: str
) -> dict[str, Any]:
    admin = auth("billing_admin")

    async def check() -> dict[str, Any] | None:
        found: dict[str, Any] = (
            await api.get(f"/api/v1/subscriptions/{subscription_id}", headers=admin)
        ).json()
        return found if found["status"] == status else None

    return await until(check, f"subscription {subscription_id} {status}")


async def only_invoice(
    api: AsyncClient, auth: TokenFactory, subscription_id: str, *statuses: str
) -> dict[str, Any]:
    """The subscription's one invoice, with its attempts, once in one of ``statuses``."""
    admin = auth("billing_admin")

    async def check() -> dict[str, Any] | None:
        listed = await api.get(f"/api/v1/invoices/subscription/{subscription_id}", headers=admin)
        rows: list[dict[str, Any]] = listed.json()["data"]
        assert len(rows) <= 1, rows
        if not rows or rows[0]["status"] not in statuses:
            return None
        detail: dict[str, Any] = (
            await api.get(f"/api/v1/invoices/{rows[0]['id']}", headers=admin)
        ).json()
        return detail

    return await until(check, f"the invoice of {subscription_id} {statuses}")


async def charges_of(sandbox: AsyncClient, invoice_id: str) -> list[dict[str, Any]]:
    """Every charge the sandbox made for the invoice, whatever the attempt."""
    moved = await sandbox.get("/_sandbox/movements", params={"kind": "charge"})
    rows: list[dict[str, Any]] = moved.json()["data"]
    return [
        row for row in rows if (row["idempotency_key"] or "").startswith(f"invoice-{invoice_id}-")
    ]


async def paid_postings(db: async_sessionmaker[AsyncSession], invoice_id: str) -> int:
    async with db() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.external_ref == f"invoice-{invoice_id}-paid")
        )
    return int(count or 0)


async def test_the_first_invoice_is_charged_once_by_the_worker_and_posted(
    stack_api: AsyncClient,
    auth: TokenFactory,
    n: Names,
    plan_id: str,
    sandbox: AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    customer = n("subscriber")
    card = await add_card(stack_api, auth, customer)
    subscription = await subscribe(stack_api, auth, customer, plan_id)

    invoice = await only_invoice(stack_api, auth, subscription["id"], "paid")

    assert (invoice["total"], invoice["amount_paid"], invoice["amount_due"]) == (PRICE, PRICE, 0)
    assert invoice["period_start"] is not None and invoice["number"].startswith("INV-")
    [attempt] = invoice["attempts"]
    assert (attempt["number"], attempt["status"], attempt["trigger"]) == (
        1,
        "succeeded",
        "invoice finalized",
    )
    assert attempt["payment_method_id"] == card["id"]
    [charge] = await charges_of(sandbox, invoice["id"])
    assert charge["idempotency_key"] == f"invoice-{invoice['id']}-attempt-1"
    assert charge["amount"] == PRICE
    assert charge["related"]["payment_intent"] == attempt["stripe_payment_intent_id"]
    assert await paid_postings(db, invoice["id"]) == 1
    current = await subscription_reaches(stack_api, auth, subscription["id"], "active")
    assert current["current_period_start"] == invoice["period_start"]


async def test_a_declined_charge_is_retried_at_once_when_the_customer_adds_a_default_card(
    stack_api: AsyncClient,
    auth: TokenFactory,
    n: Names,
    plan_id: str,
    sandbox: AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    customer = n("decliner")
    old = await add_card(stack_api, auth, customer)
    # The card declines for a while yet: only the new card can pay the retry.
    scripted = await sandbox.post(
        f"/_sandbox/payment_methods/{old['stripe_payment_method_id']}/declines",
        json={"count": 10, "card": "pm_card_chargeDeclinedInsufficientFunds"},
    )
    assert scripted.status_code == 200, scripted.text
    subscription = await subscribe(stack_api, auth, customer, plan_id)

    await subscription_reaches(stack_api, auth, subscription["id"], "past_due")
    failed = await only_invoice(stack_api, auth, subscription["id"], "open")
    [first] = failed["attempts"]
    assert (first["status"], first["failure_code"], first["decline_code"]) == (
        "failed",
        "card_declined",
        "insufficient_funds",
    )
    assert failed["next_payment_attempt"] is not None  # the dunning retry, a day later
    assert await charges_of(sandbox, failed["id"]) == []

    new = await add_card(stack_api, auth, customer, set_default=True)
    assert new["is_default"]

    await subscription_reaches(stack_api, auth, subscription["id"], "active")
    invoice = await only_invoice(stack_api, auth, subscription["id"], "paid")
    assert invoice["id"] == failed["id"]
    assert [(a["number"], a["status"]) for a in invoice["attempts"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    retry = invoice["attempts"][1]
    assert retry["trigger"].startswith("retry"), retry["trigger"]
    assert retry["payment_method_id"] == new["id"]
    [charge] = await charges_of(sandbox, invoice["id"])
    assert charge["idempotency_key"] == f"invoice-{invoice['id']}-attempt-2"
    assert charge["amount"] == PRICE
    assert await paid_postings(db, invoice["id"]) == 1


async def test_pause_and_resume_reach_the_workflow(
    stack_api: AsyncClient,
    auth: TokenFactory,
    n: Names,
    plan_id: str,
    sandbox: AsyncClient,
    stack_temporal: Client,
) -> None:
    customer = n("pauser")
    await add_card(stack_api, auth, customer)
    subscription = await subscribe(stack_api, auth, customer, plan_id)
    invoice = await only_invoice(stack_api, auth, subscription["id"], "paid")
    await subscription_reaches(stack_api, auth, subscription["id"], "active")
    own = auth("customer", sub=customer)
    handle = stack_temporal.get_workflow_handle(subscription["workflow_id"])

    paused = await stack_api.post(
        f"/api/v1/subscriptions/{subscription['id']}/pause",
        json={"reason": "travelling"},
        headers=own,
    )
    assert paused.status_code == 202, paused.text
    assert paused.json()["pending_operation"] == "pause"
    await subscription_reaches(stack_api, auth, subscription["id"], "paused")
    assert (await handle.query("status"))["status"] == "paused"

    resumed = await stack_api.post(
        f"/api/v1/subscriptions/{subscription['id']}/resume", headers=own
    )
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["pending_operation"] == "resume"
    current = await subscription_reaches(stack_api, auth, subscription["id"], "active")
    assert (await handle.query("status"))["status"] == "active"

    # Resumed inside the period already paid: the same period, nothing billed again.
    assert current["current_period_start"] == invoice["period_start"]
    again = await only_invoice(stack_api, auth, subscription["id"], "paid")
    assert again["id"] == invoice["id"] and len(again["attempts"]) == 1
    assert len(await charges_of(sandbox, invoice["id"])) == 1
    names = [name for name, _ in await signals_of(stack_temporal, subscription["workflow_id"])]
    assert names == ["pause", "resume"]
    refused = await stack_api.post(
        f"/api/v1/subscriptions/{subscription['id']}/resume", headers=own
    )
    assert refused.status_code == 409, refused.text

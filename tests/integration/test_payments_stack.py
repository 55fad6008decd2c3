"""Payments on the embedded stack, through HTTP: a declined test card, 20 concurrent partial
refunds whose sum exceeds the capture (the ledger and the Stripe sandbox agree on what was
refunded), a Stripe webhook replayed 5 times, a forged one, and a customer trying to capture."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from devstack.ephemeral import RunningStack
from models.engine import make_engine, make_sessionmaker
from models.ledger import LedgerPosting, LedgerTransaction
from models.payments import StripeEvent
from tests.api.conftest import signals_of
from tests.conftest import TokenFactory
from tests.fixtures.waiting import until
from tests.integration.conftest import Names

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(embedded: RunningStack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(embedded.settings.sqlalchemy_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def pay(
    api: AsyncClient, auth: TokenFactory, customer: str, token: str, amount: int
) -> dict[str, Any]:
    """A card added for ``customer``, and a payment of ``amount`` with it."""
    admin = auth("billing_admin", sub="ops-pay")
    method = await api.post(
        "/api/v1/payment-methods", json={"customer_id": customer, "token": token}, headers=admin
    )
    assert method.status_code == 201, method.text
    created = await api.post(
        "/api/v1/payments",
        json={"customer_id": customer, "amount": amount, "currency": "USD", "order_id": customer},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    payment: dict[str, Any] = created.json()
    return payment


async def reaches(
    api: AsyncClient, auth: TokenFactory, payment_id: str, *statuses: str
) -> dict[str, Any]:
    admin = auth("billing_admin")

    async def check() -> dict[str, Any] | None:
        payment: dict[str, Any] = (
            await api.get(f"/api/v1/payments/{payment_id}", headers=admin)
        ).json()
        return payment if payment["status"] in statuses else None

    return await until(check, f"payment {payment_id} {statuses}")


async def test_a_declined_card_ends_the_payment_failed_with_the_decline_code(
    stack_api: AsyncClient, auth: TokenFactory, n: Names
) -> None:
    payment = await pay(
        stack_api, auth, n("declined"), "pm_card_chargeDeclinedInsufficientFunds", 2_500
    )

    failed = await reaches(stack_api, auth, payment["id"], "failed", "completed", "authorized")

    assert failed["status"] == "failed"
    assert (failed["failure_code"], failed["decline_code"]) == (
        "card_declined",
        "insufficient_funds",
    )
    assert failed["amount_captured"] == 0


async def test_concurrent_partial_refunds_never_exceed_the_capture(
    stack_api: AsyncClient,
    auth: TokenFactory,
    n: Names,
    embedded: RunningStack,
    db: async_sessionmaker[AsyncSession],
) -> None:
    customer = n("refunds")
    payment = await pay(stack_api, auth, customer, "pm_card_visa", 10_000)
    await reaches(stack_api, auth, payment["id"], "authorized")
    admin = auth("billing_admin", sub="ops-refunds")
    capture = await stack_api.post(f"/api/v1/payments/{payment['id']}/capture", headers=admin)
    assert capture.status_code == 202, capture.text
    completed = await reaches(stack_api, auth, payment["id"], "completed")
    intent = completed["stripe_payment_intent_id"]

    # 20 refunds of 700 at once: 14 fit in the 10,000 captured (9,800), 6 do not.
    answers = await asyncio.gather(
        *(
            stack_api.post(
                "/api/v1/refunds",
                json={"payment_id": payment["id"], "amount": 700},
                headers=admin,
            )
            for _ in range(20)
        )
    )
    accepted = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    refused = [answer for answer in answers if answer.status_code != 201]
    assert len(accepted) == 14
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {
        (409, "refund_exceeds_captured")
    }

    async def all_done() -> list[dict[str, Any]] | None:
        listed = await stack_api.get(
            f"/api/v1/refunds/payment/{payment['id']}", params={"limit": 100}, headers=admin
        )
        rows: list[dict[str, Any]] = listed.json()["data"]
        return rows if all(row["status"] == "completed" for row in rows) else None

    refunds = await until(all_done, "the refunds to complete")
    assert sorted(row["id"] for row in refunds) == sorted(accepted)
    final = await reaches(stack_api, auth, payment["id"], "completed")
    assert (final["amount_refunded"], final["amount_refund_pending"]) == (9_800, 0)

    sandbox = embedded.settings.stripe_api_base
    async with AsyncClient(base_url=str(sandbox), timeout=10) as client:
        moved = (await client.get("/_sandbox/movements", params={"kind": "refund"})).json()["data"]
    ours = [row for row in moved if row["related"].get("payment_intent") == intent]
    assert sum(row["amount"] for row in ours) == 9_800
    assert sorted(row["idempotency_key"] for row in ours) == sorted(f"refund-{i}" for i in accepted)

    async with db() as session:
        posted = await session.scalar(
            select(func.sum(LedgerPosting.amount))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
            .where(
                LedgerTransaction.external_ref.in_([f"refund-{i}" for i in accepted]),
                LedgerPosting.amount > 0,
            )
        )
    assert posted == 9_800


def signed(payload: bytes, secret: str) -> dict[str, str]:
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{payload.decode()}", secret
    )
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


async def test_a_webhook_replayed_five_times_is_processed_once_and_a_forged_one_is_refused(
    stack_api: AsyncClient,
    auth: TokenFactory,
    n: Names,
    embedded: RunningStack,
    stack_temporal: Client,
    db: async_sessionmaker[AsyncSession],
) -> None:
    payment = await pay(stack_api, auth, n("webhooks"), "pm_card_visa", 3_000)
    authorized = await reaches(stack_api, auth, payment["id"], "authorized")
    event_id = f"evt_{uuid.uuid4().hex[:24]}"
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2025-01-27.acacia",
        "data": {
            "object": {
                "id": authorized["stripe_payment_intent_id"],
                "object": "payment_intent",
                "status": "requires_capture",
                "metadata": {"tollgate_payment_id": payment["id"]},
            }
        },
    }
    payload = json.dumps(event).encode()
    secret = embedded.settings.stripe_webhook_secret

    forged = await stack_api.post(
        "/api/v1/webhooks/stripe", content=payload, headers=signed(payload, "whsec_forged")
    )
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "webhook_signature_invalid"
    async with db() as session:
        assert await session.get(StripeEvent, event_id) is None

    answers = [
        await stack_api.post(
            "/api/v1/webhooks/stripe", content=payload, headers=signed(payload, secret)
        )
        for _ in range(5)
    ]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert [answer.json()["duplicate"] for answer in answers] == [False] + [True] * 4

    async def processed() -> StripeEvent | None:
        async with db() as session:
            row = await session.get(StripeEvent, event_id)
        return row if row is not None and row.status == "processed" else None

    await until(processed, "the event to be processed")
    signals = await signals_of(stack_temporal, payment["workflow_id"])
    delivered = [
        arg for name, arg in signals if name == "stripe_event" and arg["event_id"] == event_id
    ]
    assert len(delivered) == 1


async def test_a_customer_cannot_capture_its_payment(
    stack_api: AsyncClient, auth: TokenFactory, n: Names
) -> None:
    customer = n("capturer")
    payment = await pay(stack_api, auth, customer, "pm_card_visa", 1_500)
    await reaches(stack_api, auth, payment["id"], "authorized")

    refused = await stack_api.post(
        f"/api/v1/payments/{payment['id']}/capture", headers=auth("customer", sub=customer)
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    still = await reaches(stack_api, auth, payment["id"], "authorized")
    assert still["amount_captured"] == 0

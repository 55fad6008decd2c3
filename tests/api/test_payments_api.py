"""Payments, refunds and fraud checks over HTTP, in process. Payment methods are stored
directly (no Stripe needed to create a payment); the steps a workflow would take are driven
through the services, and the API's signals are read from the local dev server's history."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM
from domain.fraud import Assessment, RiskLevel
from integrations.stripe_customers import CardDetails
from models.payments import Payment, PaymentMethod, Refund
from services import fraud_checks, payment_methods, payments
from tests.api.conftest import error_code, signals_of
from tests.conftest import TokenFactory

URL = "/api/v1/payments"


async def add_method(db: async_sessionmaker[AsyncSession], customer_id: str) -> PaymentMethod:
    pm = f"pm_{uuid.uuid4().hex[:16]}"
    async with db() as session, session.begin():
        await payment_methods.save_stripe_customer(session, customer_id, f"cus_{customer_id}")
        return await payment_methods.add(
            session,
            customer_id=customer_id,
            stripe_customer_id=f"cus_{customer_id}",
            card=CardDetails(pm, "card", "visa", "4242", 12, 2031, "US", pm[-16:]),
            make_default=True,
            actor=SYSTEM,
        )


async def create(api: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await api.post(
        URL, json={"amount": 10_000, "currency": "USD", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def count(db: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def drive_to(
    db: async_sessionmaker[AsyncSession], payment_id: str, status: str, amount: int = 10_000
) -> None:
    """Moves the payment as its workflow would (the workflow does not run here)."""
    pid = uuid.UUID(payment_id)
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        await payments.start_authorizing(session, pid, actor=SYSTEM)
        await payments.mark_authorized(
            session,
            pid,
            intent_id=f"pi_{pid.hex[:20]}",
            charge_id=f"ch_{pid.hex[:20]}",
            amount=amount,
            authorized_at=now,
            expires_at=now + timedelta(days=7),
            actor=SYSTEM,
        )
        if status == "completed":
            await payments.start_capture(session, pid, actor=SYSTEM)
            await payments.complete(
                session, pid, amount_captured=amount, charge_id=None, actor=SYSTEM
            )


async def test_a_customer_creates_a_split_payment_for_itself(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    method = await add_method(db, "cust-1")
    payment = await create(
        api,
        auth("customer", sub="cust-1"),
        order_id="order-7",
        allocations=[
            {"vendor_id": "vendor-a", "amount": 6_000, "commission_bps": 1_000},
            {"vendor_id": "vendor-b", "amount": 3_000},
        ],
    )

    assert payment["status"] == "pending"
    assert payment["number"].startswith("PAY-")
    assert payment["payment_method_id"] == str(method.id)
    assert payment["workflow_id"] == f"payment-{payment['id']}"
    lines = {line["vendor_id"]: line for line in payment["splits"]}
    assert lines["vendor-a"]["amount"] == 5_400
    assert lines["vendor-b"]["amount"] == 2_700  # the default commission: 10 %
    assert lines[None]["amount"] == 1_900  # commissions plus the unallocated 1,000
    assert sum(line["amount"] for line in payment["splits"]) == 10_000


async def test_a_vendors_commission_comes_from_the_rule_that_applies_unless_given(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    await add_method(db, "cust-rules")
    admin = auth("platform_admin")
    for rule in (
        {"scope": "vendor", "vendor_id": "vendor-a", "percentage_bps": 500, "fixed_amount": 30},
        {"scope": "category", "category": "books", "percentage_bps": 200},
    ):
        created = await api.post(
            "/api/v1/commission-rules", json={**rule, "currency": "USD"}, headers=admin
        )
        assert created.status_code == 201, created.text

    payment = await create(
        api,
        auth("customer", sub="cust-rules"),
        allocations=[
            {"vendor_id": "vendor-a", "amount": 6_000},  # its own rule: 5 % + 30
            {"vendor_id": "vendor-b", "amount": 2_000, "category": "books"},  # 2 %
            {"vendor_id": "vendor-c", "amount": 1_000},  # no rule: the default 10 %
            {"vendor_id": "vendor-d", "amount": 500, "commission_bps": 0},  # as given
        ],
    )

    commission = {line["vendor_id"]: line["commission"] for line in payment["splits"]}
    assert {
        vendor: commission[vendor] for vendor in ("vendor-a", "vendor-b", "vendor-c", "vendor-d")
    } == {
        "vendor-a": 330,
        "vendor-b": 40,
        "vendor-c": 100,
        "vendor-d": 0,
    }
    assert sum(line["amount"] for line in payment["splits"]) == 10_000


async def test_bad_payments_are_refused_and_store_nothing(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    await add_method(db, "cust-2")
    customer = auth("customer", sub="cust-2")
    cases: list[tuple[dict[str, str], dict[str, Any], int, str | None]] = [
        (customer, {"amount": -5}, 400, None),
        (customer, {"amount": 0}, 400, None),
        (customer, {"currency": "XYZ"}, 400, "invalid_currency"),
        (customer, {"card_number": "4242424242424242"}, 400, None),
        (customer, {"allocations": [{"vendor_id": "v", "amount": 20_000}]}, 400, None),
        (customer, {"country": "USA"}, 400, None),
        (customer, {"customer_id": "someone-else"}, 403, "forbidden"),
        (customer, {"payment_method_id": str(uuid.uuid4())}, 404, None),
        (auth("driver", sub="cust-2"), {}, 403, "forbidden"),
        (auth("billing_admin"), {}, 400, "validation_failed"),
        (auth("billing_admin"), {"customer_id": "nobody"}, 400, "payment_method_required"),
    ]
    for headers, changes, status, code in cases:
        body = {"amount": 10_000, "currency": "USD", **changes}
        response = await api.post(URL, json=body, headers=headers)
        assert response.status_code == status, (changes, response.text)
        assert "error" in response.json()
        if code:
            assert error_code(response) == code, changes
        assert "4242424242424242" not in response.text
    assert await count(db, Payment) == 0


async def test_capture_is_for_admins_and_only_of_an_authorized_payment(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: Any,
) -> None:
    await add_method(db, "cust-3")
    customer = auth("customer", sub="cust-3")
    payment = await create(live_api, customer)
    capture = f"{URL}/{payment['id']}/capture"

    forbidden = await live_api.put(capture, headers=customer)
    assert forbidden.status_code == 403 and error_code(forbidden) == "forbidden"
    admin = auth("billing_admin", sub="ops-1")
    too_early = await live_api.put(capture, headers=admin)
    assert too_early.status_code == 409 and error_code(too_early) == "state_conflict"

    await drive_to(db, payment["id"], "authorized")
    too_much = await live_api.put(capture, json={"amount": 10_001}, headers=admin)
    assert too_much.status_code == 400 and error_code(too_much) == "amount_too_large"
    accepted = await live_api.put(capture, json={"amount": 4_000}, headers=admin)
    assert accepted.status_code == 202, accepted.text

    signals = await signals_of(local_temporal.client, payment["workflow_id"])
    assert [(name, arg["amount"], arg["by"]) for name, arg in signals] == [
        ("capture", 4_000, "ops-1")
    ]


async def test_cancel_by_the_owner_and_fail_by_an_admin_are_signalled(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: Any,
) -> None:
    await add_method(db, "cust-4")
    owner = auth("customer", sub="cust-4")
    first = await create(live_api, owner)
    second = await create(live_api, owner)

    stranger = await live_api.put(
        f"{URL}/{first['id']}/cancel", json={"reason": "x"}, headers=auth("customer", sub="c-9")
    )
    assert stranger.status_code == 403
    blank = await live_api.put(f"{URL}/{first['id']}/cancel", json={"reason": " "}, headers=owner)
    assert blank.status_code == 400
    cancelled = await live_api.put(
        f"{URL}/{first['id']}/cancel", json={"reason": "changed my mind"}, headers=owner
    )
    assert cancelled.status_code == 202, cancelled.text
    not_owner_fail = await live_api.put(
        f"{URL}/{second['id']}/fail", json={"reason": "x"}, headers=owner
    )
    assert not_owner_fail.status_code == 403
    failed = await live_api.put(
        f"{URL}/{second['id']}/fail", json={"reason": "stock"}, headers=auth("platform_admin")
    )
    assert failed.status_code == 202

    assert [name for name, _ in await signals_of(local_temporal.client, first["workflow_id"])] == [
        "cancel"
    ]
    assert [name for name, _ in await signals_of(local_temporal.client, second["workflow_id"])] == [
        "fail"
    ]


async def test_lookups_by_number_transaction_order_customer_and_status(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    await add_method(db, "cust-5")
    await add_method(db, "cust-6")
    owner = auth("customer", sub="cust-5")
    mine = await create(api, owner, order_id="order-5")
    other = await create(api, auth("customer", sub="cust-6"), order_id="order-5")
    await drive_to(db, mine["id"], "authorized")
    admin = auth("billing_admin")

    by_number = await api.get(f"{URL}/number/{mine['number']}", headers=owner)
    assert by_number.json()["id"] == mine["id"]
    intent = f"pi_{uuid.UUID(mine['id']).hex[:20]}"
    by_intent = await api.get(f"{URL}/transaction/{intent}", headers=admin)
    assert by_intent.json()["id"] == mine["id"]
    order = await api.get(f"{URL}/order/order-5", headers=admin)
    assert {item["id"] for item in order.json()["data"]} == {mine["id"], other["id"]}
    own_order = await api.get(f"{URL}/order/order-5", headers=owner)
    assert [item["id"] for item in own_order.json()["data"]] == [mine["id"]]
    by_status = await api.get(f"{URL}/status/authorized", headers=admin)
    assert [item["id"] for item in by_status.json()["data"]] == [mine["id"]]
    customer = await api.get(f"{URL}/customer/cust-6", headers=admin)
    assert [item["id"] for item in customer.json()["data"]] == [other["id"]]

    assert (await api.get(f"{URL}/customer/cust-6", headers=owner)).status_code == 403
    hidden = await api.get(f"{URL}/{other['id']}", headers=owner)
    assert hidden.status_code == 404
    assert (await api.get(f"{URL}/number/PAY-99999999", headers=admin)).status_code == 404
    assert (await api.get(f"{URL}/status/bogus", headers=admin)).status_code == 400
    assert (await api.get(f"{URL}/status/authorized", headers=owner)).status_code == 403
    page = await api.get(URL, params={"limit": 1}, headers=admin)
    assert page.json()["has_more"] is True
    rest = await api.get(
        URL, params={"limit": 1, "starting_after": page.json()["next_cursor"]}, headers=admin
    )
    assert rest.json()["data"][0]["id"] != page.json()["data"][0]["id"]


async def test_refunds_reserve_the_capture_and_wait_for_approval_above_the_threshold(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: Any,
) -> None:
    await add_method(db, "cust-7")
    owner = auth("customer", sub="cust-7")
    payment = await create(live_api, owner, amount=100_000)
    pending = await live_api.post(
        "/api/v1/refunds", json={"payment_id": payment["id"]}, headers=owner
    )
    assert pending.status_code == 409 and error_code(pending) == "state_conflict"
    await drive_to(db, payment["id"], "completed", amount=100_000)

    small = await live_api.post(
        "/api/v1/refunds", json={"payment_id": payment["id"], "amount": 4_000}, headers=owner
    )
    assert small.status_code == 201, small.text
    assert small.json()["status"] == "processing"
    assert small.json()["number"].startswith("RFD-")
    too_much = await live_api.post(
        "/api/v1/refunds", json={"payment_id": payment["id"], "amount": 96_001}, headers=owner
    )
    assert too_much.status_code == 409
    assert error_code(too_much) == "refund_exceeds_captured"
    assert await count(db, Refund) == 1

    admin = auth("billing_admin", sub="ops-2")
    # The rest is above the approval threshold (50,000 by default): it waits for an admin.
    big = await live_api.post("/api/v1/refunds", json={"payment_id": payment["id"]}, headers=owner)
    assert big.status_code == 201
    assert (big.json()["status"], big.json()["amount"]) == ("pending_approval", 96_000)
    refund_id = big.json()["id"]

    assert (
        await live_api.post(f"/api/v1/refunds/{refund_id}/approve", headers=owner)
    ).status_code == 403
    approved = await live_api.post(f"/api/v1/refunds/{refund_id}/approve", headers=admin)
    assert approved.status_code == 202
    small_approve = await live_api.post(
        f"/api/v1/refunds/{small.json()['id']}/approve", headers=admin
    )
    assert small_approve.status_code == 409
    signals = await signals_of(local_temporal.client, f"refund-{refund_id}")
    assert [(name, arg["by"]) for name, arg in signals] == [("approve", "ops-2")]

    listed = await live_api.get(f"/api/v1/refunds/payment/{payment['id']}", headers=owner)
    assert {item["id"] for item in listed.json()["data"]} == {refund_id, small.json()["id"]}
    number = await live_api.get(f"/api/v1/refunds/number/{big.json()['number']}", headers=admin)
    assert number.json()["id"] == refund_id
    others = await live_api.get(
        f"/api/v1/refunds/{refund_id}", headers=auth("customer", sub="cust-x")
    )
    assert others.status_code == 404


async def test_fraud_checks_are_listed_reviewed_and_averaged(
    live_api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    local_temporal: Any,
) -> None:
    method = await add_method(db, "cust-8")
    owner = auth("customer", sub="cust-8")
    first = await create(live_api, owner)
    second = await create(live_api, owner)
    async with db() as session, session.begin():
        for created, score, level in ((first, 45, RiskLevel.MEDIUM), (second, 10, RiskLevel.LOW)):
            payment = await payments.get(session, uuid.UUID(created["id"]), for_update=True)
            await fraud_checks.record_assessment(
                session, payment, method, Assessment(score, level, ()), actor=SYSTEM
            )
    admin = auth("billing_admin", sub="rev-1")

    assert (await live_api.get("/api/v1/fraud-checks", headers=owner)).status_code == 403
    review = await live_api.get("/api/v1/fraud-checks/status/pending_review", headers=admin)
    [check] = review.json()["data"]
    assert (check["payment_id"], check["risk_level"]) == (first["id"], "MEDIUM")
    medium = await live_api.get("/api/v1/fraud-checks/risk-level/MEDIUM", headers=admin)
    assert [item["id"] for item in medium.json()["data"]] == [check["id"]]
    average = await live_api.get(
        "/api/v1/fraud-checks/customer/cust-8/average-risk-score", headers=admin
    )
    assert average.json() == {
        "object": "average_risk_score",
        "customer_id": "cust-8",
        "average_score": 27.5,
        "checks": 2,
    }

    bad = await live_api.put(
        f"/api/v1/fraud-checks/{check['id']}/review", json={"decision": "maybe"}, headers=admin
    )
    assert bad.status_code == 400
    decided = await live_api.put(
        f"/api/v1/fraud-checks/{check['id']}/review",
        json={"decision": "approve", "notes": "known buyer"},
        headers=admin,
    )
    assert decided.status_code == 202, decided.text
    signals = await signals_of(local_temporal.client, first["workflow_id"])
    assert [(name, arg["notes"], arg["by"]) for name, arg in signals] == [
        ("approve_review", "known buyer", "rev-1")
    ]
    low = await live_api.get("/api/v1/fraud-checks/risk-level/LOW", headers=admin)
    low_id = low.json()["data"][0]["id"]
    not_pending = await live_api.put(
        f"/api/v1/fraud-checks/{low_id}/review", json={"decision": "reject"}, headers=admin
    )
    assert not_pending.status_code == 409

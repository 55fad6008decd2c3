"""The objects the security tests act on, made once for the
security tests: owned by ``cus_a`` (a
customer and passenger), ``drv_a`` (the assigned driver) and ``ven_a`` (a vendor), with
``cus_b`` holding a card too. Temporal is down, so rows whose API creation would need it are
written through the services."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import Actor, Role
from integrations import ticket_keys
from models.payments import Payment, Refund
from services import tickets
from settings import Settings
from tests.api.billing import add_method, bill
from tests.conftest import token_headers as bearer

NOW = datetime.now(UTC)


@dataclass
class World:
    """Objects owned by cus_a (the customer and passenger), drv_a (the driver) and ven_a
    (the vendor), made once for the module."""

    method_id: str = ""
    payment_id: str = ""
    payment_number: str = ""
    intent_id: str = ""
    order_id: str = ""
    refund_id: str = ""
    refund_number: str = ""
    plan_id: str = ""
    other_plan_id: str = ""
    subscription_id: str = ""
    invoice_id: str = ""
    invoice_number: str = ""
    ticket_id: str = ""
    market_id: str = ""
    commitment_id: str = ""
    settlement_id: str = ""
    rule_id: str = ""
    # Ids a non-admin may find in an answer only if it is one of these callers.
    private: dict[str, frozenset[str]] = field(default_factory=dict)

    def path_values(self) -> dict[str, str]:
        placeholder = str(uuid.uuid4())
        return {
            "code": "cash",
            "txn_id": placeholder,
            "ticket_id": self.ticket_id,
            "batch_id": placeholder,
            "hold_id": placeholder,
            "schedule_id": placeholder,
            "placement_id": "placement-matrix",
            "user_id": "cus_a",
            "market_id": self.market_id,
            "commitment_id": self.commitment_id,
            "customer_id": "cus_a",
            "method_type": "card",
            "method_id": self.method_id,
            "order_id": self.order_id,
            "number": self.payment_number,
            "refund_number": self.refund_number,
            "invoice_number": self.invoice_number,
            "transaction_id": self.intent_id,
            "payment_id": self.payment_id,
            "refund_id": self.refund_id,
            "risk_level": "LOW",
            "check_id": placeholder,
            "plan_id": self.plan_id,
            "other_plan_id": self.other_plan_id,
            "subscription_id": self.subscription_id,
            "invoice_id": self.invoice_id,
            "event_id": "evt_matrix",
            "endpoint_id": placeholder,
            "delivery_id": placeholder,
            "rule_id": self.rule_id,
            "vendor_id": "ven_a",
            "settlement_id": self.settlement_id,
            "transfer_id": placeholder,
            "rail": "stripe",
            "run_id": placeholder,
            "discrepancy_id": placeholder,
        }


def created(response: Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def build_world(
    api: AsyncClient, settings: Settings, db: async_sessionmaker[AsyncSession]
) -> World:
    w = World()
    admin = bearer(settings, Role.PLATFORM_ADMIN, "ops_platform")
    cus_a = bearer(settings, Role.CUSTOMER, "cus_a")
    method = await add_method(db, "cus_a")
    w.method_id = str(method.id)
    await add_method(db, "cus_b")
    w.order_id = "order-matrix-a"
    payment = created(
        await api.post(
            "/api/v1/payments",
            json={
                "amount": 5_000,
                "currency": "USD",
                "payment_method_id": w.method_id,
                "order_id": w.order_id,
                "allocations": [{"vendor_id": "ven_a", "amount": 4_000}],
            },
            headers=cus_a,
        )
    )
    w.payment_id, w.payment_number = payment["id"], payment["number"]
    w.intent_id = f"pi_matrix_{uuid.uuid4().hex[:12]}"
    async with db() as session, session.begin():
        await session.execute(
            update(Payment)
            .where(Payment.id == uuid.UUID(w.payment_id))
            .values(stripe_payment_intent_id=w.intent_id)
        )
        refund = Refund(
            number=f"RFD-M{uuid.uuid4().hex[:8].upper()}",
            payment_id=uuid.UUID(w.payment_id),
            amount=1_000,
            currency="USD",
            reason="requested_by_customer",
            status="processing",
            requested_by="cus_a",
        )
        session.add(refund)
        await session.flush()
        w.refund_id, w.refund_number = str(refund.id), refund.number
    plan = {"amount": 1_000, "currency": "USD", "interval": "month"}
    w.plan_id = created(
        await api.post("/api/v1/plans", json={"name": "matrix", **plan}, headers=admin)
    )["id"]
    w.other_plan_id = created(
        await api.post("/api/v1/plans", json={"name": "matrix 2", **plan}, headers=admin)
    )["id"]
    w.subscription_id = created(
        await api.post(
            "/api/v1/subscriptions",
            json={"plan_id": w.plan_id, "payment_method_id": w.method_id},
            headers=cus_a,
        )
    )["id"]
    invoice = await bill(db, w.subscription_id)
    w.invoice_id, w.invoice_number = str(invoice.id), str(invoice.number)
    # Through the service: the API's POST answers 503 here, Temporal being down.
    async with db() as session, session.begin():
        issued = await tickets.issue(
            session,
            booking_id="bk-matrix-a",
            user_id="cus_a",
            driver_id="drv_a",
            trip={},
            valid_from=NOW - timedelta(minutes=5),
            valid_until=NOW + timedelta(hours=2),
            ring=ticket_keys.load(settings.ticket_keys_path),
            actor=Actor("booking-svc", Role.PLATFORM_ADMIN),
        )
        w.ticket_id = str(issued.ticket.id)
    w.market_id = created(
        await api.post(
            "/api/v1/markets",
            json={"question": "Matrix?", "kind": "binary", "creator_id": "creator"},
            headers=admin,
        )
    )["id"]
    created(
        await api.post(
            "/api/v1/markets/token-grants",
            json={"user_id": "cus_a", "amount": 100, "reason": "matrix"},
            headers=admin,
        )
    )
    w.commitment_id = str(
        created(
            await api.post(
                f"/api/v1/markets/{w.market_id}/commitments",
                json={"amount": 10, "position": "yes"},
                headers=cus_a,
            )
        )["id"]
    )
    w.settlement_id = created(
        await api.post(
            "/api/v1/vendor-settlements",
            json={
                "vendor_id": "ven_a",
                "currency": "USD",
                "period_start": (NOW - timedelta(days=3)).isoformat(),
                "period_end": (NOW - timedelta(days=2)).isoformat(),
            },
            headers=admin,
        )
    )["id"]
    w.rule_id = created(
        await api.post(
            "/api/v1/commission-rules",
            json={
                "scope": "vendor",
                "vendor_id": "ven_a",
                "percentage_bps": 500,
                "currency": "USD",
            },
            headers=admin,
        )
    )["id"]
    created(
        await api.put(
            "/api/v1/vendor-settlements/vendors/ven_a/payout-account",
            json={"destination": "acct_1VendorA0000000000"},
            headers=bearer(settings, Role.VENDOR, "ven_a"),
        )
    )
    customer_a = frozenset({"customer:cus_a"})
    w.private = {
        w.method_id: customer_a,
        w.payment_id: customer_a,
        w.payment_number: customer_a,
        w.refund_id: customer_a,
        w.refund_number: customer_a,
        w.subscription_id: customer_a,
        w.invoice_id: customer_a,
        w.invoice_number: customer_a,
        w.ticket_id: frozenset({"customer:cus_a", "driver:drv_a"}),
        w.settlement_id: frozenset({"vendor:ven_a"}),
    }
    return w

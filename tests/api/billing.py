"""Helpers of the subscription, plan and invoice API tests: payment methods stored directly
(no Stripe needed), and the steps a subscription's workflow would take (billing a period, a
failed charge) driven through the services, since no worker runs the workflows here."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.actors import SYSTEM
from integrations.stripe_customers import CardDetails
from models.payments import PaymentMethod
from models.subscriptions import Invoice
from services import invoices, payment_methods, subscriptions
from tests.api.conftest import signals_of


async def add_method(
    db: async_sessionmaker[AsyncSession], customer_id: str, *, default: bool = True
) -> PaymentMethod:
    pm = f"pm_{uuid.uuid4().hex[:16]}"
    async with db() as session, session.begin():
        await payment_methods.save_stripe_customer(session, customer_id, f"cus_{customer_id}")
        return await payment_methods.add(
            session,
            customer_id=customer_id,
            stripe_customer_id=f"cus_{customer_id}",
            card=CardDetails(pm, "card", "visa", "4242", 12, 2031, "US", pm[-16:]),
            make_default=default,
            actor=SYSTEM,
        )


async def count(db: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def bill(
    db: async_sessionmaker[AsyncSession],
    subscription_id: str | uuid.UUID,
    at: datetime | None = None,
) -> Invoice:
    """The current period's invoice, finalized (as the workflow's ``bill`` step)."""
    async with db() as session, session.begin():
        invoice = await invoices.bill_period(
            session, uuid.UUID(str(subscription_id)), at=at or datetime.now(UTC), actor=SYSTEM
        )
    assert invoice is not None
    return invoice


async def fail_charge(db: async_sessionmaker[AsyncSession], invoice_id: uuid.UUID) -> Invoice:
    """One declined charge of the invoice: its subscription is past due (as the workflow's
    ``start_attempt`` and ``finish_attempt`` steps)."""
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        started = await invoices.start_attempt(
            session, invoice_id, trigger="invoice finalized", at=now, actor=SYSTEM
        )
        assert started.attempt is not None
        return await invoices.attempt_failed(
            session,
            started.attempt.id,
            failure_code="card_declined",
            decline_code="insufficient_funds",
            message="Your card has insufficient funds.",
            intent_id=f"pi_{uuid.uuid4().hex[:20]}",
            retry_days=[1, 3, 5, 7],
            at=now,
            actor=SYSTEM,
        )


async def in_dunning(db: async_sessionmaker[AsyncSession], subscription_id: str) -> Invoice:
    """A subscription past due: its period billed and the charge declined."""
    invoice = await bill(db, subscription_id)
    return await fail_charge(db, invoice.id)


async def status_of(db: async_sessionmaker[AsyncSession], subscription_id: str) -> str:
    async with db() as session:
        subscription = await subscriptions.get(session, uuid.UUID(subscription_id))
        return subscription.status


async def received(client: Client, workflow_id: str) -> list[tuple[str, Any]]:
    """The signals the workflow received; none when it was never started."""
    try:
        return await signals_of(client, workflow_id)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return []
        raise

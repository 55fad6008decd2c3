"""Subscriptions on a real PostgreSQL (each test rolled back): creation and the payment method
it needs, the trial and billing anchor fixed once by ``begin``, plan changes prorated onto
the next invoice and the credit a downgrade leaves, pause and resume, skipped periods,
renewing now, and dunning's end. Every change is given its time (``at``), as the workflow
does. The helpers here are also used by ``test_invoices_service``."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from domain.errors import Conflict, ValidationError
from domain.money import Money
from domain.subscriptions import DunningOutcome, Interval, SubscriptionStatus
from integrations.stripe_customers import CardDetails
from models.ledger import LedgerTransaction
from models.payments import PaymentMethod
from models.subscriptions import Invoice, InvoiceLine, Plan, Subscription
from services import invoices, ledger, payment_methods, plans, subscriptions

APR_1 = datetime(2024, 4, 1, tzinfo=UTC)  # April has 30 days: Apr 16 is its middle
APR_16 = datetime(2024, 4, 16, tzinfo=UTC)
MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)
JUN_1 = datetime(2024, 6, 1, tzinfo=UTC)


def card() -> CardDetails:
    return CardDetails(
        id=f"pm_{uuid.uuid4().hex}",
        type="card",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        country="US",
        fingerprint=uuid.uuid4().hex[:16],
    )


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


async def add_method(session: AsyncSession, customer_id: str) -> PaymentMethod:
    """A card stored as the customer's default (their first)."""
    return await payment_methods.add(
        session,
        customer_id=customer_id,
        stripe_customer_id=f"cus_{customer_id}",
        card=card(),
        make_default=True,
        actor=SYSTEM,
    )


async def new_plan(
    session: AsyncSession,
    amount: int = 3_000,
    *,
    name: str = "Pro",
    interval: Interval = Interval.MONTH,
    interval_count: int = 1,
    trial_days: int = 0,
    currency: str = "USD",
) -> Plan:
    plan = await plans.create_plan(
        session,
        name=name,
        price=Money(amount, currency),
        interval=interval,
        interval_count=interval_count,
        trial_days=trial_days,
        actor=SYSTEM,
    )
    await session.flush()
    return plan


async def subscribe(
    session: AsyncSession,
    plan: Plan,
    *,
    at: datetime,
    customer_id: str | None = None,
    with_method: bool = True,
    trial_days: int | None = None,
) -> Subscription:
    """Created and begun at ``at``, the customer's default card charged (if ``with_method``)."""
    customer_id = customer_id or new_customer()
    if with_method:
        await add_method(session, customer_id)
    subscription = await subscriptions.create_subscription(
        session,
        customer_id=customer_id,
        plan=plan,
        at=at,
        actor=SYSTEM,
        trial_days=trial_days,
    )
    await session.flush()
    return await subscriptions.begin(session, subscription.id, at=at, actor=SYSTEM)


async def bill(session: AsyncSession, subscription: Subscription, at: datetime) -> Invoice:
    invoice = await invoices.bill_period(session, subscription.id, at=at, actor=SYSTEM)
    assert invoice is not None
    return invoice


async def advance_and_bill(
    session: AsyncSession, subscription: Subscription, at: datetime
) -> Invoice:
    await subscriptions.advance_period(session, subscription.id, at=at, actor=SYSTEM)
    return await bill(session, subscription, at)


async def pending_lines(session: AsyncSession, subscription_id: uuid.UUID) -> list[InvoiceLine]:
    rows = await session.scalars(
        select(InvoiceLine)
        .where(InvoiceLine.subscription_id == subscription_id, InvoiceLine.invoice_id.is_(None))
        .order_by(InvoiceLine.created_at, InvoiceLine.id)
    )
    return list(rows)


async def lines_of(session: AsyncSession, invoice: Invoice) -> list[tuple[str, int]]:
    found = await invoices.lines_of(session, [invoice.id])
    return [(line.kind, line.amount) for line in found[invoice.id]]


async def postings(session: AsyncSession, external_ref: str) -> dict[str, int]:
    """The ledger transaction posted under ``external_ref``: amount per account (debits
    positive), checked balanced."""
    txn = await session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.external_ref == external_ref)
    )
    assert txn is not None, f"nothing posted as {external_ref}"
    codes = await ledger.account_codes(session, {p.account_id for p in txn.postings})
    assert sum(p.amount for p in txn.postings) == 0
    assert {p.currency for p in txn.postings} == {"USD"}
    return {codes[p.account_id]: p.amount for p in txn.postings}


async def invoice_count(session: AsyncSession, subscription_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Invoice).where(Invoice.subscription_id == subscription_id)
    )
    return int(count or 0)


# creation and begin


async def test_without_a_trial_a_payment_method_is_required(session: AsyncSession) -> None:
    plan = await new_plan(session)
    with pytest.raises(ValidationError) as refused:
        await subscriptions.create_subscription(
            session, customer_id=new_customer(), plan=plan, at=APR_1, actor=SYSTEM
        )
    assert refused.value.code == "payment_method_required"
    assert refused.value.param == "payment_method_id"
    # A trial of the plan's own needs none until it ends; nor does an explicit trial.
    trial_plan = await new_plan(session, trial_days=14)
    made = await subscriptions.create_subscription(
        session, customer_id=new_customer(), plan=trial_plan, at=APR_1, actor=SYSTEM
    )
    assert made.status == SubscriptionStatus.TRIALING.value
    made = await subscriptions.create_subscription(
        session, customer_id=new_customer(), plan=plan, at=APR_1, actor=SYSTEM, trial_days=7
    )
    assert made.status == SubscriptionStatus.TRIALING.value
    # A trial turned off on a trial plan needs a method again.
    with pytest.raises(ValidationError):
        await subscriptions.create_subscription(
            session,
            customer_id=new_customer(),
            plan=trial_plan,
            at=APR_1,
            actor=SYSTEM,
            trial_days=0,
        )


async def test_the_default_method_or_a_given_one_is_enough(session: AsyncSession) -> None:
    plan = await new_plan(session)
    subscription = await subscribe(session, plan, at=APR_1)
    assert subscription.status == SubscriptionStatus.ACTIVE.value
    assert subscription.payment_method_id is None  # the default is used at charge time
    assert (subscription.current_period_start, subscription.current_period_end) == (APR_1, MAY_1)
    assert (subscription.billing_anchor, subscription.period_index) == (APR_1, 0)
    assert subscription.trial_end is None

    customer = new_customer()
    method = await add_method(session, customer)
    given = await subscriptions.create_subscription(
        session, customer_id=customer, plan=plan, at=APR_1, actor=SYSTEM, payment_method=method
    )
    assert given.payment_method_id == method.id


async def test_a_trial_starts_when_the_workflow_begins_and_begin_is_idempotent(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, trial_days=14)
    created_at = APR_1 - timedelta(hours=3)
    subscription = await subscriptions.create_subscription(
        session, customer_id=new_customer(), plan=plan, at=created_at, actor=SYSTEM
    )
    await session.flush()
    assert subscription.started_at is None

    begun = await subscriptions.begin(session, subscription.id, at=APR_1, actor=SYSTEM)
    trial_end = APR_1 + timedelta(days=14)
    assert begun.status == SubscriptionStatus.TRIALING.value
    assert begun.started_at == APR_1
    assert begun.trial_end == trial_end
    assert (begun.current_period_start, begun.current_period_end) == (APR_1, trial_end)
    assert (begun.billing_anchor, begun.period_index) == (trial_end, 0)

    before = subscriptions.subscription_view(begun)
    again = await subscriptions.begin(
        session, subscription.id, at=APR_1 + timedelta(days=2), actor=SYSTEM
    )
    assert subscriptions.subscription_view(again) == before
    assert again.started_at == APR_1
    assert again.billing_anchor == trial_end


async def test_begin_anchors_an_active_subscription_at_the_workflow_clock(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session)
    customer = new_customer()
    await add_method(session, customer)
    subscription = await subscriptions.create_subscription(
        session, customer_id=customer, plan=plan, at=APR_1 - timedelta(minutes=5), actor=SYSTEM
    )
    await session.flush()
    await subscriptions.begin(session, subscription.id, at=APR_1, actor=SYSTEM)
    await subscriptions.begin(session, subscription.id, at=APR_16, actor=SYSTEM)
    assert (subscription.billing_anchor, subscription.current_period_end) == (APR_1, MAY_1)
    assert subscription.started_at == APR_1


# plan changes


async def test_an_upgrade_in_a_billed_period_is_prorated_onto_the_next_invoice(
    session: AsyncSession,
) -> None:
    basic = await new_plan(session, 1_000, name="Basic")
    pro = await new_plan(session, 3_000, name="Pro")
    subscription = await subscribe(session, basic, at=APR_1)
    first = await bill(session, subscription, APR_1)
    assert first.total == 1_000

    await subscriptions.change_plan(session, subscription.id, pro.id, at=APR_16, actor=SYSTEM)

    assert subscription.plan_id == pro.id
    pending = await pending_lines(session, subscription.id)
    # Half of April unused on Basic credited, the other half on Pro charged.
    assert [(line.kind, line.amount, line.plan_id) for line in pending] == [
        ("proration", -500, basic.id),
        ("proration", 1_500, pro.id),
    ]
    assert all(line.period_end == MAY_1 for line in pending)
    assert all(line.period_start == APR_16 for line in pending)
    await session.refresh(first)
    assert (first.total, first.status) == (1_000, "open")  # the billed invoice is not touched

    second = await advance_and_bill(session, subscription, MAY_1)
    assert second.id != first.id
    lines = await lines_of(session, second)
    assert [line for line in lines if line[0] == "subscription"] == [("subscription", 3_000)]
    # The prorations in the order they were made: the credit, then the charge.
    assert [line for line in lines if line[0] == "proration"] == [
        ("proration", -500),
        ("proration", 1_500),
    ]
    assert len(lines) == 3
    assert (second.subtotal, second.total, second.status) == (4_000, 4_000, "open")
    assert await pending_lines(session, subscription.id) == []


async def test_a_plan_change_in_an_unbilled_period_or_a_trial_prorates_nothing(
    session: AsyncSession,
) -> None:
    basic = await new_plan(session, 1_000, name="Basic")
    pro = await new_plan(session, 3_000, name="Pro")
    active = await subscribe(session, basic, at=APR_1)  # period not billed yet
    await subscriptions.change_plan(session, active.id, pro.id, at=APR_16, actor=SYSTEM)
    assert await pending_lines(session, active.id) == []
    # ...and its invoice bills the new plan's price.
    assert (await bill(session, active, APR_16)).total == 3_000

    trialing = await subscribe(session, basic, at=APR_1, trial_days=14)
    await subscriptions.change_plan(session, trialing.id, pro.id, at=APR_16, actor=SYSTEM)
    assert trialing.plan_id == pro.id
    assert await pending_lines(session, trialing.id) == []


async def test_a_downgrade_credit_beyond_the_next_invoice_is_kept_and_used_later(
    session: AsyncSession,
) -> None:
    pro = await new_plan(session, 5_000, name="Pro")
    basic = await new_plan(session, 2_000, name="Basic")
    subscription = await subscribe(session, pro, at=APR_1)
    await bill(session, subscription, APR_1)

    # At the period's start: all of Pro credited (5,000), all of Basic charged (2,000).
    await subscriptions.change_plan(session, subscription.id, basic.id, at=APR_1, actor=SYSTEM)
    assert [line.amount for line in await pending_lines(session, subscription.id)] == [
        -5_000,
        2_000,
    ]

    # May: 2,000 + 2,000 - 5,000 = -1,000: nothing to charge, 1,000 of credit kept.
    may = await advance_and_bill(session, subscription, MAY_1)
    assert (may.subtotal, may.credit_added, may.credit_applied, may.total) == (-1_000, 1_000, 0, 0)
    assert may.status == "paid"  # a total of zero is paid at once
    assert may.number is not None
    assert subscription.credit_balance == 1_000
    customer = subscription.customer_id
    assert await postings(session, f"invoice-{may.id}-finalized") == {
        "platform:subscription-revenue": 1_000,
        f"customer-credit:{customer}": -1_000,
    }

    # June: 2,000 of which the credit pays 1,000.
    june = await advance_and_bill(session, subscription, JUN_1)
    assert (june.subtotal, june.credit_applied, june.credit_added, june.total) == (
        2_000,
        1_000,
        0,
        1_000,
    )
    assert june.status == "open"
    assert subscription.credit_balance == 0
    assert await postings(session, f"invoice-{june.id}-finalized") == {
        f"receivable:{customer}": 1_000,
        "platform:subscription-revenue": -2_000,
        f"customer-credit:{customer}": 1_000,
    }
    assert await ledger.balances(session, f"customer-credit:{customer}") == {"USD": 0}


@pytest.mark.parametrize(
    ("amount", "interval", "interval_count", "currency"),
    [
        (2_000, Interval.YEAR, 1, "USD"),
        (2_000, Interval.MONTH, 3, "USD"),
        (2_000, Interval.MONTH, 1, "EUR"),
    ],
)
async def test_a_plan_change_keeps_the_currency_and_interval(
    session: AsyncSession, amount: int, interval: Interval, interval_count: int, currency: str
) -> None:
    plan = await new_plan(session, 3_000)
    other = await new_plan(
        session, amount, interval=interval, interval_count=interval_count, currency=currency
    )
    subscription = await subscribe(session, plan, at=APR_1)
    await bill(session, subscription, APR_1)
    with pytest.raises(ValidationError) as refused:
        await subscriptions.change_plan(session, subscription.id, other.id, at=APR_16, actor=SYSTEM)
    assert refused.value.code == "plan_change_unsupported"
    assert subscription.plan_id == plan.id
    assert await pending_lines(session, subscription.id) == []


async def test_a_change_to_the_same_or_an_inactive_plan_is_refused(session: AsyncSession) -> None:
    plan = await new_plan(session)
    retired = await new_plan(session, 2_000)
    await plans.set_active(session, retired.id, False, actor=SYSTEM)
    subscription = await subscribe(session, plan, at=APR_1)
    for target in (plan, retired):
        with pytest.raises(ValidationError):
            await subscriptions.change_plan(
                session, subscription.id, target.id, at=APR_16, actor=SYSTEM
            )


# pause, skipped periods and resume


async def test_a_trial_cannot_be_paused(session: AsyncSession) -> None:
    plan = await new_plan(session, trial_days=14)
    subscription = await subscribe(session, plan, at=APR_1)
    with pytest.raises(Conflict) as refused:
        await subscriptions.pause(
            session, subscription.id, at=APR_16, reason="holiday", actor=SYSTEM
        )
    assert refused.value.code == "subscription_status"
    assert subscription.status == SubscriptionStatus.TRIALING.value


async def test_a_paused_subscription_skips_its_periods_unbilled_and_resumes_anew(
    session: AsyncSession,
) -> None:
    anchor = datetime(2024, 1, 15, 9, tzinfo=UTC)
    plan = await new_plan(session)
    subscription = await subscribe(session, plan, at=anchor)
    await bill(session, subscription, anchor)
    paused = await subscriptions.pause(
        session, subscription.id, at=anchor + timedelta(days=5), reason="holiday", actor=SYSTEM
    )
    assert paused.status == SubscriptionStatus.PAUSED.value
    assert paused.paused_at == anchor + timedelta(days=5)

    # Before the period's end nothing moves.
    await subscriptions.advance_period(
        session, subscription.id, at=datetime(2024, 2, 1, tzinfo=UTC), actor=SYSTEM
    )
    assert subscription.period_index == 0

    # Apr 20: straight to the period that contains it, Apr 15 to May 15 (index 3).
    apr_20 = datetime(2024, 4, 20, tzinfo=UTC)
    await subscriptions.advance_period(session, subscription.id, at=apr_20, actor=SYSTEM)
    assert subscription.period_index == 3
    assert subscription.current_period_start == datetime(2024, 4, 15, 9, tzinfo=UTC)
    assert subscription.current_period_end == datetime(2024, 5, 15, 9, tzinfo=UTC)
    assert subscription.billing_anchor == anchor
    assert subscription.status == SubscriptionStatus.PAUSED.value
    # Paused: no invoice for this period or the skipped ones.
    assert await invoices.bill_period(session, subscription.id, at=apr_20, actor=SYSTEM) is None
    assert await invoice_count(session, subscription.id) == 1

    # The period is not billed: resuming starts a new one now.
    resume_at = datetime(2024, 4, 22, 13, 30, tzinfo=UTC)
    resumed = await subscriptions.resume(session, subscription.id, at=resume_at, actor=SYSTEM)
    assert resumed.status == SubscriptionStatus.ACTIVE.value
    assert resumed.paused_at is None
    assert (resumed.billing_anchor, resumed.period_index) == (resume_at, 0)
    assert resumed.current_period_start == resume_at
    assert resumed.current_period_end == datetime(2024, 5, 22, 13, 30, tzinfo=UTC)
    resumed_invoice = await bill(session, subscription, resume_at)
    assert resumed_invoice.period_start == resume_at
    assert await invoice_count(session, subscription.id) == 2


async def test_resuming_inside_a_billed_period_carries_on(session: AsyncSession) -> None:
    plan = await new_plan(session)
    subscription = await subscribe(session, plan, at=APR_1)
    await bill(session, subscription, APR_1)
    await subscriptions.pause(session, subscription.id, at=APR_16, reason="x", actor=SYSTEM)
    with pytest.raises(Conflict):
        await subscriptions.pause(session, subscription.id, at=APR_16, reason="x", actor=SYSTEM)
    await subscriptions.resume(
        session, subscription.id, at=APR_16 + timedelta(days=2), actor=SYSTEM
    )
    assert subscription.status == SubscriptionStatus.ACTIVE.value
    assert (subscription.billing_anchor, subscription.current_period_start) == (APR_1, APR_1)
    assert subscription.current_period_end == MAY_1
    with pytest.raises(Conflict):
        await subscriptions.resume(session, subscription.id, at=APR_16, actor=SYSTEM)


# renew now


async def test_renew_now_credits_the_unused_time_and_starts_a_period_now(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    await bill(session, subscription, APR_1)

    renewed = await subscriptions.renew_now(session, subscription.id, at=APR_16, actor=SYSTEM)

    pending = await pending_lines(session, subscription.id)
    assert [(line.kind, line.amount, line.plan_id) for line in pending] == [
        ("proration", -1_500, plan.id)
    ]
    assert (pending[0].period_start, pending[0].period_end) == (APR_16, MAY_1)
    assert (renewed.billing_anchor, renewed.period_index) == (APR_16, 0)
    assert (renewed.current_period_start, renewed.current_period_end) == (
        APR_16,
        datetime(2024, 5, 16, tzinfo=UTC),
    )
    invoice = await bill(session, subscription, APR_16)
    assert invoice.period_start == APR_16
    assert (invoice.subtotal, invoice.total) == (1_500, 1_500)
    assert await pending_lines(session, subscription.id) == []


async def test_renew_now_of_an_unbilled_period_credits_nothing(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    await subscriptions.renew_now(session, subscription.id, at=APR_16, actor=SYSTEM)
    assert await pending_lines(session, subscription.id) == []
    assert subscription.current_period_start == APR_16


# dunning's end


async def test_dunning_exhausted_with_cancel_cancels_a_past_due_subscription(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session)
    subscription = await subscribe(session, plan, at=APR_1)
    # Only a past-due subscription is concerned.
    await subscriptions.dunning_exhausted(
        session, subscription.id, DunningOutcome.CANCELED, at=APR_16, actor=SYSTEM
    )
    assert subscription.status == SubscriptionStatus.ACTIVE.value

    invoice = await bill(session, subscription, APR_1)
    started = await invoices.start_attempt(
        session, invoice.id, trigger="cycle", at=APR_1, actor=SYSTEM
    )
    assert started.attempt is not None
    await invoices.attempt_failed(
        session,
        started.attempt.id,
        failure_code="card_declined",
        decline_code="insufficient_funds",
        message="declined",
        intent_id=None,
        retry_days=(1,),
        at=APR_1,
        actor=SYSTEM,
    )
    assert subscription.status == SubscriptionStatus.PAST_DUE.value

    canceled = await subscriptions.dunning_exhausted(
        session, subscription.id, DunningOutcome.CANCELED, at=APR_16, actor=SYSTEM
    )
    assert canceled.status == SubscriptionStatus.CANCELED.value
    assert canceled.canceled_at == APR_16
    assert canceled.cancel_reason


async def test_dunning_exhausted_with_unpaid_stops_retries(session: AsyncSession) -> None:
    plan = await new_plan(session)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    started = await invoices.start_attempt(
        session, invoice.id, trigger="cycle", at=APR_1, actor=SYSTEM
    )
    assert started.attempt is not None
    await invoices.attempt_failed(
        session,
        started.attempt.id,
        failure_code="card_declined",
        decline_code=None,
        message="declined",
        intent_id=None,
        retry_days=(),
        at=APR_1,
        actor=SYSTEM,
    )
    unpaid = await subscriptions.dunning_exhausted(
        session, subscription.id, DunningOutcome.UNPAID, at=APR_16, actor=SYSTEM
    )
    assert unpaid.status == SubscriptionStatus.UNPAID.value
    assert invoice.status == "open"


async def test_renew_now_drops_the_preview_of_a_period_that_will_never_start(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    await bill(session, subscription, APR_1)
    preview = await invoices.generate_next(session, subscription.id, actor=SYSTEM)
    assert preview.period_start == MAY_1

    await subscriptions.renew_now(session, subscription.id, at=APR_16, actor=SYSTEM)

    drafts = await session.scalars(
        select(Invoice).where(Invoice.subscription_id == subscription.id, Invoice.status == "draft")
    )
    assert list(drafts) == []

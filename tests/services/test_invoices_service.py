"""Invoices on a real PostgreSQL: one cycle invoice per period even when billed twice at once,
numbers without gaps given at finalization only, the ledger postings of finalizing, paying
(by card or out of band) and writing off, the charge attempts with their dunning dates, and
what a cancellation does to drafts and open invoices. No Stripe: its results are given."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM
from domain.errors import Conflict
from domain.subscriptions import DEFAULT_RETRY_DAYS, DunningOutcome, SubscriptionStatus
from models.ledger import LedgerTransaction
from models.subscriptions import Invoice, InvoiceLine, InvoicePaymentAttempt, Subscription
from services import invoices, ledger, subscriptions
from tests.services.test_subscriptions_service import (
    APR_1,
    APR_16,
    MAY_1,
    advance_and_bill,
    bill,
    invoice_count,
    new_plan,
    postings,
    subscribe,
)

Db = async_sessionmaker[AsyncSession]


async def posted(session: AsyncSession, external_ref: str) -> bool:
    found = await session.scalar(
        select(func.count())
        .select_from(LedgerTransaction)
        .where(LedgerTransaction.external_ref == external_ref)
    )
    return bool(found)


def number_of(invoice: Invoice) -> int:
    assert invoice.number is not None and invoice.number.startswith("INV-")
    assert len(invoice.number) == len("INV-00000001")
    return int(invoice.number.removeprefix("INV-"))


async def start(
    session: AsyncSession, invoice: Invoice, at: datetime = APR_1
) -> InvoicePaymentAttempt:
    started = await invoices.start_attempt(
        session, invoice.id, trigger="cycle", at=at, actor=SYSTEM
    )
    assert started.attempt is not None
    return started.attempt


async def fail(session: AsyncSession, attempt: InvoicePaymentAttempt, at: datetime) -> Invoice:
    return await invoices.attempt_failed(
        session,
        attempt.id,
        failure_code="card_declined",
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
        intent_id=f"pi_{uuid.uuid4().hex[:12]}",
        retry_days=DEFAULT_RETRY_DAYS,
        at=at,
        actor=SYSTEM,
    )


async def succeed(session: AsyncSession, attempt: InvoicePaymentAttempt, at: datetime) -> Invoice:
    return await invoices.attempt_succeeded(
        session,
        attempt.id,
        intent_id=f"pi_{uuid.uuid4().hex[:12]}",
        charge_id=f"ch_{uuid.uuid4().hex[:12]}",
        at=at,
        actor=SYSTEM,
    )


# one invoice per period


async def test_billing_a_period_twice_returns_its_one_invoice(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)

    first = await bill(session, subscription, APR_1)
    again = await bill(session, subscription, APR_1 + timedelta(hours=1))

    assert again.id == first.id
    assert again.number == first.number
    assert again.finalized_at == APR_1
    assert await invoice_count(session, subscription.id) == 1
    assert (first.kind, first.status, first.total) == ("cycle", "open", 3_000)
    assert (first.period_start, first.period_end) == (APR_1, MAY_1)


async def test_a_subscription_not_billing_gets_no_invoice(session: AsyncSession) -> None:
    plan = await new_plan(session, trial_days=14)
    trialing = await subscribe(session, plan, at=APR_1)
    assert await invoices.bill_period(session, trialing.id, at=APR_1, actor=SYSTEM) is None
    assert await invoice_count(session, trialing.id) == 0


async def _committed_subscription(db: Db) -> Subscription:
    async with db() as session, session.begin():
        plan = await new_plan(session, 3_000)
        return await subscribe(session, plan, at=APR_1)


async def test_concurrent_billing_of_one_period_makes_one_invoice(db: Db) -> None:
    subscription = await _committed_subscription(db)
    ready = asyncio.Barrier(2)

    async def bill_once() -> tuple[uuid.UUID, str | None]:
        async with db() as session, session.begin():
            await session.execute(select(1))  # connected and in its transaction
            await ready.wait()
            invoice = await bill(session, subscription, APR_1)
            return invoice.id, invoice.number

    results = await asyncio.gather(bill_once(), bill_once())

    assert results[0] == results[1]
    async with db() as session:
        assert await invoice_count(session, subscription.id) == 1
        # The fresh database's counter gave one number only.
        assert results[0][1] == "INV-00000001"
        line_count = await session.scalar(
            select(func.count())
            .select_from(InvoiceLine)
            .where(InvoiceLine.subscription_id == subscription.id)
        )
        assert line_count == 1


async def test_the_unique_period_index_decides_between_two_drafts_at_once(db: Db) -> None:
    """Without the subscription's lock (the bare draft step), the unique index on
    (subscription, period) still lets one of two concurrent inserts through."""
    subscription = await _committed_subscription(db)
    ready = asyncio.Barrier(2)

    async def draft() -> uuid.UUID | None:
        async with db() as session, session.begin():
            row = await subscriptions.get(session, subscription.id)
            await ready.wait()
            invoice = await invoices._draft_cycle(
                session, row, row.current_period_start, row.current_period_end, actor=SYSTEM
            )
            return invoice.id if invoice else None

    results = await asyncio.gather(draft(), draft())

    made = [result for result in results if result is not None]
    assert len(made) == 1
    async with db() as session:
        assert await invoice_count(session, subscription.id) == 1
        stored = await invoices.get(session, made[0])
        assert (stored.status, stored.number) == ("draft", None)


# numbering


async def test_invoices_finalized_at_once_take_consecutive_numbers(db: Db) -> None:
    subscribed = [await _committed_subscription(db) for _ in range(3)]
    ready = asyncio.Barrier(len(subscribed))

    async def bill_one(subscription: Subscription) -> str | None:
        async with db() as session, session.begin():
            await session.execute(select(1))
            await ready.wait()
            return (await bill(session, subscription, APR_1)).number

    numbers = await asyncio.gather(*(bill_one(s) for s in subscribed))

    # The fresh database's counter: 1, 2, 3 in some order, none skipped nor repeated.
    assert sorted(n or "" for n in numbers) == ["INV-00000001", "INV-00000002", "INV-00000003"]


async def test_numbers_are_sequential_across_subscriptions_and_drafts_have_none(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    one = await subscribe(session, plan, at=APR_1)
    two = await subscribe(session, plan, at=APR_1)

    first = await bill(session, one, APR_1)
    # A draft (the preview of the next period) takes no number.
    preview = await invoices.generate_next(session, one.id, actor=SYSTEM)
    assert (preview.status, preview.number) == ("draft", None)
    assert (preview.period_start, preview.period_end) == (MAY_1, datetime(2024, 6, 1, tzinfo=UTC))
    with pytest.raises(Conflict) as exists:
        await invoices.generate_next(session, one.id, actor=SYSTEM)
    assert exists.value.code == "invoice_exists"

    second = await bill(session, two, APR_1)
    one_off = await invoices.create_one_off(
        session, two.id, lines=[("Setup", 500)], description="setup", actor=SYSTEM
    )
    assert one_off.number is None
    await invoices.finalize(session, one_off.id, at=APR_16, actor=SYSTEM)
    third = await advance_and_bill(session, one, MAY_1)  # finalizes the preview

    assert third.id == preview.id
    base = number_of(first)
    assert [number_of(invoice) for invoice in (first, second, one_off, third)] == [
        base,
        base + 1,
        base + 2,
        base + 3,
    ]
    assert (await invoices.get_by_number(session, second.number or "")).id == second.id


async def test_a_cycle_draft_is_finalized_when_its_period_starts(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    await bill(session, subscription, APR_1)
    preview = await invoices.generate_next(session, subscription.id, actor=SYSTEM)
    with pytest.raises(Conflict) as early:
        await invoices.finalize(session, preview.id, at=APR_16, actor=SYSTEM)
    assert early.value.code == "invoice_period_not_started"
    assert preview.number is None


# the ledger


async def test_finalizing_posts_the_receivable_against_revenue(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)

    customer = subscription.customer_id
    assert await postings(session, f"invoice-{invoice.id}-finalized") == {
        f"receivable:{customer}": 3_000,
        "platform:subscription-revenue": -3_000,
    }
    assert not await posted(session, f"invoice-{invoice.id}-paid")


async def test_a_paid_attempt_settles_the_receivable_from_card_payments(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)

    attempt = await start(session, invoice)
    paid = await succeed(session, attempt, APR_1 + timedelta(minutes=1))

    assert (paid.status, paid.amount_paid, paid.paid_out_of_band) == ("paid", 3_000, False)
    assert paid.paid_at == APR_1 + timedelta(minutes=1)
    assert attempt.status == "succeeded"
    customer = subscription.customer_id
    assert await postings(session, f"invoice-{invoice.id}-paid") == {
        "stripe:card-payments": 3_000,
        f"receivable:{customer}": -3_000,
    }
    assert await ledger.balances(session, f"receivable:{customer}") == {"USD": 0}
    # Reported twice (a retried activity): nothing more.
    again = await succeed(session, attempt, APR_1 + timedelta(minutes=2))
    assert again.paid_at == APR_1 + timedelta(minutes=1)
    # A paid invoice takes no more attempts.
    assert (
        await invoices.start_attempt(session, invoice.id, trigger="retry", at=APR_16, actor=SYSTEM)
    ).attempt is None


async def test_paid_out_of_band_posts_from_out_of_band_receipts(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)

    paid = await invoices.mark_paid(session, invoice.id, at=APR_16, note="wire 4711", actor=SYSTEM)

    assert (paid.status, paid.paid_out_of_band, paid.note) == ("paid", True, "wire 4711")
    assert (paid.amount_paid, paid.paid_at) == (3_000, APR_16)
    customer = subscription.customer_id
    assert await postings(session, f"invoice-{invoice.id}-paid") == {
        "external:out-of-band-receipts": 3_000,
        f"receivable:{customer}": -3_000,
    }
    with pytest.raises(Conflict) as twice:
        await invoices.mark_paid(session, invoice.id, at=APR_16, note=None, actor=SYSTEM)
    assert twice.value.code == "invoice_status"


async def test_mark_paid_is_refused_while_a_charge_is_under_way(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    attempt = await start(session, invoice)

    with pytest.raises(Conflict) as refused:
        await invoices.mark_paid(session, invoice.id, at=APR_1, note=None, actor=SYSTEM)

    assert refused.value.code == "payment_in_progress"
    assert invoice.status == "open"
    assert not await posted(session, f"invoice-{invoice.id}-paid")
    # Once the charge has failed, paying out of band is possible.
    await fail(session, attempt, APR_1)
    paid = await invoices.mark_paid(session, invoice.id, at=APR_16, note=None, actor=SYSTEM)
    assert paid.status == "paid"
    assert subscription.status == SubscriptionStatus.ACTIVE.value


# attempts and dunning


async def test_a_pending_attempt_is_returned_again_and_the_next_is_numbered_after_it(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)

    first = await start(session, invoice)
    again = await start(session, invoice, APR_1 + timedelta(minutes=5))
    assert again.id == first.id
    assert (again.number, again.status, again.amount) == (1, "pending", 3_000)
    assert invoice.attempt_count == 1

    await fail(session, first, APR_1)
    second = await start(session, invoice, APR_1 + timedelta(days=1))
    assert second.id != first.id
    assert (second.number, second.status) == (2, "pending")
    assert invoice.attempt_count == 2
    assert [a.number for a in await invoices.attempts_of(session, invoice.id)] == [1, 2]


async def test_failures_follow_the_dunning_schedule_and_past_due(session: AsyncSession) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    first_failed_at = APR_1 + timedelta(minutes=1)

    attempt = await start(session, invoice)
    failed = await fail(session, attempt, first_failed_at)
    assert failed.first_failed_at == first_failed_at
    assert failed.next_payment_attempt == first_failed_at + timedelta(days=1)
    assert subscription.status == SubscriptionStatus.PAST_DUE.value
    assert attempt.status == "failed" and attempt.failure_code == "card_declined"

    expected = [3, 5, 7, None]
    for number, days in enumerate(expected, start=2):
        at = invoice.next_payment_attempt
        assert at is not None
        attempt = await start(session, invoice, at)
        assert attempt.number == number
        failed = await fail(session, attempt, at + timedelta(seconds=30))
        assert failed.first_failed_at == first_failed_at  # counted from the first failure
        assert failed.next_payment_attempt == (
            None if days is None else first_failed_at + timedelta(days=days)
        )
    assert invoice.attempt_count == 5
    assert subscription.status == SubscriptionStatus.PAST_DUE.value
    # Reporting a failure twice changes nothing.
    await fail(session, attempt, APR_16)
    assert invoice.next_payment_attempt is None


async def test_a_successful_retry_makes_the_subscription_active_again(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    await fail(session, await start(session, invoice), APR_1)
    assert subscription.status == SubscriptionStatus.PAST_DUE.value

    retry = await start(session, invoice, APR_1 + timedelta(days=1))
    paid = await succeed(session, retry, APR_1 + timedelta(days=1))

    assert paid.status == "paid"
    assert paid.next_payment_attempt is None
    assert subscription.status == SubscriptionStatus.ACTIVE.value
    assert await postings(session, f"invoice-{invoice.id}-paid") == {
        "stripe:card-payments": 3_000,
        f"receivable:{subscription.customer_id}": -3_000,
    }


# cancellation


async def test_cancellation_writes_off_open_invoices_and_deletes_drafts(
    session: AsyncSession,
) -> None:
    plan = await new_plan(session, 3_000)
    subscription = await subscribe(session, plan, at=APR_1)
    invoice = await bill(session, subscription, APR_1)
    attempt = await start(session, invoice)
    await fail(session, attempt, APR_1)
    draft = await invoices.generate_next(session, subscription.id, actor=SYSTEM)
    assert draft.status == "draft"

    await subscriptions.dunning_exhausted(
        session, subscription.id, DunningOutcome.CANCELED, at=APR_16, actor=SYSTEM
    )
    assert subscription.status == SubscriptionStatus.CANCELED.value
    await invoices.close_for_cancellation(session, subscription.id, at=APR_16, actor=SYSTEM)

    written_off = await invoices.get(session, invoice.id)
    assert written_off.status == "uncollectible"
    assert (written_off.closed_at, written_off.next_payment_attempt) == (APR_16, None)
    customer = subscription.customer_id
    assert await postings(session, f"invoice-{invoice.id}-uncollectible") == {
        "platform:bad-debt": 3_000,
        f"receivable:{customer}": -3_000,
    }
    assert await ledger.balances(session, f"receivable:{customer}") == {"USD": 0}
    # The draft is gone with its lines, never numbered nor posted.
    assert await invoice_count(session, subscription.id) == 1
    draft_lines = await session.scalar(
        select(func.count()).select_from(InvoiceLine).where(InvoiceLine.invoice_id == draft.id)
    )
    assert draft_lines == 0
    assert not await posted(session, f"invoice-{draft.id}-finalized")
    # Closing again changes nothing.
    await invoices.close_for_cancellation(session, subscription.id, at=MAY_1, actor=SYSTEM)
    assert (await invoices.get(session, invoice.id)).closed_at == APR_16

"""Invoices: a subscription's cycle invoice per period and one-off invoices, finalizing (the
lines fixed, the next number, the ledger posting), the charge attempts with their dunning
dates, payment out of band and write-off. Locks go subscription first, then invoice."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.ledger import AccountType, PostingLine
from domain.money import Money
from domain.subscriptions import (
    LIVE,
    AttemptStatus,
    Interval,
    InvoiceKind,
    InvoiceStatus,
    SubscriptionStatus,
    check_subscription_status,
    invoice_totals,
    next_retry_at,
    period_boundary,
)
from models.subscriptions import (
    Invoice,
    InvoiceLine,
    InvoiceNumberCounter,
    InvoicePaymentAttempt,
    Plan,
    Subscription,
)
from services import ledger, outbox, plans, subscriptions
from services.locking import locked
from services.pagination import newest_first
from services.payments import CARD_PAYMENTS_ACCOUNT

REVENUE_ACCOUNT = "platform:subscription-revenue"
OUT_OF_BAND_ACCOUNT = "external:out-of-band-receipts"
BAD_DEBT_ACCOUNT = "platform:bad-debt"
NUMBER_ACCOUNT = "default"  # one numbering for the whole Tollgate account


def receivable_account(customer_id: str) -> str:
    return f"receivable:{customer_id}"


def customer_credit_account(customer_id: str) -> str:
    return f"customer-credit:{customer_id}"


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "status": invoice.status,
        "subscription_id": str(invoice.subscription_id),
        "total": invoice.total,
        "currency": invoice.currency,
        "amount_paid": invoice.amount_paid,
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": (
            invoice.next_payment_attempt.isoformat() if invoice.next_payment_attempt else None
        ),
    }


async def _changed(
    session: AsyncSession,
    invoice: Invoice,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="invoice",
        entity_id=invoice.id,
        action=action,
        actor=actor,
        before=before,
        after=invoice_view(invoice),
        announce=True,
        metadata=metadata,
        payload={"customer_id": invoice.customer_id},
    )


async def get(session: AsyncSession, invoice_id: uuid.UUID, *, for_update: bool = False) -> Invoice:
    query = select(Invoice).where(Invoice.id == invoice_id)
    invoice = await session.scalar(locked(query) if for_update else query)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}", param="invoice_id")
    return invoice


async def get_by_number(session: AsyncSession, number: str) -> Invoice:
    invoice = await session.scalar(select(Invoice).where(Invoice.number == number))
    if invoice is None:
        raise NotFound(f"no invoice {number}", param="number")
    return invoice


async def lines_of(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[InvoiceLine]]:
    """The lines of a page of invoices, in one query."""
    found: dict[uuid.UUID, list[InvoiceLine]] = {invoice_id: [] for invoice_id in invoice_ids}
    rows = await session.scalars(
        select(InvoiceLine)
        .where(InvoiceLine.invoice_id.in_(invoice_ids))
        .order_by(InvoiceLine.created_at, InvoiceLine.id)
    )
    for line in rows:
        assert line.invoice_id is not None
        found[line.invoice_id].append(line)
    return found


async def attempts_of(session: AsyncSession, invoice_id: uuid.UUID) -> list[InvoicePaymentAttempt]:
    rows = await session.scalars(
        select(InvoicePaymentAttempt)
        .where(InvoicePaymentAttempt.invoice_id == invoice_id)
        .order_by(InvoicePaymentAttempt.number)
    )
    return list(rows)


def _cycle_description(plan: Plan, line: InvoiceLine) -> str:
    return f"{plan.name} ({line.period_start:%Y-%m-%d} to {line.period_end:%Y-%m-%d})"


def _cycle_line(
    subscription: Subscription, plan: Plan, start: datetime, end: datetime
) -> InvoiceLine:
    return InvoiceLine(
        id=uuid.uuid4(),
        subscription_id=subscription.id,
        kind="subscription",
        description=f"{plan.name} ({start:%Y-%m-%d} to {end:%Y-%m-%d})",
        amount=plan.amount,
        currency=plan.currency,
        plan_id=plan.id,
        period_start=start,
        period_end=end,
    )


async def _draft_cycle(
    session: AsyncSession,
    subscription: Subscription,
    start: datetime,
    end: datetime,
    *,
    actor: Actor,
) -> Invoice | None:
    """A draft for the period from ``start``, or None when the period has its invoice. The
    unique index on (subscription, period) decides between concurrent callers."""
    plan = await plans.get(session, subscription.plan_id)
    invoice_id = await session.scalar(
        insert(Invoice)
        .values(
            id=uuid.uuid4(),
            kind=InvoiceKind.CYCLE.value,
            subscription_id=subscription.id,
            customer_id=subscription.customer_id,
            currency=plan.currency,
            status=InvoiceStatus.DRAFT.value,
            period_start=start,
            period_end=end,
            due_at=start,
            subtotal=plan.amount,
            credit_applied=0,
            credit_added=0,
            total=plan.amount,
            amount_paid=0,
            paid_out_of_band=False,
            attempt_count=0,
            metadata={},
        )
        .on_conflict_do_nothing(
            index_elements=["subscription_id", "period_start"],
            index_where=Invoice.kind == "cycle",
        )
        .returning(Invoice.id)
    )
    if invoice_id is None:
        return None
    invoice = await get(session, invoice_id)
    line = _cycle_line(subscription, plan, start, end)
    line.invoice_id = invoice.id
    session.add(line)
    await _changed(session, invoice, "created", actor=actor, before=None)
    return invoice


async def _cycle_invoice(
    session: AsyncSession, subscription_id: uuid.UUID, start: datetime
) -> Invoice | None:
    return await session.scalar(
        locked(
            select(Invoice).where(
                Invoice.subscription_id == subscription_id,
                Invoice.kind == "cycle",
                Invoice.period_start == start,
            )
        )
    )


async def bill_period(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Invoice | None:
    """The current period's invoice, created and finalized once: a second call returns the
    same invoice. None when the subscription is not billing (trialing, paused, canceled)."""
    subscription = await subscriptions.get(session, subscription_id, for_update=True)
    if subscriptions.status_of(subscription) not in (
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
    ):
        return None
    start, end = subscription.current_period_start, subscription.current_period_end
    invoice = await _cycle_invoice(session, subscription.id, start)
    if invoice is None:
        await _draft_cycle(session, subscription, start, end, actor=actor)
        invoice = await _cycle_invoice(session, subscription.id, start)
        assert invoice is not None
    if invoice.status == InvoiceStatus.DRAFT.value:
        await _finalize(session, subscription, invoice, at=at, actor=actor)
    return invoice


async def generate_next(
    session: AsyncSession, subscription_id: uuid.UUID, *, actor: Actor
) -> Invoice:
    """A draft for the period after the current one, to preview it; its lines are fixed when
    the workflow finalizes it at the period's start."""
    subscription = await subscriptions.get(session, subscription_id, for_update=True)
    check_subscription_status(
        subscriptions.status_of(subscription),
        frozenset(
            {SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.TRIALING}
        ),
        "invoice the next period of",
    )
    if subscription.cancel_at_period_end:
        raise Conflict("The subscription ends with this period", code="subscription_ending")
    plan = await plans.get(session, subscription.plan_id)
    if subscriptions.status_of(subscription) is SubscriptionStatus.TRIALING:
        index = 0  # the first paid period starts at the trial's end
    else:
        index = subscription.period_index + 1
    interval = Interval(plan.interval)
    start = period_boundary(subscription.billing_anchor, interval, plan.interval_count, index)
    end = period_boundary(subscription.billing_anchor, interval, plan.interval_count, index + 1)
    invoice = await _draft_cycle(session, subscription, start, end, actor=actor)
    if invoice is None:
        raise Conflict(
            f"the period from {start.isoformat()} already has its invoice",
            code="invoice_exists",
        )
    return invoice


async def create_one_off(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    lines: Sequence[tuple[str, int]],
    description: str | None,
    actor: Actor,
) -> Invoice:
    """A draft invoice of charges outside the cycle; finalizing it hands it to the
    subscription's workflow to charge, with the same dunning."""
    subscription = await subscriptions.get(session, subscription_id, for_update=True)
    check_subscription_status(subscriptions.status_of(subscription), LIVE, "invoice")
    if not lines or sum(amount for _, amount in lines) <= 0:
        raise ValidationError("A one-off invoice charges a positive total", param="lines")
    plan = await plans.get(session, subscription.plan_id)
    total = sum(amount for _, amount in lines)
    invoice = Invoice(
        id=uuid.uuid4(),
        kind=InvoiceKind.ONE_OFF.value,
        subscription_id=subscription.id,
        customer_id=subscription.customer_id,
        currency=plan.currency,
        status=InvoiceStatus.DRAFT.value,
        description=description,
        subtotal=total,
        credit_applied=0,
        credit_added=0,
        total=total,
        amount_paid=0,
        paid_out_of_band=False,
        attempt_count=0,
        metadata_={},
    )
    session.add(invoice)
    await session.flush()
    session.add_all(
        InvoiceLine(
            id=uuid.uuid4(),
            subscription_id=subscription.id,
            invoice_id=invoice.id,
            kind="one_off",
            description=text,
            amount=amount,
            currency=plan.currency,
            created_at=created_at,
        )
        for created_at, (text, amount) in zip(
            subscriptions.in_order(len(lines)), lines, strict=True
        )
    )
    await _changed(session, invoice, "created", actor=actor, before=None)
    return invoice


async def finalize(
    session: AsyncSession, invoice_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Invoice:
    invoice = await get(session, invoice_id)
    subscription = await subscriptions.get(session, invoice.subscription_id, for_update=True)
    invoice = await get(session, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.DRAFT.value:
        raise Conflict(f"invoice {invoice.number} is {invoice.status}", code="invoice_status")
    if invoice.kind == InvoiceKind.CYCLE.value:
        assert invoice.period_start is not None
        if invoice.period_start > subscription.current_period_start:
            raise Conflict(
                "A cycle invoice is finalized when its period starts",
                code="invoice_period_not_started",
            )
    await _finalize(session, subscription, invoice, at=at, actor=actor)
    return invoice


async def _next_number(session: AsyncSession) -> str:
    await session.execute(
        insert(InvoiceNumberCounter)
        .values(account=NUMBER_ACCOUNT, last_number=0)
        .on_conflict_do_nothing(index_elements=["account"])
    )
    number = await session.scalar(
        update(InvoiceNumberCounter)
        .where(InvoiceNumberCounter.account == NUMBER_ACCOUNT)
        .values(last_number=InvoiceNumberCounter.last_number + 1)
        .returning(InvoiceNumberCounter.last_number)
    )
    return f"INV-{number:08d}"


async def _finalize(
    session: AsyncSession,
    subscription: Subscription,
    invoice: Invoice,
    *,
    at: datetime,
    actor: Actor,
) -> None:
    """Fixes the lines (a cycle invoice takes the plan as it is now and the pending
    prorations), applies the customer's credit, numbers the invoice and posts it. A total
    of zero is paid at once."""
    before = invoice_view(invoice)
    lines = list((await lines_of(session, [invoice.id]))[invoice.id])
    if invoice.kind == InvoiceKind.CYCLE.value:
        plan = await plans.get(session, subscription.plan_id)
        for line in lines:
            if line.kind == "subscription":
                line.amount, line.plan_id = plan.amount, plan.id
                line.description = _cycle_description(plan, line)
        pending = list(
            await session.scalars(
                select(InvoiceLine).where(
                    InvoiceLine.subscription_id == subscription.id,
                    InvoiceLine.invoice_id.is_(None),
                )
            )
        )
        for line in pending:
            line.invoice_id = invoice.id
        lines += pending
    totals = invoice_totals([line.amount for line in lines], subscription.credit_balance)
    subscription.credit_balance += totals.credit_added - totals.credit_applied
    invoice.subtotal = totals.subtotal
    invoice.credit_applied = totals.credit_applied
    invoice.credit_added = totals.credit_added
    invoice.total = totals.total
    invoice.number = await _next_number(session)
    invoice.status = InvoiceStatus.OPEN.value
    invoice.finalized_at = at
    invoice.due_at = at
    await _post_finalized(session, invoice, actor)
    await _changed(session, invoice, "finalized", actor=actor, before=before)
    if invoice.total == 0:
        await _paid(session, subscription, invoice, at=at, actor=actor, source=None)


async def _ensure(
    session: AsyncSession, code: str, name: str, type: AccountType, actor: Actor
) -> None:
    await ledger.ensure_account(session, code=code, name=name, type=type, actor=actor)


async def _post_finalized(session: AsyncSession, invoice: Invoice, actor: Actor) -> None:
    """Receivable debited with the total, revenue credited with the subtotal, the customer's
    credit used (debited) or added (credited): balanced by construction."""
    customer = invoice.customer_id
    postings = [
        PostingLine(receivable_account(customer), Money(invoice.total, invoice.currency)),
        PostingLine(REVENUE_ACCOUNT, Money(-invoice.subtotal, invoice.currency)),
        PostingLine(
            customer_credit_account(customer),
            Money(invoice.credit_applied - invoice.credit_added, invoice.currency),
        ),
    ]
    postings = [line for line in postings if line.money.amount]
    if not postings:
        return
    await _ensure(
        session, receivable_account(customer), f"owed by {customer}", AccountType.ASSET, actor
    )
    await _ensure(session, REVENUE_ACCOUNT, "subscription revenue", AccountType.REVENUE, actor)
    await _ensure(
        session,
        customer_credit_account(customer),
        f"credit owed to {customer}",
        AccountType.LIABILITY,
        actor,
    )
    await ledger.post_transaction(
        session,
        postings=postings,
        actor=actor,
        description=f"invoice {invoice.number} finalized",
        external_ref=f"invoice-{invoice.id}-finalized",
        metadata={"invoice_id": str(invoice.id), "subscription_id": str(invoice.subscription_id)},
    )


async def _paid(
    session: AsyncSession,
    subscription: Subscription,
    invoice: Invoice,
    *,
    at: datetime,
    actor: Actor,
    source: str | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """OPEN -> PAID: the receivable settled from ``source`` (None: nothing to collect); a
    subscription with nothing else overdue is active again."""
    before = invoice_view(invoice)
    if source is not None and invoice.total:
        await _ensure(session, source, source, AccountType.ASSET, actor)
        await ledger.post_transaction(
            session,
            postings=[
                PostingLine(source, Money(invoice.total, invoice.currency)),
                PostingLine(
                    receivable_account(invoice.customer_id), Money(-invoice.total, invoice.currency)
                ),
            ],
            actor=actor,
            description=f"invoice {invoice.number} paid",
            external_ref=f"invoice-{invoice.id}-paid",
            metadata={"invoice_id": str(invoice.id), **(metadata or {})},
        )
    invoice.status = InvoiceStatus.PAID.value
    invoice.amount_paid = invoice.total
    invoice.paid_at = invoice.closed_at = at
    invoice.next_payment_attempt = None
    await _changed(session, invoice, "paid", actor=actor, before=before, metadata=metadata)
    if not await _overdue_left(session, subscription.id):
        await subscriptions.mark_settled(session, subscription, actor=actor)


async def _overdue_left(session: AsyncSession, subscription_id: uuid.UUID) -> bool:
    count = await session.scalar(
        select(func.count())
        .select_from(Invoice)
        .where(
            Invoice.subscription_id == subscription_id,
            Invoice.status == "open",
            Invoice.attempt_count > 0,
        )
    )
    return bool(count)


async def oldest_open(session: AsyncSession, subscription_id: uuid.UUID) -> Invoice | None:
    """The invoice the workflow collects next."""
    return await session.scalar(
        select(Invoice)
        .where(Invoice.subscription_id == subscription_id, Invoice.status == "open")
        .order_by(Invoice.finalized_at, Invoice.number)
        .limit(1)
    )


@dataclass(frozen=True)
class AttemptStart:
    """A charge to make (``attempt`` pending), or why not: the invoice is no longer open, or
    there was no payment method (the attempt is recorded failed)."""

    invoice: Invoice
    attempt: InvoicePaymentAttempt | None


async def start_attempt(
    session: AsyncSession,
    invoice_id: uuid.UUID,
    *,
    trigger: str,
    at: datetime,
    actor: Actor,
) -> AttemptStart:
    """Records the next charge attempt of an open invoice. One in flight at a time: an
    attempt left pending by a crash is returned again, so its Stripe key is reused."""
    invoice = await get(session, invoice_id)
    subscription = await subscriptions.get(session, invoice.subscription_id, for_update=True)
    invoice = await get(session, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.OPEN.value:
        return AttemptStart(invoice, None)
    pending = await session.scalar(
        select(InvoicePaymentAttempt).where(
            InvoicePaymentAttempt.invoice_id == invoice.id,
            InvoicePaymentAttempt.status == AttemptStatus.PENDING.value,
        )
    )
    if pending is not None:
        return AttemptStart(invoice, pending)
    method = await subscriptions.charge_method(session, subscription)
    invoice.attempt_count += 1
    attempt = InvoicePaymentAttempt(
        id=uuid.uuid4(),
        invoice_id=invoice.id,
        number=invoice.attempt_count,
        status=AttemptStatus.PENDING.value,
        trigger=trigger,
        amount=invoice.total,
        payment_method_id=method.id if method else None,
    )
    session.add(attempt)
    await session.flush()
    return AttemptStart(invoice, attempt)


async def get_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> InvoicePaymentAttempt:
    attempt = await session.get(InvoicePaymentAttempt, attempt_id)
    if attempt is None:
        raise NotFound(f"no payment attempt {attempt_id}", param="attempt_id")
    return attempt


async def attempt_succeeded(
    session: AsyncSession,
    attempt_id: uuid.UUID,
    *,
    intent_id: str,
    charge_id: str | None,
    at: datetime,
    actor: Actor,
) -> Invoice:
    """The charge went through: the attempt and the invoice are paid, once."""
    attempt = await get_attempt(session, attempt_id)
    invoice = await get(session, attempt.invoice_id)
    subscription = await subscriptions.get(session, invoice.subscription_id, for_update=True)
    invoice = await get(session, attempt.invoice_id, for_update=True)
    attempt = await _locked_attempt(session, attempt_id)
    if attempt.status == AttemptStatus.SUCCEEDED.value:
        return invoice
    _check_pending(attempt)
    attempt.status = AttemptStatus.SUCCEEDED.value
    attempt.stripe_payment_intent_id = intent_id
    attempt.stripe_charge_id = charge_id
    attempt.finished_at = at
    if invoice.status != InvoiceStatus.OPEN.value:
        # Closed while the charge was made (mark-paid refuses that, so this is a bug or a
        # manual edit): the money is at Stripe and an admin must refund it. Said loudly.
        await outbox.emit(
            session,
            "invoice.overpaid",
            entity_type="invoice",
            entity_id=str(invoice.id),
            payload={
                "status": invoice.status,
                "payment_intent": intent_id,
                "amount": attempt.amount,
            },
        )
        return invoice
    await _paid(
        session,
        subscription,
        invoice,
        at=at,
        actor=actor,
        source=CARD_PAYMENTS_ACCOUNT,
        metadata={"attempt": attempt.number, "payment_intent": intent_id},
    )
    return invoice


async def _locked_attempt(session: AsyncSession, attempt_id: uuid.UUID) -> InvoicePaymentAttempt:
    attempt = await session.scalar(
        locked(select(InvoicePaymentAttempt).where(InvoicePaymentAttempt.id == attempt_id))
    )
    assert attempt is not None
    return attempt


def _check_pending(attempt: InvoicePaymentAttempt) -> None:
    if attempt.status != AttemptStatus.PENDING.value:
        raise Conflict(f"payment attempt {attempt.id} is {attempt.status}", code="attempt_status")


async def attempt_failed(
    session: AsyncSession,
    attempt_id: uuid.UUID,
    *,
    failure_code: str,
    decline_code: str | None,
    message: str,
    intent_id: str | None,
    retry_days: Sequence[int],
    at: datetime,
    actor: Actor,
) -> Invoice:
    """The charge failed: the next retry is set from the schedule (None when it is
    exhausted), the subscription is past due, and ``invoice.payment_failed`` tells the
    customer's platform."""
    attempt = await get_attempt(session, attempt_id)
    invoice = await get(session, attempt.invoice_id)
    subscription = await subscriptions.get(session, invoice.subscription_id, for_update=True)
    invoice = await get(session, attempt.invoice_id, for_update=True)
    attempt = await _locked_attempt(session, attempt_id)
    if attempt.status == AttemptStatus.FAILED.value:
        return invoice
    _check_pending(attempt)
    before = invoice_view(invoice)
    attempt.status = AttemptStatus.FAILED.value
    attempt.failure_code = failure_code
    attempt.decline_code = decline_code
    attempt.failure_message = message
    attempt.stripe_payment_intent_id = intent_id
    attempt.finished_at = at
    invoice.first_failed_at = invoice.first_failed_at or at
    failed = await session.scalar(
        select(func.count())
        .select_from(InvoicePaymentAttempt)
        .where(
            InvoicePaymentAttempt.invoice_id == invoice.id,
            InvoicePaymentAttempt.status == AttemptStatus.FAILED.value,
        )
    )
    invoice.next_payment_attempt = (
        None
        if subscriptions.status_of(subscription) is SubscriptionStatus.UNPAID
        else next_retry_at(invoice.first_failed_at, retry_days, failed or 1)
    )
    await _changed(
        session,
        invoice,
        "payment_failed",
        actor=actor,
        before=before,
        metadata={
            "attempt": attempt.number,
            "failure_code": failure_code,
            "decline_code": decline_code,
            "trigger": attempt.trigger,
        },
    )
    await subscriptions.mark_past_due(session, subscription, actor=actor)
    return invoice


async def mark_paid(
    session: AsyncSession,
    invoice_id: uuid.UUID,
    *,
    at: datetime,
    note: str | None,
    actor: Actor,
) -> Invoice:
    """Paid outside Stripe (a bank transfer, a cheque): refused while a charge is under way,
    so the customer can never pay twice."""
    invoice = await get(session, invoice_id)
    subscription = await subscriptions.get(session, invoice.subscription_id, for_update=True)
    invoice = await get(session, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.OPEN.value:
        raise Conflict(
            f"invoice {invoice.number or invoice.id} is {invoice.status}", code="invoice_status"
        )
    in_flight = await session.scalar(
        select(InvoicePaymentAttempt.id).where(
            InvoicePaymentAttempt.invoice_id == invoice.id,
            InvoicePaymentAttempt.status == AttemptStatus.PENDING.value,
        )
    )
    if in_flight is not None:
        raise Conflict(
            "A card payment of this invoice is under way; try again when it ends",
            code="payment_in_progress",
        )
    invoice.paid_out_of_band = True
    invoice.note = note
    await _paid(
        session,
        subscription,
        invoice,
        at=at,
        actor=actor,
        source=OUT_OF_BAND_ACCOUNT,
        metadata={"out_of_band": True},
    )
    return invoice


async def close_for_cancellation(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> None:
    """A canceled subscription: its drafts are deleted (never numbered, never posted) and
    what it still owes is written off as uncollectible."""
    drafts = await session.scalars(
        select(Invoice).where(Invoice.subscription_id == subscription_id, Invoice.status == "draft")
    )
    for draft in drafts:
        await session.delete(draft)
    open_invoices = await session.scalars(
        locked(
            select(Invoice).where(
                Invoice.subscription_id == subscription_id, Invoice.status == "open"
            )
        )
    )
    for invoice in open_invoices:
        await _write_off(session, invoice, at=at, actor=actor)


async def _write_off(
    session: AsyncSession, invoice: Invoice, *, at: datetime, actor: Actor
) -> None:
    before = invoice_view(invoice)
    owed = invoice.total - invoice.amount_paid
    if owed:
        await _ensure(session, BAD_DEBT_ACCOUNT, "invoices written off", AccountType.EXPENSE, actor)
        await ledger.post_transaction(
            session,
            postings=[
                PostingLine(BAD_DEBT_ACCOUNT, Money(owed, invoice.currency)),
                PostingLine(
                    receivable_account(invoice.customer_id), Money(-owed, invoice.currency)
                ),
            ],
            actor=actor,
            description=f"invoice {invoice.number} uncollectible",
            external_ref=f"invoice-{invoice.id}-uncollectible",
            metadata={"invoice_id": str(invoice.id)},
        )
    invoice.status = InvoiceStatus.UNCOLLECTIBLE.value
    invoice.next_payment_attempt = None
    invoice.closed_at = at
    await _changed(session, invoice, "marked_uncollectible", actor=actor, before=before)


async def list_invoices(
    session: AsyncSession,
    *,
    subscription_id: uuid.UUID | None = None,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
    after: Invoice | None,
    limit: int,
) -> list[Invoice]:
    query = select(Invoice)
    if subscription_id is not None:
        query = query.where(Invoice.subscription_id == subscription_id)
    if customer_id is not None:
        query = query.where(Invoice.customer_id == customer_id)
    if status is not None:
        query = query.where(Invoice.status == status.value)
    return list(await session.scalars(newest_first(query, Invoice, after).limit(limit)))


async def overdue(
    session: AsyncSession, *, now: datetime, after: Invoice | None, limit: int
) -> list[Invoice]:
    """Open invoices past due whose charge has failed at least once: collection's work."""
    query = select(Invoice).where(
        Invoice.status == "open", Invoice.due_at < now, Invoice.attempt_count > 0
    )
    return list(await session.scalars(newest_first(query, Invoice, after).limit(limit)))


async def due_before(
    session: AsyncSession, *, before: datetime, after: Invoice | None, limit: int
) -> list[Invoice]:
    """Drafts and open invoices due by ``before``: the upcoming charges."""
    query = select(Invoice).where(Invoice.status.in_(("draft", "open")), Invoice.due_at <= before)
    return list(await session.scalars(newest_first(query, Invoice, after).limit(limit)))


async def failed_open(
    session: AsyncSession, invoice_ids: Sequence[uuid.UUID] | None, limit: int
) -> list[Invoice]:
    """Open invoices whose last charge failed (all, or those of ``invoice_ids``): what a
    bulk retry sends back to their workflows."""
    query = select(Invoice).where(Invoice.status == "open", Invoice.attempt_count > 0)
    if invoice_ids is not None:
        query = query.where(Invoice.id.in_(invoice_ids))
    return list(await session.scalars(query.order_by(Invoice.due_at, Invoice.id).limit(limit)))

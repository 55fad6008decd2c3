"""Invoices of subscriptions: one per billing period (made, finalized and charged by the
subscription's workflow) and one-off invoices made by an admin. Read with their lines and
charge attempts; an admin finalizes a draft, records a payment made outside Stripe, retries
failed charges in bulk, or previews the next period's invoice. What the API changes on an
invoice is then signalled to the subscription's workflow (``invoice_changed``) so it
collects what is open now. Customers see their own invoices; admins all."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions.subscriptions import check_visible, subscription_workflow, visible
from api.customers import ADMIN_ROLES, check_customer
from api.deps import Admin, CurrentActor, Session, get_settings
from api.pagination import Page, PageParams, PageQuery, paginate, row_cursor
from api.routers.subscriptions import may_see
from api.workflow_calls import (
    BULK_MAX,
    BulkId,
    BulkOut,
    run_bulk,
    signal,
    signal_after_commit,
)
from domain.actors import Actor
from domain.errors import Conflict
from domain.ledger import MAX_POSTING_AMOUNT
from domain.subscriptions import AttemptStatus, InvoiceKind, InvoiceStatus
from models.subscriptions import Invoice, InvoiceLine, InvoicePaymentAttempt
from services import invoices
from settings import Settings
from workflows.types import InvoiceChanged, RetryPayment

router = APIRouter(prefix="/invoices", tags=["subscriptions"])

AppSettings = Annotated[Settings, Depends(get_settings)]
Reference = Annotated[str, Path(min_length=1, max_length=200)]
MAX_LINES = 100


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=500, pattern=r"\S")
    amount: int = Field(
        ge=-MAX_POSTING_AMOUNT,
        le=MAX_POSTING_AMOUNT,
        description="Minor units; negative for a credit (the invoice's total stays positive)",
    )


class InvoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscription_id: uuid.UUID
    description: str | None = Field(None, max_length=1000)
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)


class LineOut(BaseModel):
    id: uuid.UUID
    kind: str
    description: str
    amount: int
    period_start: datetime | None
    period_end: datetime | None


class AttemptOut(BaseModel):
    id: uuid.UUID
    number: int
    status: AttemptStatus
    trigger: str
    amount: int
    payment_method_id: uuid.UUID | None
    stripe_payment_intent_id: str | None
    failure_code: str | None
    decline_code: str | None
    failure_message: str | None
    created_at: datetime
    finished_at: datetime | None


class InvoiceOut(BaseModel):
    id: uuid.UUID
    object: str = "invoice"
    number: str | None = Field(description="Given at finalization; a draft has none")
    kind: InvoiceKind
    subscription_id: uuid.UUID
    customer_id: str
    currency: str
    status: InvoiceStatus
    description: str | None
    period_start: datetime | None
    period_end: datetime | None
    subtotal: int
    credit_applied: int
    credit_added: int
    total: int
    amount_paid: int
    amount_due: int
    paid_out_of_band: bool
    note: str | None
    attempt_count: int
    next_payment_attempt: datetime | None
    due_at: datetime | None
    finalized_at: datetime | None
    paid_at: datetime | None
    lines: list[LineOut]
    created_at: datetime


class InvoiceDetailOut(InvoiceOut):
    attempts: list[AttemptOut]


def line_out(line: InvoiceLine) -> LineOut:
    return LineOut(
        id=line.id,
        kind=line.kind,
        description=line.description,
        amount=line.amount,
        period_start=line.period_start,
        period_end=line.period_end,
    )


def attempt_out(attempt: InvoicePaymentAttempt) -> AttemptOut:
    return AttemptOut(
        id=attempt.id,
        number=attempt.number,
        status=AttemptStatus(attempt.status),
        trigger=attempt.trigger,
        amount=attempt.amount,
        payment_method_id=attempt.payment_method_id,
        stripe_payment_intent_id=attempt.stripe_payment_intent_id,
        failure_code=attempt.failure_code,
        decline_code=attempt.decline_code,
        failure_message=attempt.failure_message,
        created_at=attempt.created_at,
        finished_at=attempt.finished_at,
    )


def _fields(invoice: Invoice, lines: Sequence[InvoiceLine]) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "kind": InvoiceKind(invoice.kind),
        "subscription_id": invoice.subscription_id,
        "customer_id": invoice.customer_id,
        "currency": invoice.currency,
        "status": InvoiceStatus(invoice.status),
        "description": invoice.description,
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "subtotal": invoice.subtotal,
        "credit_applied": invoice.credit_applied,
        "credit_added": invoice.credit_added,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "amount_due": invoice.total - invoice.amount_paid,
        "paid_out_of_band": invoice.paid_out_of_band,
        "note": invoice.note,
        "attempt_count": invoice.attempt_count,
        "next_payment_attempt": invoice.next_payment_attempt,
        "due_at": invoice.due_at,
        "finalized_at": invoice.finalized_at,
        "paid_at": invoice.paid_at,
        "lines": [line_out(line) for line in lines],
        "created_at": invoice.created_at,
    }


def invoice_out(invoice: Invoice, lines: Sequence[InvoiceLine]) -> InvoiceOut:
    return InvoiceOut(**_fields(invoice, lines))


async def _detail(session: AsyncSession, invoice: Invoice) -> InvoiceDetailOut:
    lines = (await invoices.lines_of(session, [invoice.id]))[invoice.id]
    attempts = await invoices.attempts_of(session, invoice.id)
    return InvoiceDetailOut(
        **_fields(invoice, lines), attempts=[attempt_out(attempt) for attempt in attempts]
    )


async def _visible(session: AsyncSession, invoice: Invoice, actor: Actor) -> InvoiceDetailOut:
    check_visible(actor, invoice.customer_id, f"invoice {invoice.id}")
    return await _detail(session, invoice)


async def _invoice_page(
    session: AsyncSession, rows: Sequence[Invoice], limit: int
) -> Page[InvoiceOut]:
    """The page's lines in one query."""
    lines = await invoices.lines_of(session, [row.id for row in rows[:limit]])
    return paginate(rows, limit, lambda row: invoice_out(row, lines[row.id]), lambda item: item.id)


async def _cursor(session: AsyncSession, actor: Actor, params: PageParams) -> Invoice | None:
    return await row_cursor(
        params.starting_after,
        lambda cursor: invoices.get(session, cursor),
        lambda row: may_see(actor, row.customer_id),
    )


async def _page(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    subscription_id: uuid.UUID | None = None,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
) -> Page[InvoiceOut]:
    """A page of invoices; a customer sees only its own whatever it asks for."""
    if actor.role not in ADMIN_ROLES:
        check_customer(actor, customer_id or actor.id)
        customer_id = actor.id
    rows = await invoices.list_invoices(
        session,
        subscription_id=subscription_id,
        customer_id=customer_id,
        status=status,
        after=await _cursor(session, actor, params),
        limit=params.limit + 1,
    )
    return await _invoice_page(session, rows, params.limit)


async def _invoice_changed(
    request: Request, invoice: Invoice, actor: Actor, settings: Settings
) -> None:
    """``invoice_changed`` to the subscription's workflow, twice: in the request, so an
    unreachable Temporal is a 503 and the change is rolled back, and again once committed,
    so the workflow reloads a state that surely holds the change (it may read the first
    before the commit)."""
    start = subscription_workflow(invoice.subscription_id, settings)
    changed = InvoiceChanged(invoice_id=invoice.id, by=actor.id)
    await signal(request, start, "invoice_changed", changed)
    signal_after_commit(request, start, "invoice_changed", changed)


@router.post("", status_code=201)
async def create_invoice(body: InvoiceIn, session: Session, actor: Admin) -> InvoiceDetailOut:
    """A draft one-off invoice (a setup fee, an overage) on a live subscription, in the
    plan's currency; a line may be negative but the total is positive. Finalizing it hands
    it to the subscription's workflow to charge, with the same dunning."""
    invoice = await invoices.create_one_off(
        session,
        body.subscription_id,
        lines=[(line.description.strip(), line.amount) for line in body.lines],
        description=body.description,
        actor=actor,
    )
    return await _detail(session, invoice)


@router.get("")
async def list_invoices(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    subscription_id: uuid.UUID | None = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    status: InvoiceStatus | None = None,
) -> Page[InvoiceOut]:
    """Newest first, filtered; customers see their own invoices only."""
    return await _page(
        session,
        actor,
        params,
        subscription_id=subscription_id,
        customer_id=customer_id,
        status=status,
    )


@router.get("/overdue")
async def overdue_invoices(session: Session, actor: Admin, params: PageQuery) -> Page[InvoiceOut]:
    """Open invoices past due whose charge has failed at least once: collection's work."""
    rows = await invoices.overdue(
        session,
        now=datetime.now(UTC),
        after=await _cursor(session, actor, params),
        limit=params.limit + 1,
    )
    return await _invoice_page(session, rows, params.limit)


@router.get("/due-before")
async def invoices_due_before(
    session: Session,
    actor: Admin,
    params: PageQuery,
    date: Annotated[AwareDatetime, Query(description="Due at or before this instant")],
) -> Page[InvoiceOut]:
    """Drafts and open invoices due by ``date``: the upcoming charges."""
    rows = await invoices.due_before(
        session,
        before=date,
        after=await _cursor(session, actor, params),
        limit=params.limit + 1,
    )
    return await _invoice_page(session, rows, params.limit)


@router.get("/number/{number}")
async def invoice_by_number(
    number: Reference, session: Session, actor: CurrentActor
) -> InvoiceDetailOut:
    return await _visible(session, await invoices.get_by_number(session, number), actor)


@router.get("/subscription/{subscription_id}")
async def subscription_invoices(
    subscription_id: uuid.UUID, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[InvoiceOut]:
    await visible(session, subscription_id, actor)
    return await _page(session, actor, params, subscription_id=subscription_id)


@router.get("/{invoice_id}")
async def get_invoice(
    invoice_id: uuid.UUID, session: Session, actor: CurrentActor
) -> InvoiceDetailOut:
    return await _visible(session, await invoices.get(session, invoice_id), actor)


class MarkPaidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000, description="How it was paid")


@router.post("/{invoice_id}/mark-paid")
async def mark_paid(
    invoice_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    body: MarkPaidIn | None = None,
) -> InvoiceDetailOut:
    """Paid outside Stripe (a bank transfer, a cheque): the receivable is settled from
    ``external:out-of-band-receipts``. 409 unless open, or while a card charge of it is
    under way."""
    invoice = await invoices.mark_paid(
        session, invoice_id, at=datetime.now(UTC), note=body.note if body else None, actor=actor
    )
    await _invoice_changed(request, invoice, actor, settings)
    return await _detail(session, invoice)


@router.post("/{invoice_id}/finalize")
async def finalize_invoice(
    invoice_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> InvoiceDetailOut:
    """Fix a draft's lines, apply the customer's credit, give it the next number and post it
    to the ledger; the subscription's workflow then charges it. 409 unless a draft, or for
    a period's invoice before its period starts."""
    invoice = await invoices.finalize(session, invoice_id, at=datetime.now(UTC), actor=actor)
    await _invoice_changed(request, invoice, actor, settings)
    return await _detail(session, invoice)


class RetriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_ids: list[BulkId] | None = Field(
        None,
        min_length=1,
        max_length=BULK_MAX,
        description=f"Default: every open invoice whose charge failed (at most {BULK_MAX})",
    )


@router.post("/process-payment-retries")
async def process_payment_retries(
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    body: RetriesIn | None = None,
) -> BulkOut:
    """Charge again now each open invoice whose charge failed: ``retry_payment`` is
    signalled to its subscription's workflow, once per subscription (the workflow charges
    its oldest open invoice first). Every invoice gets its own result; one that is missing
    or not open with a failed charge is an error item (``resource_missing``,
    ``invoice_not_retryable``)."""
    wanted = body.invoice_ids if body else None
    if wanted is None:
        found = await invoices.failed_open(session, None, BULK_MAX)
        ids = [str(invoice.id) for invoice in found]
    else:
        ids = wanted
        parsed = []
        for raw in wanted:
            try:
                parsed.append(uuid.UUID(raw))
            except ValueError:
                pass  # answered by run_bulk
        found = await invoices.failed_open(session, parsed, BULK_MAX)
    retryable = {invoice.id: invoice for invoice in found}
    signalled: set[uuid.UUID] = set()

    async def one(invoice_id: uuid.UUID) -> None:
        invoice = retryable.get(invoice_id)
        if invoice is None:
            invoice = await invoices.get(session, invoice_id)
            raise Conflict(
                f"invoice {invoice.number or invoice.id} is {invoice.status}"
                + (" with no failed charge" if invoice.status == "open" else ""),
                code="invoice_not_retryable",
            )
        if invoice.subscription_id in signalled:
            return  # one retry per subscription charges its oldest open invoice
        retry = RetryPayment(reason="bulk retry", by=actor.id)
        start = subscription_workflow(invoice.subscription_id, settings)
        await signal(request, start, "retry_payment", retry)
        signalled.add(invoice.subscription_id)

    return await run_bulk(ids, one)


@router.post("/subscription/{subscription_id}/generate-next", status_code=201)
async def generate_next(
    subscription_id: uuid.UUID, session: Session, actor: Admin
) -> InvoiceDetailOut:
    """A draft of the next period's invoice, to preview it (at the first paid period for a
    trial); the workflow fixes its lines and charges it when the period starts. 409 if it
    exists already, or when the subscription ends with this period."""
    invoice = await invoices.generate_next(session, subscription_id, actor=actor)
    return await _detail(session, invoice)

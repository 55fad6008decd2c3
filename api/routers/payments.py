"""Payments: create (the workflow then checks fraud, authorizes, and captures), read and look
up, and the operator actions ``capture``, ``cancel`` and ``fail``. The actions are checked
against the payment's rules first, so a refused one is a 4xx and nothing is sent, then
signalled to the payment's workflow, which alone changes the row (202)."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.customers import ADMIN_ROLES, acting_for, check_customer
from api.deps import Admin, CurrentActor, Session, get_settings
from api.fields import Amount, Currency, Party, money
from api.pagination import Page, PageParams, PageQuery, paginate, uuid_cursor
from api.workflow_calls import WorkflowStart, signal, start_after_commit
from domain.actors import Actor, Role
from domain.errors import NotFound, ValidationError
from domain.payments import (
    PAYMENT_CANCELLABLE,
    Allocation,
    PaymentStatus,
    check_payment_status,
)
from models.payments import Payment, PaymentSplit
from services import commissions, payment_methods, payments
from settings import Settings
from workflows.types import CapturePayment, ClosePayment, PaymentInput

router = APIRouter(prefix="/payments", tags=["payments"])

AppSettings = Annotated[Settings, Depends(get_settings)]
Reference = Annotated[str, Path(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]
MAX_ALLOCATIONS = 50


class AllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor_id: Party
    amount: Amount
    category: str | None = Field(
        None, min_length=1, max_length=100, description="For category commission rules"
    )
    commission_bps: int | None = Field(
        None,
        ge=0,
        le=10_000,
        description="With commission_fixed, overrides the commission rules; default: the rule"
        " that applies (vendor, category, default), else TOLLGATE_PAYMENT_COMMISSION_BPS",
    )
    commission_fixed: int | None = Field(
        None, ge=0, le=10**12, description="Minor units, added (default 0 with commission_bps)"
    )


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Party | None = Field(None, description="Defaults to the calling customer")
    payment_method_id: uuid.UUID | None = Field(None, description="Default: the customer's")
    amount: Amount
    currency: Currency
    order_id: Party | None = None
    description: str | None = Field(None, max_length=1000)
    country: str | None = Field(
        None, pattern=r"^[A-Za-z]{2}$", description="Where the customer is (ISO 3166 alpha-2)"
    )
    capture_delay_seconds: int | None = Field(
        None, ge=0, le=7 * 86_400, description="Capture by itself after this; default: setting"
    )
    allocations: list[AllocationIn] = Field(default_factory=list, max_length=MAX_ALLOCATIONS)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class SplitOut(BaseModel):
    vendor_id: str | None = Field(description="None: the platform")
    account: str
    gross: int
    commission: int
    amount: int
    captured: int
    refunded: int


class PaymentOut(BaseModel):
    id: uuid.UUID
    object: str = "payment"
    number: str
    customer_id: str
    order_id: str | None
    payment_method_id: uuid.UUID
    amount: int
    currency: str
    status: PaymentStatus
    description: str | None
    country: str | None
    capture_delay_seconds: int | None
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    amount_refund_pending: int
    platform_commission: int
    risk_score: int | None
    risk_level: str | None
    failure_code: str | None
    decline_code: str | None
    failure_reason: str | None
    cancel_reason: str | None
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None
    authorization_expires_at: datetime | None
    splits: list[SplitOut]
    metadata: dict[str, Any]
    created_at: datetime
    authorized_at: datetime | None
    completed_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    workflow_id: str


def workflow_id(payment_id: uuid.UUID) -> str:
    return f"payment-{payment_id}"


def payment_out(payment: Payment, splits: Sequence[PaymentSplit]) -> PaymentOut:
    return PaymentOut(
        id=payment.id,
        number=payment.number,
        customer_id=payment.customer_id,
        order_id=payment.order_id,
        payment_method_id=payment.payment_method_id,
        amount=payment.amount,
        currency=payment.currency,
        status=PaymentStatus(payment.status),
        description=payment.description,
        country=payment.country,
        capture_delay_seconds=payment.capture_delay_seconds,
        amount_authorized=payment.amount_authorized,
        amount_captured=payment.amount_captured,
        amount_refunded=payment.amount_refunded,
        amount_refund_pending=payment.amount_refund_pending,
        platform_commission=payment.platform_commission,
        risk_score=payment.risk_score,
        risk_level=payment.risk_level,
        failure_code=payment.failure_code,
        decline_code=payment.decline_code,
        failure_reason=payment.failure_reason,
        cancel_reason=payment.cancel_reason,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        stripe_charge_id=payment.stripe_charge_id,
        authorization_expires_at=payment.authorization_expires_at,
        splits=[
            SplitOut(
                vendor_id=split.vendor_id,
                account=split.account_code,
                gross=split.gross,
                commission=split.commission,
                amount=split.amount,
                captured=split.captured,
                refunded=split.refunded,
            )
            for split in splits
        ],
        metadata=payment.metadata_,
        created_at=payment.created_at,
        authorized_at=payment.authorized_at,
        completed_at=payment.completed_at,
        closed_at=payment.closed_at,
        updated_at=payment.updated_at,
        workflow_id=workflow_id(payment.id),
    )


async def _out(session: AsyncSession, payment: Payment) -> PaymentOut:
    return payment_out(payment, await payments.splits(session, payment.id))


def payment_workflow(payment: Payment, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="Payment",
        id=workflow_id(payment.id),
        arg=PaymentInput(
            payment_id=payment.id,
            capture_delay_seconds=payment.capture_delay_seconds,
            authorization_hours=settings.payment_authorization_hours,
            review_timeout_hours=settings.payment_review_timeout_hours,
            stripe_task_queue=settings.stripe_task_queue,
        ),
        task_queue=settings.task_queue,
    )


@router.post("", status_code=201)
async def create_payment(
    body: PaymentIn, request: Request, session: Session, actor: CurrentActor, settings: AppSettings
) -> PaymentOut:
    """Record the payment and its split, then start its workflow: fraud check, authorization
    (manual capture), and capture by API or after ``capture_delay_seconds``."""
    customer_id = acting_for(actor, body.customer_id)
    if body.payment_method_id is None:
        method = await payment_methods.default_for(session, customer_id)
        if method is None:
            raise ValidationError(
                f"customer {customer_id} has no default payment method: send payment_method_id",
                code="payment_method_required",
                param="payment_method_id",
            )
    else:
        method = await payment_methods.usable(session, body.payment_method_id, customer_id)
    delay = body.capture_delay_seconds
    if delay is None:
        delay = settings.payment_capture_delay_seconds
    if delay is not None and delay >= settings.payment_authorization_hours * 3600:
        raise ValidationError(
            "capture_delay_seconds must end before the authorization expires",
            param="capture_delay_seconds",
        )
    payment = await payments.create_payment(
        session,
        customer_id=customer_id,
        method=method,
        money=money(body.amount, body.currency),
        actor=actor,
        allocations=[
            await _allocation(session, item, body.currency, settings) for item in body.allocations
        ],
        order_id=body.order_id,
        description=body.description,
        country=body.country,
        capture_delay_seconds=delay,
        metadata=body.metadata,
    )
    start_after_commit(request, payment_workflow(payment, settings))
    return await _out(session, payment)


async def _allocation(
    session: AsyncSession, item: AllocationIn, currency: str, settings: Settings
) -> Allocation:
    """A vendor's part with its commission: as given, else by the commission rule that
    applies to the vendor (or its category) now, else the platform's default."""
    terms = None
    if item.commission_bps is None and item.commission_fixed is None:
        terms = await commissions.terms_for(
            session,
            vendor_id=item.vendor_id,
            category=item.category,
            currency=currency,
            at=datetime.now(UTC),
        )
    bps, fixed = terms or (
        settings.payment_commission_bps if item.commission_bps is None else item.commission_bps,
        item.commission_fixed or 0,
    )
    return Allocation(
        vendor_id=item.vendor_id, amount=item.amount, commission_bps=bps, commission_fixed=fixed
    )


async def _page(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    customer_id: str | None = None,
    order_id: str | None = None,
    status: PaymentStatus | None = None,
    vendor_id: str | None = None,
) -> Page[PaymentOut]:
    """A page of payments; a customer sees only its own whatever it asks for."""
    if actor.role not in ADMIN_ROLES:
        check_customer(actor, customer_id or actor.id)
        customer_id = actor.id
    rows = await payments.list_payments(
        session,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
        customer_id=customer_id,
        order_id=order_id,
        status=status.value if status else None,
        vendor_id=vendor_id,
    )
    splits = await payments.splits_of(session, [row.id for row in rows])
    return paginate(
        rows, params.limit, lambda row: payment_out(row, splits[row.id]), lambda p: p.id
    )


@router.get("")
async def list_payments(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    status: PaymentStatus | None = None,
    vendor_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[PaymentOut]:
    """Newest first, filtered; customers see their own payments only."""
    return await _page(
        session,
        actor,
        params,
        customer_id=customer_id,
        order_id=order_id,
        status=status,
        vendor_id=vendor_id,
    )


@router.get("/customer/{customer_id}")
async def customer_payments(
    customer_id: Reference, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[PaymentOut]:
    check_customer(actor, customer_id)
    return await _page(session, actor, params, customer_id=customer_id)


@router.get("/order/{order_id}")
async def order_payments(
    order_id: Reference, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[PaymentOut]:
    return await _page(session, actor, params, order_id=order_id)


@router.get("/status/{status}")
async def payments_by_status(
    status: PaymentStatus, session: Session, actor: Admin, params: PageQuery
) -> Page[PaymentOut]:
    return await _page(session, actor, params, status=status)


async def _visible(session: AsyncSession, payment: Payment, actor: Actor) -> PaymentOut:
    """The payment if the caller may see it; to others it does not exist. The role counts as
    well as the id: a driver or vendor whose id is a customer's sees nothing of theirs."""
    own = actor.role is Role.CUSTOMER and payment.customer_id == actor.id
    if actor.role not in ADMIN_ROLES and not own:
        raise NotFound(f"no payment {payment.id}", param="id")
    return await _out(session, payment)


@router.get("/number/{number}")
async def payment_by_number(number: Reference, session: Session, actor: CurrentActor) -> PaymentOut:
    return await _visible(session, await payments.get_by_number(session, number), actor)


@router.get("/transaction/{transaction_id}")
async def payment_by_transaction(
    transaction_id: Reference, session: Session, actor: CurrentActor
) -> PaymentOut:
    """By Stripe's payment intent (``pi_...``) or charge (``ch_...``) id."""
    return await _visible(
        session, await payments.get_by_transaction(session, transaction_id), actor
    )


@router.get("/{payment_id}")
async def get_payment(payment_id: uuid.UUID, session: Session, actor: CurrentActor) -> PaymentOut:
    return await _visible(session, await payments.get(session, payment_id), actor)


class CaptureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = Field(None, description="Part of the authorization; default: all")


@router.put("/{payment_id}/capture", status_code=202)
@router.post("/{payment_id}/capture", status_code=202)
async def capture_payment(
    payment_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    body: CaptureIn | None = None,
) -> PaymentOut:
    """Capture an authorized payment, in full or ``amount`` of it (admins only)."""
    payment = await payments.get(session, payment_id)
    check_payment_status(
        PaymentStatus(payment.status), frozenset({PaymentStatus.AUTHORIZED}), "capture"
    )
    amount = body.amount if body else None
    if amount is not None and amount > payment.amount_authorized:
        raise ValidationError(
            f"cannot capture {amount}: {payment.amount_authorized} is authorized",
            code="amount_too_large",
            param="amount",
        )
    capture = CapturePayment(amount=amount, by=actor.id)
    await signal(request, payment_workflow(payment, settings), "capture", capture)
    return await _out(session, payment)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


async def _close(
    request: Request,
    session: Session,
    payment_id: uuid.UUID,
    actor: Actor,
    settings: Settings,
    name: str,
    reason: str,
) -> PaymentOut:
    payment = await payments.get(session, payment_id)
    check_customer(actor, payment.customer_id)
    check_payment_status(PaymentStatus(payment.status), PAYMENT_CANCELLABLE, name)
    close = ClosePayment(reason=reason.strip(), by=actor.id)
    await signal(request, payment_workflow(payment, settings), name, close)
    return await _out(session, payment)


@router.put("/{payment_id}/cancel", status_code=202)
@router.post("/{payment_id}/cancel", status_code=202)
async def cancel_payment(
    payment_id: uuid.UUID,
    body: CloseIn,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> PaymentOut:
    """Cancel before capture (the customer or an admin); an authorization is released."""
    return await _close(request, session, payment_id, actor, settings, "cancel", body.reason)


@router.put("/{payment_id}/fail", status_code=202)
@router.post("/{payment_id}/fail", status_code=202)
async def fail_payment(
    payment_id: uuid.UUID,
    body: CloseIn,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> PaymentOut:
    """Mark failed before capture, with the reason (admins only)."""
    return await _close(request, session, payment_id, actor, settings, "fail", body.reason)

"""Refunds: request (the amount is reserved on the payment at once, so concurrent requests
can never together exceed the capture), read and look up, and the admin's ``approve`` and
``reject`` of a refund above the approval threshold, signalled to the refund's workflow."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.customers import ADMIN_ROLES, check_customer
from api.deps import Admin, CurrentActor, Session, get_settings
from api.fields import Amount
from api.pagination import Page, PageParams, PageQuery, paginate, uuid_cursor
from api.workflow_calls import WorkflowStart, signal, start_after_commit
from domain.actors import Actor, Role
from domain.errors import NotFound
from domain.payments import RefundReason, RefundStatus
from models.payments import Refund
from services import payments, refunds
from settings import Settings
from workflows.types import ApproveRefund, RefundInput, RejectRefund

router = APIRouter(prefix="/refunds", tags=["refunds"])

AppSettings = Annotated[Settings, Depends(get_settings)]
Reference = Annotated[str, Path(min_length=1, max_length=200)]


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_id: uuid.UUID
    amount: Amount | None = Field(None, description="Default: all that is left to refund")
    reason: RefundReason = RefundReason.REQUESTED_BY_CUSTOMER
    note: str | None = Field(None, max_length=1000)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class RefundOut(BaseModel):
    id: uuid.UUID
    object: str = "refund"
    number: str
    payment_id: uuid.UUID
    order_id: str | None
    amount: int
    currency: str
    reason: RefundReason
    note: str | None
    status: RefundStatus
    requires_approval: bool
    requested_by: str
    approved_by: str | None
    stripe_refund_id: str | None
    failure_code: str | None
    failure_reason: str | None
    metadata: dict[str, Any]
    created_at: datetime
    closed_at: datetime | None
    updated_at: datetime
    workflow_id: str


def workflow_id(refund_id: uuid.UUID) -> str:
    return f"refund-{refund_id}"


def refund_out(refund: Refund) -> RefundOut:
    return RefundOut(
        id=refund.id,
        number=refund.number,
        payment_id=refund.payment_id,
        order_id=refund.order_id,
        amount=refund.amount,
        currency=refund.currency,
        reason=RefundReason(refund.reason),
        note=refund.note,
        status=RefundStatus(refund.status),
        requires_approval=refund.requires_approval,
        requested_by=refund.requested_by,
        approved_by=refund.approved_by,
        stripe_refund_id=refund.stripe_refund_id,
        failure_code=refund.failure_code,
        failure_reason=refund.failure_reason,
        metadata=refund.metadata_,
        created_at=refund.created_at,
        closed_at=refund.closed_at,
        updated_at=refund.updated_at,
        workflow_id=workflow_id(refund.id),
    )


def refund_workflow(refund: Refund, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="Refund",
        id=workflow_id(refund.id),
        arg=RefundInput(refund_id=refund.id, stripe_task_queue=settings.stripe_task_queue),
        task_queue=settings.task_queue,
    )


@router.post("", status_code=201)
async def create_refund(
    body: RefundIn, request: Request, session: Session, actor: CurrentActor, settings: AppSettings
) -> RefundOut:
    """Reserve the refund on the payment (409 ``refund_exceeds_captured`` when it does not
    fit), then start its workflow; above ``TOLLGATE_REFUND_APPROVAL_THRESHOLD`` it waits for
    an admin's ``approve``. Customers may refund their own payments."""
    payment = await payments.get(session, body.payment_id)
    check_customer(actor, payment.customer_id)
    refund = await refunds.create_refund(
        session,
        payment_id=payment.id,
        amount=body.amount,
        reason=body.reason,
        note=body.note,
        metadata=body.metadata,
        actor=actor,
        approval_threshold=settings.refund_approval_threshold,
    )
    start_after_commit(request, refund_workflow(refund, settings))
    return refund_out(refund)


async def _page(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    payment_id: uuid.UUID | None = None,
    order_id: str | None = None,
    status: RefundStatus | None = None,
) -> Page[RefundOut]:
    """A page of refunds; a customer sees only those of its own payments, other roles none
    (403, as the payments' lists)."""
    if actor.role not in ADMIN_ROLES:
        check_customer(actor, actor.id)
    rows = await refunds.list_refunds(
        session,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
        payment_id=payment_id,
        order_id=order_id,
        status=status.value if status else None,
        customer_id=None if actor.role in ADMIN_ROLES else actor.id,
    )
    return paginate(rows, params.limit, refund_out, lambda item: item.id)


@router.get("")
async def list_refunds(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    payment_id: uuid.UUID | None = None,
    order_id: Annotated[str | None, Query(max_length=200)] = None,
    status: RefundStatus | None = None,
) -> Page[RefundOut]:
    """Newest first, filtered."""
    return await _page(
        session, actor, params, payment_id=payment_id, order_id=order_id, status=status
    )


@router.get("/payment/{payment_id}")
async def payment_refunds(
    payment_id: uuid.UUID, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[RefundOut]:
    return await _page(session, actor, params, payment_id=payment_id)


@router.get("/order/{order_id}")
async def order_refunds(
    order_id: Reference, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[RefundOut]:
    return await _page(session, actor, params, order_id=order_id)


@router.get("/status/{status}")
async def refunds_by_status(
    status: RefundStatus, session: Session, actor: Admin, params: PageQuery
) -> Page[RefundOut]:
    return await _page(session, actor, params, status=status)


async def _visible(session: AsyncSession, refund: Refund, actor: Actor) -> RefundOut:
    if actor.role not in ADMIN_ROLES:
        payment = await payments.get(session, refund.payment_id)
        if actor.role is not Role.CUSTOMER or payment.customer_id != actor.id:
            raise NotFound(f"no refund {refund.id}", param="id")
    return refund_out(refund)


@router.get("/refund-number/{number}")
@router.get("/number/{number}")
async def refund_by_number(number: Reference, session: Session, actor: CurrentActor) -> RefundOut:
    return await _visible(session, await refunds.get_by_number(session, number), actor)


@router.get("/{refund_id}")
async def get_refund(refund_id: uuid.UUID, session: Session, actor: CurrentActor) -> RefundOut:
    return await _visible(session, await refunds.get(session, refund_id), actor)


async def _waiting(session: AsyncSession, refund_id: uuid.UUID) -> Refund:
    refund = await refunds.get(session, refund_id)
    refunds.check_status(refund, RefundStatus.PENDING_APPROVAL, "decide on")
    return refund


@router.post("/{refund_id}/approve", status_code=202)
async def approve_refund(
    refund_id: uuid.UUID, request: Request, session: Session, actor: Admin, settings: AppSettings
) -> RefundOut:
    """Approve a refund waiting for approval: it goes to Stripe."""
    refund = await _waiting(session, refund_id)
    await signal(request, refund_workflow(refund, settings), "approve", ApproveRefund(by=actor.id))
    return refund_out(refund)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


@router.post("/{refund_id}/reject", status_code=202)
async def reject_refund(
    refund_id: uuid.UUID,
    body: RejectIn,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> RefundOut:
    """Refuse a refund waiting for approval: its amount is refundable again."""
    refund = await _waiting(session, refund_id)
    reject = RejectRefund(reason=body.reason.strip(), by=actor.id)
    await signal(request, refund_workflow(refund, settings), "reject", reject)
    return refund_out(refund)

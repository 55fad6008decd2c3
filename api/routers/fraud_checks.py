"""Fraud checks (admins only): lists by payment, customer, risk level and status, a
customer's average risk score, and the review decision on a MEDIUM-risk payment, which is
signalled to the payment's workflow (``approve_review`` or ``reject_review``)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, Session, get_settings
from api.pagination import Page, PageParams, PageQuery, paginate, uuid_cursor
from api.routers.payments import payment_workflow
from api.workflow_calls import signal
from domain.fraud import FraudCheckStatus, ReviewDecision, RiskLevel
from models.payments import FraudCheck
from services import fraud_checks, payments
from settings import Settings
from workflows.types import ReviewPayment

router = APIRouter(prefix="/fraud-checks", tags=["fraud checks"])

AppSettings = Annotated[Settings, Depends(get_settings)]
CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


class RuleHitOut(BaseModel):
    rule: str
    points: int
    detail: str


class FraudCheckOut(BaseModel):
    id: uuid.UUID
    object: str = "fraud_check"
    payment_id: uuid.UUID
    customer_id: str
    payment_method_id: uuid.UUID | None
    score: int
    risk_level: RiskLevel
    status: FraudCheckStatus
    rules: list[RuleHitOut] = Field(description="The rules that fired and their points")
    reviewed_by: str | None
    review_notes: str | None
    reviewed_at: datetime | None
    created_at: datetime
    updated_at: datetime


def check_out(check: FraudCheck) -> FraudCheckOut:
    return FraudCheckOut(
        id=check.id,
        payment_id=check.payment_id,
        customer_id=check.customer_id,
        payment_method_id=check.payment_method_id,
        score=check.score,
        risk_level=RiskLevel(check.risk_level),
        status=FraudCheckStatus(check.status),
        rules=[RuleHitOut(**hit) for hit in check.rules],
        reviewed_by=check.reviewed_by,
        review_notes=check.review_notes,
        reviewed_at=check.reviewed_at,
        created_at=check.created_at,
        updated_at=check.updated_at,
    )


async def _page(session: AsyncSession, params: PageParams, **filters: Any) -> Page[FraudCheckOut]:
    rows = await fraud_checks.list_checks(
        session, limit=params.limit, starting_after=uuid_cursor(params.starting_after), **filters
    )
    return paginate(rows, params.limit, check_out, lambda item: item.id)


@router.get("")
async def list_checks(
    session: Session,
    _: Admin,
    params: PageQuery,
    payment_id: uuid.UUID | None = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    risk_level: RiskLevel | None = None,
    status: FraudCheckStatus | None = None,
) -> Page[FraudCheckOut]:
    """Newest first, filtered."""
    return await _page(
        session,
        params,
        payment_id=payment_id,
        customer_id=customer_id,
        risk_level=risk_level.value if risk_level else None,
        status=status.value if status else None,
    )


@router.get("/payment/{payment_id}")
async def payment_checks(
    payment_id: uuid.UUID, session: Session, _: Admin, params: PageQuery
) -> Page[FraudCheckOut]:
    return await _page(session, params, payment_id=payment_id)


@router.get("/customer/{customer_id}")
async def customer_checks(
    customer_id: CustomerId, session: Session, _: Admin, params: PageQuery
) -> Page[FraudCheckOut]:
    return await _page(session, params, customer_id=customer_id)


class AverageRiskOut(BaseModel):
    object: str = "average_risk_score"
    customer_id: str
    average_score: float | None = Field(description="None when the customer has no check")
    checks: int


@router.get("/customer/{customer_id}/average-risk-score")
async def average_risk_score(customer_id: CustomerId, session: Session, _: Admin) -> AverageRiskOut:
    average, count = await fraud_checks.average_score(session, customer_id)
    return AverageRiskOut(customer_id=customer_id, average_score=average, checks=count)


@router.get("/risk-level/{risk_level}")
async def checks_by_level(
    risk_level: RiskLevel, session: Session, _: Admin, params: PageQuery
) -> Page[FraudCheckOut]:
    return await _page(session, params, risk_level=risk_level.value)


@router.get("/status/{status}")
async def checks_by_status(
    status: FraudCheckStatus, session: Session, _: Admin, params: PageQuery
) -> Page[FraudCheckOut]:
    return await _page(session, params, status=status.value)


@router.get("/{check_id}")
async def get_check(check_id: uuid.UUID, session: Session, _: Admin) -> FraudCheckOut:
    return check_out(await fraud_checks.get(session, check_id))


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    notes: str | None = Field(None, max_length=2000)


@router.put("/{check_id}/review", status_code=202)
async def review_check(
    check_id: uuid.UUID,
    body: ReviewIn,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> FraudCheckOut:
    """Approve (the payment is authorized) or reject (it fails) a check pending review; the
    payment's workflow records the decision."""
    check = await fraud_checks.pending_review(session, check_id)
    payment = await payments.get(session, check.payment_id)
    name = "approve_review" if body.decision is ReviewDecision.APPROVE else "reject_review"
    review = ReviewPayment(notes=body.notes, by=actor.id)
    await signal(request, payment_workflow(payment, settings), name, review)
    return check_out(check)

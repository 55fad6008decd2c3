"""Plans: a price in a currency billed every ``interval_count`` ``interval``s, with an
optional trial. Billing and platform admins create them and take them in and out of sale
(an inactive plan takes no new subscriptions; those on it go on being billed); anyone
signed in reads them."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, CurrentActor, Session
from api.fields import Amount, Currency
from api.pagination import Page, PageQuery, paginate, row_cursor
from domain.errors import ValidationError
from domain.money import Money
from domain.subscriptions import Interval
from models.subscriptions import Plan
from services import plans

router = APIRouter(prefix="/plans", tags=["subscriptions"])


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    amount: Amount
    currency: Currency
    interval: Interval
    interval_count: int = Field(1, ge=1, le=365, description="Billed every this many intervals")
    trial_days: int = Field(0, ge=0, le=730, description="Free days before the first charge")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class PlanOut(BaseModel):
    id: uuid.UUID
    object: str = "plan"
    name: str
    amount: int
    currency: str
    interval: Interval
    interval_count: int
    trial_days: int
    active: bool
    metadata: dict[str, Any]
    created_at: datetime


def plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        name=plan.name,
        amount=plan.amount,
        currency=plan.currency,
        interval=Interval(plan.interval),
        interval_count=plan.interval_count,
        trial_days=plan.trial_days,
        active=plan.active,
        metadata=plan.metadata_,
        created_at=plan.created_at,
    )


def plan_price(amount: int, currency: str) -> Money:
    """Plans are charged by card at Stripe, which takes three-letter ISO 4217 currencies:
    a longer code the ledger knows (USDC, TOKEN) is refused."""
    price = Money(amount, currency)
    if len(price.currency) != 3:
        raise ValidationError(
            f"plans are charged by card and take three-letter currencies, not {price.currency}",
            code="invalid_currency",
            param="currency",
        )
    return price


@router.post("", status_code=201)
async def create_plan(body: PlanIn, session: Session, actor: Admin) -> PlanOut:
    """A new plan, active at once (platform and billing admins)."""
    plan = await plans.create_plan(
        session,
        name=body.name.strip(),
        price=plan_price(body.amount, body.currency),
        interval=body.interval,
        interval_count=body.interval_count,
        trial_days=body.trial_days,
        actor=actor,
        metadata=body.metadata,
    )
    return plan_out(plan)


@router.get("")
async def list_plans(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    active: Annotated[bool | None, Query(description="Only plans in (or out of) sale")] = None,
) -> Page[PlanOut]:
    """Newest first."""
    after = await row_cursor(
        params.starting_after, lambda plan_id: plans.get(session, plan_id), lambda _: True
    )
    rows = await plans.list_plans(session, active=active, after=after, limit=params.limit + 1)
    return paginate(rows, params.limit, plan_out, lambda item: item.id)


@router.get("/{plan_id}")
async def get_plan(plan_id: uuid.UUID, session: Session, actor: CurrentActor) -> PlanOut:
    return plan_out(await plans.get(session, plan_id))


@router.post("/{plan_id}/deactivate")
async def deactivate_plan(plan_id: uuid.UUID, session: Session, actor: Admin) -> PlanOut:
    """Out of sale: no new subscriptions; those on it go on being billed. Idempotent."""
    return plan_out(await plans.set_active(session, plan_id, False, actor=actor))


@router.post("/{plan_id}/activate")
async def activate_plan(plan_id: uuid.UUID, session: Session, actor: Admin) -> PlanOut:
    """Back in sale. Idempotent."""
    return plan_out(await plans.set_active(session, plan_id, True, actor=actor))

"""Commission rules: per vendor, per category and default, with a priority, effective dates
and a percentage plus a fixed part. Admins create them (a rule conflicting with an active
one is a 409 ``commission_rule_conflict`` naming it) and take them in and out of force;
``best-applicable`` and ``calculate`` answer which rule applies to a sale and what it takes
(admins, or a vendor about itself)."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.customers import ADMIN_ROLES
from api.deps import Admin, CurrentActor, Session
from api.fields import Currency, Party
from api.pagination import Page, PageQuery, paginate, row_cursor
from domain.actors import Actor, Role
from domain.commissions import MAX_PRIORITY, RuleScope
from domain.errors import PermissionDenied
from domain.ledger import MAX_POSTING_AMOUNT
from domain.payments import BPS
from models.commissions import CommissionRule
from services import commissions

router = APIRouter(prefix="/commission-rules", tags=["commissions"])

Key = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
MinorUnits = Annotated[
    int, Field(strict=True, ge=0, le=MAX_POSTING_AMOUNT, description="Minor units")
]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: RuleScope
    vendor_id: Key | None = Field(None, description="Required for (and only for) vendor rules")
    category: Key | None = Field(None, description="Required for (and only for) category rules")
    priority: int = Field(0, ge=0, le=MAX_PRIORITY, description="Higher wins within a scope")
    effective_from: AwareDatetime | None = Field(None, description="Inclusive; default: now")
    effective_to: AwareDatetime | None = Field(None, description="Exclusive; default: no end")
    percentage_bps: int = Field(strict=True, ge=0, le=BPS, description="Basis points of the amount")
    fixed_amount: MinorUnits = 0
    currency: Currency
    active: bool = True
    description: str | None = Field(None, max_length=1000)


class RuleOut(BaseModel):
    id: uuid.UUID
    object: str = "commission_rule"
    scope: RuleScope
    vendor_id: str | None
    category: str | None
    priority: int
    effective_from: datetime
    effective_to: datetime | None
    percentage_bps: int
    fixed_amount: int
    currency: str
    active: bool
    description: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def rule_out(rule: CommissionRule) -> RuleOut:
    return RuleOut(
        id=rule.id,
        scope=RuleScope(rule.scope),
        vendor_id=rule.vendor_id,
        category=rule.category,
        priority=rule.priority,
        effective_from=rule.effective_from,
        effective_to=rule.effective_to,
        percentage_bps=rule.percentage_bps,
        fixed_amount=rule.fixed_amount,
        currency=rule.currency,
        active=rule.active,
        description=rule.description,
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _for_vendor(actor: Actor, vendor_id: str | None) -> str | None:
    """Admins ask about anyone; a vendor only about itself (its own id by default)."""
    if actor.role in ADMIN_ROLES:
        return vendor_id
    if actor.role is Role.VENDOR and vendor_id in (None, actor.id):
        return actor.id
    raise PermissionDenied("only admins, or a vendor about itself, may ask for commissions")


@router.post("", status_code=201)
async def create_rule(body: RuleIn, session: Session, actor: Admin) -> RuleOut:
    """A new rule (platform and billing admins); an active one that conflicts with an
    active rule (same scope, key, currency and priority, overlapping dates) is a 409
    ``commission_rule_conflict``."""
    rule = await commissions.create_rule(
        session,
        scope=body.scope,
        vendor_id=body.vendor_id,
        category=body.category,
        priority=body.priority,
        effective_from=body.effective_from or datetime.now(UTC),
        effective_to=body.effective_to,
        percentage_bps=body.percentage_bps,
        fixed_amount=body.fixed_amount,
        currency=body.currency,
        active=body.active,
        description=body.description,
        actor=actor,
    )
    return rule_out(rule)


@router.get("")
async def list_rules(
    session: Session,
    actor: Admin,
    params: PageQuery,
    scope: RuleScope | None = None,
    vendor_id: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    active: bool | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=8)] = None,
) -> Page[RuleOut]:
    """Newest first, filtered."""
    after = await row_cursor(
        params.starting_after, lambda rule_id: commissions.get(session, rule_id), lambda _: True
    )
    rows = await commissions.list_rules(
        session,
        limit=params.limit,
        after=after,
        scope=scope,
        vendor_id=vendor_id,
        category=category,
        active=active,
        currency=currency,
    )
    return paginate(rows, params.limit, rule_out, lambda item: item.id)


@router.get("/best-applicable")
async def best_applicable(
    session: Session,
    actor: CurrentActor,
    vendor_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    category: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    at: Annotated[AwareDatetime | None, Query(description="Default: now")] = None,
    currency: Annotated[
        str | None, Query(min_length=3, max_length=8, description="Only rules in it")
    ] = None,
) -> RuleOut:
    """The rule that applies at ``at``: a vendor rule over a category rule over a default;
    within a scope the highest priority, then the latest ``effective_from``. 404
    ``no_applicable_commission_rule`` when none does."""
    rule = await commissions.best_applicable(
        session,
        vendor_id=_for_vendor(actor, vendor_id),
        category=category,
        at=at or datetime.now(UTC),
        currency=currency,
    )
    return rule_out(rule)


class CalculateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MinorUnits
    currency: Currency
    vendor_id: Party | None = None
    category: Key | None = None
    at: AwareDatetime | None = Field(None, description="Default: now")


class CalculationOut(BaseModel):
    object: str = "commission_calculation"
    amount: int
    currency: str
    at: datetime
    percentage_part: int = Field(description="amount * bps / 10,000, rounded half up")
    fixed_part: int
    commission: int = Field(description="percentage_part + fixed_part, capped at the amount")
    capped: bool
    net: int = Field(description="amount - commission")
    rule: RuleOut


@router.post("/calculate")
async def calculate(body: CalculateIn, session: Session, actor: CurrentActor) -> CalculationOut:
    """The commission on ``amount`` by the rule that applies in its currency (404
    ``no_applicable_commission_rule`` when none does). Nothing is stored."""
    at = body.at or datetime.now(UTC)
    result = await commissions.calculate(
        session,
        amount=body.amount,
        currency=body.currency,
        vendor_id=_for_vendor(actor, body.vendor_id),
        category=body.category,
        at=at,
    )
    return CalculationOut(
        amount=result.amount,
        currency=result.currency,
        at=at,
        percentage_part=result.percentage_part,
        fixed_part=result.fixed_part,
        commission=result.commission,
        capped=result.capped,
        net=result.net,
        rule=rule_out(result.rule),
    )


@router.get("/{rule_id}")
async def get_rule(rule_id: uuid.UUID, session: Session, actor: Admin) -> RuleOut:
    return rule_out(await commissions.get(session, rule_id))


@router.post("/{rule_id}/activate")
async def activate_rule(rule_id: uuid.UUID, session: Session, actor: Admin) -> RuleOut:
    """In force again; conflicts are checked anew (409 ``commission_rule_conflict``).
    Idempotent."""
    return rule_out(await commissions.set_active(session, rule_id, True, actor=actor))


@router.post("/{rule_id}/deactivate")
async def deactivate_rule(rule_id: uuid.UUID, session: Session, actor: Admin) -> RuleOut:
    """Out of force: it applies to nothing and conflicts with nothing. Idempotent."""
    return rule_out(await commissions.set_active(session, rule_id, False, actor=actor))

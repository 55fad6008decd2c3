"""Plans: a price, a currency and a billing interval, with an optional trial."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import NotFound, ValidationError
from domain.money import Money
from domain.subscriptions import Interval
from models.subscriptions import Plan
from services import outbox
from services.pagination import newest_first


def plan_view(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "amount": plan.amount,
        "currency": plan.currency,
        "interval": plan.interval,
        "interval_count": plan.interval_count,
        "trial_days": plan.trial_days,
        "active": plan.active,
    }


async def _changed(
    session: AsyncSession, plan: Plan, action: str, *, actor: Actor, before: dict[str, Any] | None
) -> None:
    await outbox.record_change(
        session,
        entity_type="plan",
        entity_id=plan.id,
        action=action,
        actor=actor,
        before=before,
        after=plan_view(plan),
        announce=True,
    )


async def create_plan(
    session: AsyncSession,
    *,
    name: str,
    price: Money,
    interval: Interval,
    interval_count: int,
    trial_days: int,
    actor: Actor,
    metadata: dict[str, Any] | None = None,
) -> Plan:
    if price.amount <= 0:
        raise ValidationError("A plan's price is positive", param="amount")
    plan = Plan(
        id=uuid.uuid4(),
        name=name,
        amount=price.amount,
        currency=price.currency,
        interval=interval.value,
        interval_count=interval_count,
        trial_days=trial_days,
        active=True,
        metadata_=metadata or {},
    )
    session.add(plan)
    await _changed(session, plan, "created", actor=actor, before=None)
    return plan


async def get(session: AsyncSession, plan_id: uuid.UUID) -> Plan:
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", param="plan_id")
    return plan


async def set_active(
    session: AsyncSession, plan_id: uuid.UUID, active: bool, *, actor: Actor
) -> Plan:
    """An inactive plan takes no new subscriptions; those on it go on being billed."""
    plan = await get(session, plan_id)
    if plan.active != active:
        before = plan_view(plan)
        plan.active = active
        await _changed(
            session, plan, "activated" if active else "deactivated", actor=actor, before=before
        )
    return plan


async def list_plans(
    session: AsyncSession, *, active: bool | None, after: Plan | None, limit: int
) -> list[Plan]:
    query = select(Plan)
    if active is not None:
        query = query.where(Plan.active == active)
    return list(await session.scalars(newest_first(query, Plan, after).limit(limit)))

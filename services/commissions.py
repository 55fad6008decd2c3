"""Commission rules: creation with conflict detection, activation and deactivation (which
re-checks conflicts), lookups, and the rule that applies to a sale with the commission it
takes. Rules are checked and chosen by ``domain/commissions.py``; this module loads them.

Conflict checks are serialized per (scope, key, currency) with a transaction-scoped advisory
lock, so two rules created at the same time cannot both pass the check."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import commissions as rules
from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.money import validate_currency
from models.commissions import CommissionRule
from services import outbox
from services.locking import locked
from services.pagination import newest_first


def rule_view(rule: CommissionRule) -> dict[str, Any]:
    return {
        "scope": rule.scope,
        "vendor_id": rule.vendor_id,
        "category": rule.category,
        "priority": rule.priority,
        "effective_from": rule.effective_from.isoformat(),
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "percentage_bps": rule.percentage_bps,
        "fixed_amount": rule.fixed_amount,
        "currency": rule.currency,
        "active": rule.active,
    }


def as_domain(rule: CommissionRule) -> rules.CommissionRule:
    return rules.CommissionRule(
        id=rule.id,
        scope=rules.RuleScope(rule.scope),
        vendor_id=rule.vendor_id,
        category=rule.category,
        priority=rule.priority,
        effective_from=rule.effective_from,
        effective_to=rule.effective_to,
        percentage_bps=rule.percentage_bps,
        fixed_amount=rule.fixed_amount,
        currency=rule.currency,
        active=rule.active,
    )


async def _changed(
    session: AsyncSession,
    rule: CommissionRule,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="commission_rule",
        entity_id=rule.id,
        action=action,
        actor=actor,
        before=before,
        after=rule_view(rule),
        announce=True,
    )


async def _lock_key(session: AsyncSession, rule: rules.CommissionRule) -> None:
    """Serializes conflict checks of rules that could conflict (same scope, key, currency)
    until the transaction ends."""
    name = f"commission-rules:{rule.scope.value}:{rule.key or ''}:{rule.currency}"
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


async def _check_conflicts(session: AsyncSession, rule: rules.CommissionRule) -> None:
    """Refuses ``rule`` (active) when a stored active rule conflicts with it."""
    await _lock_key(session, rule)
    query = select(CommissionRule).where(
        CommissionRule.active.is_(True),
        CommissionRule.scope == rule.scope.value,
        CommissionRule.currency == rule.currency,
        CommissionRule.priority == rule.priority,
    )
    if rule.scope is rules.RuleScope.VENDOR:
        query = query.where(CommissionRule.vendor_id == rule.vendor_id)
    elif rule.scope is rules.RuleScope.CATEGORY:
        query = query.where(CommissionRule.category == rule.category)
    if rule.effective_to is not None:
        query = query.where(CommissionRule.effective_from < rule.effective_to)
    query = query.where(
        or_(
            CommissionRule.effective_to.is_(None), CommissionRule.effective_to > rule.effective_from
        )
    )
    stored = [as_domain(row) for row in await session.scalars(query)]
    found = rules.conflicts(rule, stored)
    if found:
        ids = sorted(str(other.id) for other in found)
        raise Conflict(
            f"the rule conflicts with active rule(s) {', '.join(ids)}: same scope, "
            f"{'key, ' if rule.key is not None else ''}currency and priority, overlapping in time",
            code="commission_rule_conflict",
            conflicting_rule_ids=ids,
        )


async def create_rule(
    session: AsyncSession,
    *,
    scope: rules.RuleScope,
    vendor_id: str | None,
    category: str | None,
    priority: int,
    effective_from: datetime,
    effective_to: datetime | None,
    percentage_bps: int,
    fixed_amount: int,
    currency: str,
    actor: Actor,
    active: bool = True,
    description: str | None = None,
) -> CommissionRule:
    """A rule, validated (``ValidationError`` naming the field) and, if active, checked for
    conflicts (409 ``commission_rule_conflict`` naming the rules in the way)."""
    candidate = rules.CommissionRule(
        scope=scope,
        vendor_id=vendor_id,
        category=category,
        priority=priority,
        effective_from=effective_from,
        effective_to=effective_to,
        percentage_bps=percentage_bps,
        fixed_amount=fixed_amount,
        currency=currency,
        active=active,
    )
    if candidate.active:
        await _check_conflicts(session, candidate)
    rule = CommissionRule(
        id=uuid.uuid4(),
        scope=candidate.scope.value,
        vendor_id=candidate.vendor_id,
        category=candidate.category,
        priority=candidate.priority,
        effective_from=candidate.effective_from,
        effective_to=candidate.effective_to,
        percentage_bps=candidate.percentage_bps,
        fixed_amount=candidate.fixed_amount,
        currency=candidate.currency,
        active=candidate.active,
        description=description,
        created_by=actor.id,
    )
    session.add(rule)
    await _changed(session, rule, "created", actor=actor, before=None)
    return rule


async def get(
    session: AsyncSession, rule_id: uuid.UUID, *, for_update: bool = False
) -> CommissionRule:
    query = select(CommissionRule).where(CommissionRule.id == rule_id)
    rule = await session.scalar(locked(query) if for_update else query)
    if rule is None:
        raise NotFound(f"no commission rule {rule_id}", param="id")
    return rule


async def list_rules(
    session: AsyncSession,
    *,
    limit: int,
    after: CommissionRule | None = None,
    scope: rules.RuleScope | None = None,
    vendor_id: str | None = None,
    category: str | None = None,
    active: bool | None = None,
    currency: str | None = None,
) -> Sequence[CommissionRule]:
    """Newest first; ``limit + 1`` rows so the caller knows whether more follow."""
    query = select(CommissionRule)
    if scope is not None:
        query = query.where(CommissionRule.scope == scope.value)
    if vendor_id is not None:
        query = query.where(CommissionRule.vendor_id == vendor_id)
    if category is not None:
        query = query.where(CommissionRule.category == category)
    if active is not None:
        query = query.where(CommissionRule.active.is_(active))
    if currency is not None:
        query = query.where(CommissionRule.currency == validate_currency(currency))
    return (
        await session.scalars(newest_first(query, CommissionRule, after).limit(limit + 1))
    ).all()


async def set_active(
    session: AsyncSession, rule_id: uuid.UUID, active: bool, *, actor: Actor
) -> CommissionRule:
    """Activates (re-checking conflicts) or deactivates a rule; already so is a no-op."""
    rule = await get(session, rule_id, for_update=True)
    if rule.active == active:
        return rule
    if active:
        await _check_conflicts(session, replace(as_domain(rule), active=True))
    before = rule_view(rule)
    rule.active = active
    await _changed(
        session, rule, "activated" if active else "deactivated", actor=actor, before=before
    )
    return rule


async def candidates(
    session: AsyncSession,
    *,
    vendor_id: str | None,
    category: str | None,
    at: datetime,
    currency: str | None,
) -> list[rules.CommissionRule]:
    """The active rules that may apply at ``at``: this vendor's, this category's, the
    defaults (``domain.commissions.best_applicable`` chooses)."""
    scopes = [CommissionRule.scope == rules.RuleScope.DEFAULT.value]
    if vendor_id is not None:
        scopes.append(
            (CommissionRule.scope == rules.RuleScope.VENDOR.value)
            & (CommissionRule.vendor_id == vendor_id)
        )
    if category is not None:
        scopes.append(
            (CommissionRule.scope == rules.RuleScope.CATEGORY.value)
            & (CommissionRule.category == category)
        )
    query = select(CommissionRule).where(
        CommissionRule.active.is_(True),
        or_(*scopes),
        CommissionRule.effective_from <= at,
        or_(CommissionRule.effective_to.is_(None), CommissionRule.effective_to > at),
    )
    if currency is not None:
        query = query.where(CommissionRule.currency == currency)
    return [as_domain(row) for row in await session.scalars(query)]


def _check_at(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError("at needs a time zone (e.g. ...Z)", param="at")
    return at


async def best_applicable(
    session: AsyncSession,
    *,
    vendor_id: str | None,
    category: str | None,
    at: datetime,
    currency: str | None = None,
) -> CommissionRule:
    """The rule that applies (vendor over category over default; see the domain), or 404
    ``no_applicable_commission_rule``."""
    _check_at(at)
    currency = validate_currency(currency) if currency is not None else None
    found = rules.best_applicable(
        await candidates(session, vendor_id=vendor_id, category=category, at=at, currency=currency),
        vendor_id,
        category,
        at,
        currency,
    )
    if found is None:
        raise NotFound(
            "no active commission rule applies"
            + (f" to vendor {vendor_id}" if vendor_id else "")
            + (f" in category {category}" if category else "")
            + (f" in {currency}" if currency else "")
            + f" at {at.isoformat()}",
            code="no_applicable_commission_rule",
        )
    return await get(session, found.id)


@dataclass(frozen=True)
class Calculation:
    rule: CommissionRule
    amount: int
    currency: str
    percentage_part: int
    fixed_part: int
    commission: int

    @property
    def net(self) -> int:
        return self.amount - self.commission

    @property
    def capped(self) -> bool:
        return self.commission < self.percentage_part + self.fixed_part


async def calculate(
    session: AsyncSession,
    *,
    amount: int,
    currency: str,
    vendor_id: str | None,
    category: str | None,
    at: datetime,
) -> Calculation:
    """The commission on ``amount`` by the rule that applies to it (in its currency)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValidationError("amount is a non-negative integer of minor units", param="amount")
    currency = validate_currency(currency)
    rule = await best_applicable(
        session, vendor_id=vendor_id, category=category, at=at, currency=currency
    )
    return Calculation(
        rule=rule,
        amount=amount,
        currency=currency,
        percentage_part=rules.percentage_part(amount, rule.percentage_bps),
        fixed_part=rule.fixed_amount,
        commission=rules.calculate(as_domain(rule), amount),
    )


async def terms_for(
    session: AsyncSession,
    *,
    vendor_id: str,
    category: str | None,
    currency: str,
    at: datetime,
) -> tuple[int, int] | None:
    """The ``(percentage_bps, fixed_amount)`` of the rule that applies to a vendor's part
    of a payment, or None when no rule does (the caller's default applies)."""
    try:
        rule = await best_applicable(
            session, vendor_id=vendor_id, category=category, at=at, currency=currency
        )
    except NotFound:
        return None
    return rule.percentage_bps, rule.fixed_amount

"""Commission rules on a real PostgreSQL: creation with its validation and conflict detection
(also between two creations at the same time), activation re-checking conflicts, the list's
filters, and the rule that applies with the commission it takes. Each change is audited and
announced."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import Actor, Role
from domain.commissions import RuleScope
from domain.errors import Conflict, NotFound, TollgateError, ValidationError
from models.audit import AuditEvent
from models.commissions import CommissionRule
from models.outbox import OutboxEvent
from services import commissions

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)
JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make(session: AsyncSession, **changes: Any) -> CommissionRule:
    fields: dict[str, Any] = {
        "scope": RuleScope.DEFAULT,
        "vendor_id": None,
        "category": None,
        "priority": 0,
        "effective_from": JAN,
        "effective_to": None,
        "percentage_bps": 1_000,
        "fixed_amount": 0,
        "currency": "USD",
        "actor": ADMIN,
    }
    return await commissions.create_rule(session, **{**fields, **changes})


async def events(session: AsyncSession, rule_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxEvent.event_type)
        .where(OutboxEvent.entity_id == str(rule_id))
        .order_by(OutboxEvent.id)
    )
    return list(rows)


async def count_rules(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(CommissionRule)) or 0)


async def test_a_rule_is_stored_audited_and_announced(session: AsyncSession) -> None:
    vendor = unique("vendor")
    rule = await make(
        session,
        scope=RuleScope.VENDOR,
        vendor_id=vendor,
        priority=3,
        effective_to=MAR,
        percentage_bps=250,
        fixed_amount=30,
        currency="eur",
        description="launch deal",
    )

    stored = await commissions.get(session, rule.id)
    assert (stored.scope, stored.vendor_id, stored.category, stored.priority) == (
        "vendor",
        vendor,
        None,
        3,
    )
    assert (stored.percentage_bps, stored.fixed_amount, stored.currency) == (250, 30, "EUR")
    assert (stored.effective_from, stored.effective_to, stored.active) == (JAN, MAR, True)
    assert stored.created_by == "ops-1"
    assert await events(session, rule.id) == ["commission_rule.created"]
    audit = await session.scalar(select(AuditEvent).where(AuditEvent.entity_id == str(rule.id)))
    assert audit is not None
    assert (audit.action, audit.actor, audit.before) == ("commission_rule.created", "ops-1", None)
    assert audit.after is not None and audit.after["percentage_bps"] == 250


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"scope": RuleScope.VENDOR}, "vendor_id"),
        ({"scope": RuleScope.CATEGORY, "category": "books", "vendor_id": "v"}, "vendor_id"),
        ({"vendor_id": "v"}, "vendor_id"),
        ({"percentage_bps": 10_001}, "percentage_bps"),
        ({"fixed_amount": -5}, "fixed_amount"),
        ({"priority": -1}, "priority"),
        ({"currency": "XYZ"}, "currency"),
        ({"effective_to": JAN}, "effective_to"),
        ({"effective_from": datetime(2025, 1, 1)}, "effective_from"),
    ],
)
async def test_invalid_rules_name_the_field_and_store_nothing(
    session: AsyncSession, changes: dict[str, Any], param: str
) -> None:
    before = await count_rules(session)
    with pytest.raises(ValidationError) as refused:
        await make(session, **changes)
    assert refused.value.param == param
    assert await count_rules(session) == before


async def test_a_conflicting_rule_is_refused_naming_the_rules_in_the_way(
    session: AsyncSession,
) -> None:
    vendor = unique("vendor")
    first = await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, effective_to=FEB)
    second = await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, effective_from=FEB)
    before = await count_rules(session)

    with pytest.raises(Conflict) as refused:
        # Spans both: overlaps each.
        await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, effective_from=JAN)
    assert refused.value.code == "commission_rule_conflict"
    assert refused.value.details["conflicting_rule_ids"] == sorted([str(first.id), str(second.id)])
    assert await count_rules(session) == before

    # Touching the first one's end, another priority, another currency, inactive: all fine.
    await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, effective_from=FEB, priority=1)
    await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, currency="EUR")
    await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, active=False)
    await make(session, scope=RuleScope.VENDOR, vendor_id=unique("vendor"))


async def test_activation_rechecks_conflicts_and_deactivation_frees_the_slot(
    session: AsyncSession,
) -> None:
    category = unique("cat")
    first = await make(session, scope=RuleScope.CATEGORY, category=category)
    waiting = await make(session, scope=RuleScope.CATEGORY, category=category, active=False)

    with pytest.raises(Conflict) as refused:
        await commissions.set_active(session, waiting.id, True, actor=ADMIN)
    assert refused.value.code == "commission_rule_conflict"
    assert refused.value.details["conflicting_rule_ids"] == [str(first.id)]

    await commissions.set_active(session, first.id, False, actor=ADMIN)
    await commissions.set_active(session, waiting.id, True, actor=ADMIN)
    # Already so: nothing happens (no second event).
    await commissions.set_active(session, waiting.id, True, actor=ADMIN)

    assert (await commissions.get(session, first.id)).active is False
    assert (await commissions.get(session, waiting.id)).active is True
    assert await events(session, first.id) == [
        "commission_rule.created",
        "commission_rule.deactivated",
    ]
    assert await events(session, waiting.id) == [
        "commission_rule.created",
        "commission_rule.activated",
    ]
    with pytest.raises(NotFound):
        await commissions.set_active(session, uuid.uuid4(), True, actor=ADMIN)


async def test_concurrent_conflicting_rules_cannot_both_be_created(
    db: async_sessionmaker[AsyncSession],
) -> None:
    vendor = unique("vendor")

    async def create() -> str:
        async with db() as session, session.begin():
            try:
                await make(session, scope=RuleScope.VENDOR, vendor_id=vendor)
            except TollgateError as error:
                return error.code
            await asyncio.sleep(0.2)  # hold the transaction open while the other checks
            return "created"

    outcomes = await asyncio.gather(create(), create(), create())

    assert sorted(outcomes) == ["commission_rule_conflict", "commission_rule_conflict", "created"]
    async with db() as session:
        assert await count_rules(session) == 1


async def test_the_list_filters_and_pages(session: AsyncSession) -> None:
    vendor, category = unique("vendor"), unique("cat")
    by_vendor = await make(session, scope=RuleScope.VENDOR, vendor_id=vendor)
    by_category = await make(session, scope=RuleScope.CATEGORY, category=category)
    off = await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, priority=1, active=False)

    async def ids(**filters: Any) -> set[uuid.UUID]:
        return {rule.id for rule in await commissions.list_rules(session, limit=50, **filters)}

    assert await ids(vendor_id=vendor) == {by_vendor.id, off.id}
    assert await ids(vendor_id=vendor, active=True) == {by_vendor.id}
    assert await ids(category=category) == {by_category.id}
    assert by_category.id in await ids(scope=RuleScope.CATEGORY)
    assert by_vendor.id not in await ids(scope=RuleScope.CATEGORY)
    assert await ids(vendor_id=vendor, currency="EUR") == set()

    first = await commissions.list_rules(session, limit=1, vendor_id=vendor)
    assert len(first) == 2  # limit + 1: more follow
    rest = await commissions.list_rules(session, limit=1, vendor_id=vendor, after=first[0])
    assert [rule.id for rule in rest] == [first[1].id]


async def test_best_applicable_and_calculate(session: AsyncSession) -> None:
    vendor, other, category = unique("vendor"), unique("vendor"), unique("cat")
    await make(session, priority=0, percentage_bps=1_500)  # the default
    await make(session, scope=RuleScope.CATEGORY, category=category, priority=5, fixed_amount=25)
    low = await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, percentage_bps=800)
    high = await make(
        session,
        scope=RuleScope.VENDOR,
        vendor_id=vendor,
        priority=2,
        effective_from=FEB,
        effective_to=MAR,
        percentage_bps=500,
        fixed_amount=30,
    )

    async def best(vendor_id: str | None, category_: str | None, at: datetime) -> uuid.UUID:
        rule = await commissions.best_applicable(
            session, vendor_id=vendor_id, category=category_, at=at, currency="USD"
        )
        return rule.id

    # The vendor's higher priority rule while it is in force, its other one otherwise.
    assert await best(vendor, category, FEB + timedelta(days=3)) == high.id
    assert await best(vendor, category, MAR) == low.id
    assert await best(vendor, category, JAN) == low.id
    # Another vendor falls back to its category's rule, then the default.
    category_rule = await commissions.best_applicable(
        session, vendor_id=other, category=category, at=FEB
    )
    assert (category_rule.scope, category_rule.fixed_amount) == ("category", 25)
    default = await commissions.best_applicable(session, vendor_id=other, category=None, at=FEB)
    assert (default.scope, default.percentage_bps) == ("default", 1_500)

    result = await commissions.calculate(
        session,
        amount=12_345,
        currency="usd",
        vendor_id=vendor,
        category=category,
        at=FEB + timedelta(days=3),
    )
    assert result.rule.id == high.id
    # 5 % of 12,345 = 617.25 -> 617, plus 30.
    assert (result.percentage_part, result.fixed_part, result.commission) == (617, 30, 647)
    assert (result.net, result.capped, result.currency) == (11_698, False, "USD")

    capped = await commissions.calculate(
        session, amount=20, currency="USD", vendor_id=vendor, category=None, at=FEB
    )
    assert (capped.commission, capped.net, capped.capped) == (20, 0, True)


async def test_no_rule_in_the_currency_or_before_any_start_is_a_404(
    session: AsyncSession,
) -> None:
    vendor = unique("vendor")
    await make(session, scope=RuleScope.VENDOR, vendor_id=vendor, effective_from=FEB)
    # Rules of other tests are rolled back; a JPY default is not there.
    for at, currency in ((JAN, "USD"), (FEB, "JPY")):
        with pytest.raises(NotFound) as missing:
            await commissions.calculate(
                session, amount=1_000, currency=currency, vendor_id=vendor, category=None, at=at
            )
        assert missing.value.code == "no_applicable_commission_rule"
    with pytest.raises(ValidationError) as naive:
        await commissions.best_applicable(
            session, vendor_id=vendor, category=None, at=datetime(2025, 2, 1)
        )
    assert naive.value.param == "at"

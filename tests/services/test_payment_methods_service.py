"""Payment methods on a real PostgreSQL: the one default per customer, removal, verification,
listing, the audit log and outbox events, and two first cards added at once."""

import asyncio
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, NotFound, ValidationError
from domain.payments import PaymentMethodType, VerificationStatus
from integrations.stripe_customers import CardDetails
from models.audit import AuditEvent
from models.outbox import OutboxEvent
from models.payments import PaymentMethod
from services import payment_methods

ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)


def card(last4: str = "4242") -> CardDetails:
    return CardDetails(
        id=f"pm_{uuid.uuid4().hex}",
        type="card",
        brand="visa",
        last4=last4,
        exp_month=12,
        exp_year=2030,
        country="US",
        fingerprint=uuid.uuid4().hex[:16],
    )


def new_customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


async def add(
    session: AsyncSession, customer_id: str, *, make_default: bool = False, last4: str = "4242"
) -> PaymentMethod:
    return await payment_methods.add(
        session,
        customer_id=customer_id,
        stripe_customer_id=f"cus_{customer_id}",
        card=card(last4),
        make_default=make_default,
        actor=Actor(customer_id, Role.CUSTOMER),
    )


async def events(session: AsyncSession, method_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxEvent.event_type)
        .where(OutboxEvent.entity_id == str(method_id))
        .order_by(OutboxEvent.id)
    )
    return list(rows)


async def defaults(session: AsyncSession, customer_id: str) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(PaymentMethod.id).where(
            PaymentMethod.customer_id == customer_id, PaymentMethod.is_default
        )
    )
    return list(rows)


async def test_the_first_card_becomes_the_default_and_later_ones_do_not(
    session: AsyncSession,
) -> None:
    customer = new_customer()
    first = await add(session, customer)
    second = await add(session, customer, last4="4444")

    assert first.is_default and not second.is_default
    assert first.status == "active" and first.verification_status == "unverified"
    assert await defaults(session, customer) == [first.id]
    assert await payment_methods.default_for(session, customer) is first
    assert await events(session, first.id) == [
        "payment_method.added",
        "payment_method.default_changed",
    ]
    assert await events(session, second.id) == ["payment_method.added"]
    assert await payment_methods.stripe_customer(session, customer) == f"cus_{customer}"


async def test_a_card_added_as_default_takes_it_from_the_previous_one(
    session: AsyncSession,
) -> None:
    customer = new_customer()
    first = await add(session, customer)
    second = await add(session, customer, make_default=True)

    assert second.is_default and not first.is_default
    assert await defaults(session, customer) == [second.id]
    event = await session.scalar(
        select(OutboxEvent).where(
            OutboxEvent.entity_id == str(second.id),
            OutboxEvent.event_type == "payment_method.default_changed",
        )
    )
    assert event is not None and event.payload["previous_default_id"] == str(first.id)


async def test_set_default_moves_it_and_is_audited(session: AsyncSession) -> None:
    customer = new_customer()
    first = await add(session, customer)
    second = await add(session, customer)

    moved = await payment_methods.set_default(session, second.id, actor=ADMIN)

    assert moved.is_default and not first.is_default
    assert await defaults(session, customer) == [second.id]
    audits = list(
        await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "payment_method.default_changed")
            .where(AuditEvent.entity_id.in_([str(first.id), str(second.id)]))
            .order_by(AuditEvent.id)
        )
    )
    # The add made the first the default; the move takes it away from it and gives it.
    assert [(a.entity_id, (a.after or {}).get("is_default")) for a in audits] == [
        (str(first.id), True),
        (str(first.id), False),
        (str(second.id), True),
    ]
    assert audits[-1].actor == ADMIN.id
    assert audits[-1].before == {**(audits[-1].after or {}), "is_default": False}
    # Only the new default is announced, once.
    assert (await events(session, second.id)).count("payment_method.default_changed") == 1
    assert (await events(session, first.id)).count("payment_method.default_changed") == 1

    again = await payment_methods.set_default(session, second.id, actor=ADMIN)
    assert again.is_default
    assert (await events(session, second.id)).count("payment_method.default_changed") == 1


async def test_removing_the_default_leaves_no_default(session: AsyncSession) -> None:
    customer = new_customer()
    first = await add(session, customer)
    second = await add(session, customer)

    removed = await payment_methods.remove(session, first.id, actor=SYSTEM)

    assert removed.status == "removed" and not removed.is_default
    assert removed.removed_at is not None
    assert second.status == "active" and not second.is_default
    assert await payment_methods.default_for(session, customer) is None
    assert (await events(session, first.id))[-1] == "payment_method.removed"

    # A second removal changes nothing and announces nothing.
    await payment_methods.remove(session, first.id, actor=SYSTEM)
    assert (await events(session, first.id)).count("payment_method.removed") == 1

    with pytest.raises(Conflict) as refused:
        await payment_methods.set_default(session, first.id, actor=SYSTEM)
    assert refused.value.code == "payment_method_removed"

    # The customer still has an active card, so a new one is not made default by itself.
    third = await add(session, customer)
    assert not third.is_default


async def test_a_card_added_after_all_were_removed_becomes_the_default(
    session: AsyncSession,
) -> None:
    customer = new_customer()
    first = await add(session, customer)
    await payment_methods.remove(session, first.id, actor=SYSTEM)

    second = await add(session, customer)

    assert second.is_default


async def test_usable_refuses_missing_foreign_and_removed_methods(session: AsyncSession) -> None:
    customer = new_customer()
    method = await add(session, customer)

    assert await payment_methods.usable(session, method.id, customer) is method
    with pytest.raises(NotFound):
        await payment_methods.usable(session, method.id, new_customer())
    with pytest.raises(NotFound):
        await payment_methods.usable(session, uuid.uuid4(), customer)
    await payment_methods.remove(session, method.id, actor=SYSTEM)
    with pytest.raises(Conflict) as refused:
        await payment_methods.usable(session, method.id, customer)
    assert refused.value.code == "payment_method_removed"


async def test_verification_status_changes_are_announced_once(session: AsyncSession) -> None:
    method = await add(session, new_customer())

    changed = await payment_methods.set_verification_status(
        session, method.id, VerificationStatus.VERIFIED, actor=ADMIN
    )
    await payment_methods.set_verification_status(
        session, method.id, VerificationStatus.VERIFIED, actor=ADMIN
    )

    assert changed.verification_status == "verified"
    assert (await events(session, method.id)).count("payment_method.verification_changed") == 1
    await payment_methods.remove(session, method.id, actor=SYSTEM)
    with pytest.raises(Conflict):
        await payment_methods.set_verification_status(
            session, method.id, VerificationStatus.FAILED, actor=ADMIN
        )


async def test_the_same_stripe_method_cannot_be_added_twice(session: AsyncSession) -> None:
    customer = new_customer()
    details = card()
    await payment_methods.add(
        session,
        customer_id=customer,
        stripe_customer_id=f"cus_{customer}",
        card=details,
        make_default=False,
        actor=SYSTEM,
    )
    with pytest.raises(Conflict) as refused:
        await payment_methods.add(
            session,
            customer_id=new_customer(),
            stripe_customer_id="cus_other",
            card=details,
            make_default=False,
            actor=SYSTEM,
        )
    assert refused.value.code == "payment_method_exists"


async def test_a_recorded_stripe_customer_is_kept(session: AsyncSession) -> None:
    customer = new_customer()
    assert await payment_methods.stripe_customer(session, customer) is None
    assert await payment_methods.save_stripe_customer(session, customer, "cus_first") == "cus_first"
    assert await payment_methods.save_stripe_customer(session, customer, "cus_late") == "cus_first"


async def test_lists_filter_and_page(session: AsyncSession) -> None:
    customer = new_customer()
    made = [await add(session, customer) for _ in range(5)]
    await add(session, new_customer())  # another customer's, never listed
    await payment_methods.remove(session, made[0].id, actor=SYSTEM)

    everything = await payment_methods.list_for_customer(session, customer, limit=10)
    assert {m.id for m in everything} == {m.id for m in made}

    active = await payment_methods.list_for_customer(session, customer, active_only=True, limit=10)
    assert {m.id for m in active} == {m.id for m in made[1:]}

    cards = await payment_methods.list_for_customer(
        session, customer, type=PaymentMethodType.CARD, limit=10
    )
    assert len(cards) == 5

    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await payment_methods.list_for_customer(
            session, customer, limit=2, starting_after=cursor
        )
        seen += [m.id for m in page[:2]]
        if len(page) <= 2:
            break
        cursor = page[1].id
    assert sorted(seen) == sorted(m.id for m in made) and len(seen) == 5

    stranger = await add(session, new_customer())
    with pytest.raises(ValidationError):
        await payment_methods.list_for_customer(
            session, customer, limit=2, starting_after=stranger.id
        )


async def test_two_first_cards_added_at_once_make_one_default(
    db: async_sessionmaker[AsyncSession],
) -> None:
    """Each add commits in its own transaction; without the per-customer lock both would see
    no active card and the second commit would break the unique index."""
    customer = new_customer()
    # Recorded beforehand: a first insert of it would itself make the adds wait in turn.
    async with db() as session, session.begin():
        await payment_methods.save_stripe_customer(session, customer, f"cus_{customer}")
    ready = asyncio.Barrier(4)

    async def add_one() -> PaymentMethod:
        async with db() as session, session.begin():
            await session.execute(select(1))  # connected and in its transaction
            await ready.wait()
            return await add(session, customer)

    added = await asyncio.gather(*(add_one() for _ in range(4)))

    assert sum(method.is_default for method in added) == 1
    async with db() as session:
        assert len(await defaults(session, customer)) == 1
        count = await session.scalar(
            select(func.count()).where(PaymentMethod.customer_id == customer)
        )
        assert count == 4

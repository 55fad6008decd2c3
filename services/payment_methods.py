"""Customers' payment methods: cards tokenized and kept by Stripe, of which Tollgate stores the
PaymentMethod id and display details (never a number). A customer has at most one default
(also enforced by a partial unique index): the first active method becomes it, ``set_default``
moves it, and removing it leaves the customer without one until they choose again. Changes
of one customer's methods are serialized by an advisory lock, audited, and announced in the
outbox as ``payment_method.added|removed|default_changed|verification_changed``."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.payments import PaymentMethodStatus, PaymentMethodType, VerificationStatus
from models.payments import PaymentMethod, StripeCustomer
from services import outbox
from services.locking import locked
from services.pagination import newest_first

ENTITY = "payment_method"


class Card(Protocol):
    """The attached card as Stripe describes it (``integrations.stripe_customers.CardDetails``)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def brand(self) -> str | None: ...
    @property
    def last4(self) -> str | None: ...
    @property
    def exp_month(self) -> int | None: ...
    @property
    def exp_year(self) -> int | None: ...
    @property
    def country(self) -> str | None: ...
    @property
    def fingerprint(self) -> str | None: ...


def method_view(method: PaymentMethod) -> dict[str, Any]:
    return {
        "customer_id": method.customer_id,
        "type": method.type,
        "brand": method.brand,
        "last4": method.last4,
        "status": method.status,
        "verification_status": method.verification_status,
        "is_default": method.is_default,
    }


async def _changed(
    session: AsyncSession,
    method: PaymentMethod,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    announce: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type=ENTITY,
        entity_id=method.id,
        action=action,
        actor=actor,
        before=before,
        after=method_view(method),
        announce=announce,
        metadata=metadata,
    )


async def _lock_customer(session: AsyncSession, customer_id: str) -> None:
    # Two changes of one customer's default at once would otherwise both pass their checks
    # and one would end in the unique index's error instead of a clean answer.
    await session.execute(
        select(
            func.pg_advisory_xact_lock(func.hashtextextended(f"payment-methods:{customer_id}", 0))
        )
    )


async def stripe_customer(session: AsyncSession, customer_id: str) -> str | None:
    """The Stripe customer holding ``customer_id``'s cards, once one was made."""
    found: str | None = await session.scalar(
        select(StripeCustomer.stripe_customer_id).where(StripeCustomer.customer_id == customer_id)
    )
    return found


async def save_stripe_customer(
    session: AsyncSession, customer_id: str, stripe_customer_id: str
) -> str:
    """Record the customer's Stripe customer unless one is recorded; the recorded one."""
    await session.execute(
        insert(StripeCustomer)
        .values(customer_id=customer_id, stripe_customer_id=stripe_customer_id)
        .on_conflict_do_nothing(index_elements=[StripeCustomer.customer_id])
    )
    saved = await stripe_customer(session, customer_id)
    assert saved is not None  # inserted above, or already there
    return saved


async def check_not_added(session: AsyncSession, stripe_payment_method_id: str) -> None:
    """Conflict if the Stripe PaymentMethod is stored already (for this or another customer)."""
    found = await session.scalar(
        select(PaymentMethod.id).where(
            PaymentMethod.stripe_payment_method_id == stripe_payment_method_id
        )
    )
    if found is not None:
        raise Conflict(
            f"payment method {stripe_payment_method_id} was already added",
            code="payment_method_exists",
            param="token",
        )


async def _default(
    session: AsyncSession, customer_id: str, *, for_update: bool = False
) -> PaymentMethod | None:
    query = select(PaymentMethod).where(
        PaymentMethod.customer_id == customer_id, PaymentMethod.is_default
    )
    found: PaymentMethod | None = await session.scalar(locked(query) if for_update else query)
    return found


async def _unset_default(session: AsyncSession, customer_id: str, actor: Actor) -> uuid.UUID | None:
    """Take the default away from the customer's current default, if any; its id. Flushed
    before the new default is set: the unique index is checked row by row."""
    current = await _default(session, customer_id, for_update=True)
    if current is None:
        return None
    before = method_view(current)
    current.is_default = False
    await _changed(session, current, "default_changed", actor=actor, before=before, announce=False)
    return current.id


async def add(
    session: AsyncSession,
    *,
    customer_id: str,
    stripe_customer_id: str,
    card: Card,
    make_default: bool,
    actor: Actor,
) -> PaymentMethod:
    """Store a card attached at Stripe. It becomes the default when asked to, or when the
    customer has no other active method."""
    if card.type not in {t.value for t in PaymentMethodType}:
        raise ValidationError(f"unsupported payment method type {card.type}", param="type")
    await _lock_customer(session, customer_id)
    await check_not_added(session, card.id)
    await save_stripe_customer(session, customer_id, stripe_customer_id)
    has_active = await session.scalar(
        select(func.count()).where(
            PaymentMethod.customer_id == customer_id,
            PaymentMethod.status == PaymentMethodStatus.ACTIVE.value,
        )
    )
    becomes_default = make_default or not has_active
    previous = await _unset_default(session, customer_id, actor) if becomes_default else None
    method = PaymentMethod(
        # Set here, not at the flush: the audit and the event below need it first.
        id=uuid.uuid4(),
        customer_id=customer_id,
        stripe_payment_method_id=card.id,
        type=card.type,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        country=card.country,
        fingerprint=card.fingerprint,
        status=PaymentMethodStatus.ACTIVE.value,
        verification_status=VerificationStatus.UNVERIFIED.value,
        is_default=becomes_default,
    )
    session.add(method)
    await _changed(session, method, "added", actor=actor, before=None)
    if becomes_default:
        await _changed(
            session,
            method,
            "default_changed",
            actor=actor,
            before=None,
            metadata={"previous_default_id": str(previous) if previous else None},
        )
    return method


async def get(
    session: AsyncSession, method_id: uuid.UUID, *, for_update: bool = False
) -> PaymentMethod:
    query = select(PaymentMethod).where(PaymentMethod.id == method_id)
    if for_update:
        query = locked(query)
    method: PaymentMethod | None = await session.scalar(query)
    if method is None:
        raise NotFound(f"no payment method {method_id}", param="id")
    return method


def _check_active(method: PaymentMethod) -> None:
    if method.status == PaymentMethodStatus.REMOVED.value:
        raise Conflict(
            f"payment method {method.id} was removed", code="payment_method_removed", param="id"
        )


async def usable(session: AsyncSession, method_id: uuid.UUID, customer_id: str) -> PaymentMethod:
    """The method ``customer_id`` may pay with: theirs and not removed. Another customer's
    method is answered as missing, so its existence is not revealed."""
    method: PaymentMethod | None = await session.scalar(
        select(PaymentMethod).where(
            PaymentMethod.id == method_id, PaymentMethod.customer_id == customer_id
        )
    )
    if method is None:
        raise NotFound(f"no payment method {method_id}", param="payment_method_id")
    _check_active(method)
    return method


async def _locked(session: AsyncSession, method_id: uuid.UUID) -> PaymentMethod:
    """The method locked after its customer's lock, the one fixed order of every change."""
    method = await get(session, method_id)
    await _lock_customer(session, method.customer_id)
    return await get(session, method_id, for_update=True)


async def set_default(
    session: AsyncSession, method_id: uuid.UUID, *, actor: Actor
) -> PaymentMethod:
    """Make an active method its customer's default (the previous default stops being it)."""
    method = await _locked(session, method_id)
    _check_active(method)
    if method.is_default:
        return method
    previous = await _unset_default(session, method.customer_id, actor)
    before = method_view(method)
    method.is_default = True
    await _changed(
        session,
        method,
        "default_changed",
        actor=actor,
        before=before,
        metadata={"previous_default_id": str(previous) if previous else None},
    )
    return method


async def set_verification_status(
    session: AsyncSession, method_id: uuid.UUID, status: VerificationStatus, *, actor: Actor
) -> PaymentMethod:
    method = await _locked(session, method_id)
    _check_active(method)
    if method.verification_status == status.value:
        return method
    before = method_view(method)
    method.verification_status = status.value
    await _changed(session, method, "verification_changed", actor=actor, before=before)
    return method


async def remove(session: AsyncSession, method_id: uuid.UUID, *, actor: Actor) -> PaymentMethod:
    """Mark the method removed. If it was the default the customer has none afterwards: no
    other card is chosen for them. Removing a removed method changes nothing."""
    method = await _locked(session, method_id)
    if method.status == PaymentMethodStatus.REMOVED.value:
        return method
    before = method_view(method)
    method.status = PaymentMethodStatus.REMOVED.value
    method.is_default = False
    method.removed_at = datetime.now(UTC)
    await _changed(
        session,
        method,
        "removed",
        actor=actor,
        before=before,
        metadata={"was_default": before["is_default"]},
    )
    return method


async def list_for_customer(
    session: AsyncSession,
    customer_id: str,
    *,
    active_only: bool = False,
    type: PaymentMethodType | None = None,
    limit: int,
    starting_after: uuid.UUID | None = None,
) -> Sequence[PaymentMethod]:
    """Newest first, ``limit + 1`` rows so callers can tell ``has_more``. The cursor must be a
    method of this customer."""
    anchor = None
    if starting_after is not None:
        anchor = await session.scalar(
            select(PaymentMethod).where(
                PaymentMethod.id == starting_after, PaymentMethod.customer_id == customer_id
            )
        )
        if anchor is None:
            raise ValidationError(
                "starting_after must be an id from this list", param="starting_after"
            )
    query = newest_first(
        select(PaymentMethod).where(PaymentMethod.customer_id == customer_id),
        PaymentMethod,
        anchor,
    )
    if active_only:
        query = query.where(PaymentMethod.status == PaymentMethodStatus.ACTIVE.value)
    if type is not None:
        query = query.where(PaymentMethod.type == type.value)
    return list(await session.scalars(query.limit(limit + 1)))


async def default_for(session: AsyncSession, customer_id: str) -> PaymentMethod | None:
    return await _default(session, customer_id)

"""Stripe webhook events: stored once by their id, routed to the payment or refund workflow
they concern, and how their delivery went. RECEIVED → PROCESSED (signalled, or its workflow
had already closed), IGNORED (not Tollgate's) or DEAD (the delivery's retries ran out); an
admin's retry sends a dead event back to RECEIVED under the next delivery number. Moves are
compare-and-set on the locked row, and every one is audited."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor, Role
from domain.errors import Conflict, NotFound, ValidationError
from models.payments import Payment, Refund, StripeEvent
from services import audit
from services.locking import locked

ENTITY_TYPE = "stripe_event"
PAYMENT_METADATA = "tollgate_payment_id"
REFUND_METADATA = "tollgate_refund_id"
# The sender of the webhooks: Stripe signs them, no user is behind them.
STRIPE = Actor("stripe", Role.SYSTEM)
NOT_TOLLGATES = "no Tollgate payment or refund"


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEAD = "dead"


class TargetNotReady(LookupError):
    """The event names a payment or refund whose row (or workflow) is not there yet: it may
    still be uncommitted, so delivery is retried. Deliberately not a ``TollgateError``, which
    activities turn into final refusals."""


@dataclass(frozen=True)
class Target:
    """The workflow an event concerns: ``payment-{id}`` or ``refund-{id}``."""

    kind: Literal["payment", "refund"]
    entity_id: uuid.UUID

    @property
    def workflow_id(self) -> str:
        return f"{self.kind}-{self.entity_id}"


def event_view(event: StripeEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "status": event.status,
        "payment_id": str(event.payment_id) if event.payment_id else None,
        "refund_id": str(event.refund_id) if event.refund_id else None,
        "attempts": event.attempts,
        "delivery": event.delivery,
        "outcome": event.outcome,
        "last_error": event.last_error,
    }


def stripe_object(payload: dict[str, Any]) -> dict[str, Any]:
    """``data.object`` of an event; empty when the payload has none."""
    data = payload.get("data")
    found = data.get("object") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def _metadata_id(obj: dict[str, Any], key: str) -> uuid.UUID | None:
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def _changed(
    session: AsyncSession,
    event: StripeEvent,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await session.flush()
    await audit.record(
        session,
        action=f"{ENTITY_TYPE}.{action}",
        entity_type=ENTITY_TYPE,
        entity_id=event.id,
        actor=actor,
        before=before,
        after=event_view(event),
        metadata=metadata,
    )


async def store(
    session: AsyncSession, event: dict[str, Any], *, actor: Actor = STRIPE
) -> StripeEvent | None:
    """The event stored RECEIVED; None if its id was stored before (Stripe delivers at least
    once, and concurrent copies race here: the primary key decides)."""
    event_id, event_type = _string(event.get("id")), _string(event.get("type"))
    if event_id is None or len(event_id) > 100:
        raise ValidationError("a Stripe event needs an id of 1 to 100 characters", param="id")
    if event_type is None or len(event_type) > 100:
        raise ValidationError("a Stripe event needs a type of 1 to 100 characters", param="type")
    obj = stripe_object(event)
    object_id = _string(obj.get("id"))
    inserted = await session.scalar(
        insert(StripeEvent)
        .values(
            id=event_id,
            type=event_type,
            object_id=object_id[:100] if object_id else None,
            payment_id=_metadata_id(obj, PAYMENT_METADATA),
            refund_id=_metadata_id(obj, REFUND_METADATA),
            payload=event,
            status=EventStatus.RECEIVED.value,
            attempts=0,
            delivery=0,
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.id])
        .returning(StripeEvent)
    )
    if inserted is None:
        return None
    await _changed(session, inserted, "received", actor=actor, before=None)
    return inserted


async def get(session: AsyncSession, event_id: str, *, for_update: bool = False) -> StripeEvent:
    query = select(StripeEvent).where(StripeEvent.id == event_id)
    found: StripeEvent | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no Stripe event {event_id}", param="id")
    return found


def _kind(event_type: str) -> Literal["payment", "refund"] | None:
    if event_type.startswith(("refund.", "charge.refund.")):
        return "refund"
    if event_type.startswith(("payment_intent.", "charge.")):
        return "payment"
    return None


def _related_id(obj: dict[str, Any], kind: str) -> str | None:
    """The id of the ``kind`` object (``payment_intent``, ``charge``) an object is or names."""
    if obj.get("object") == kind:
        return _string(obj.get("id"))
    related = obj.get(kind)
    if isinstance(related, dict):  # an expanded object
        return _string(related.get("id"))
    return _string(related)


async def _refund(session: AsyncSession, obj: dict[str, Any]) -> Refund | None:
    refund_id = _metadata_id(obj, REFUND_METADATA)
    if refund_id is not None:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise TargetNotReady(f"refund {refund_id} named by the event is not stored yet")
        return refund
    stripe_refund_id = _string(obj.get("id"))
    if obj.get("object") != "refund" or stripe_refund_id is None:
        return None
    found: Refund | None = await session.scalar(
        select(Refund).where(Refund.stripe_refund_id == stripe_refund_id)
    )
    return found


async def _payment(session: AsyncSession, obj: dict[str, Any]) -> Payment | None:
    payment_id = _metadata_id(obj, PAYMENT_METADATA)
    if payment_id is not None:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise TargetNotReady(f"payment {payment_id} named by the event is not stored yet")
        return payment
    intent_id = _related_id(obj, "payment_intent")
    if intent_id is not None:
        by_intent: Payment | None = await session.scalar(
            select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
        )
        if by_intent is not None:
            return by_intent
    charge_id = _related_id(obj, "charge")
    if charge_id is None:
        return None
    by_charge: Payment | None = await session.scalar(
        select(Payment).where(Payment.stripe_charge_id == charge_id)
    )
    return by_charge


async def route(session: AsyncSession, event_id: str) -> Target | None:
    """The workflow the event concerns, or None when it is not Tollgate's. Refund objects go
    to their refund; payment intents, charges (and what names them, e.g. disputes) to their
    payment, as does a refund Tollgate did not ask for (made in Stripe's dashboard). What is
    found is kept on the row, so lists by payment see it. ``TargetNotReady`` if the metadata
    names a payment or refund that is not stored (yet)."""
    event = await get(session, event_id)
    kind = _kind(event.type)
    if kind is None:
        return None
    obj = stripe_object(event.payload)
    if kind == "refund":
        refund = await _refund(session, obj)
        if refund is not None:
            event.refund_id, event.payment_id = refund.id, refund.payment_id
            return Target("refund", refund.id)
    payment = await _payment(session, obj)
    if payment is None:
        return None
    event.payment_id = payment.id
    return Target("payment", payment.id)


def _check_received(event: StripeEvent) -> None:
    if event.status != EventStatus.RECEIVED.value:
        raise Conflict(
            f"Stripe event {event.id} is {event.status}, not received", status=event.status
        )


async def mark_processed(
    session: AsyncSession, event_id: str, outcome: str, *, actor: Actor
) -> StripeEvent:
    """RECEIVED → PROCESSED with what delivery did (``outcome``)."""
    event = await get(session, event_id, for_update=True)
    if event.status == EventStatus.PROCESSED.value:
        return event  # a retried step
    _check_received(event)
    before = event_view(event)
    event.status = EventStatus.PROCESSED.value
    event.outcome = outcome
    event.processed_at = datetime.now(UTC)
    await _changed(session, event, "processed", actor=actor, before=before)
    return event


async def mark_ignored(
    session: AsyncSession, event_id: str, *, actor: Actor, outcome: str = NOT_TOLLGATES
) -> StripeEvent:
    """RECEIVED → IGNORED: no Tollgate payment or refund is concerned."""
    event = await get(session, event_id, for_update=True)
    if event.status == EventStatus.IGNORED.value:
        return event  # a retried step
    _check_received(event)
    before = event_view(event)
    event.status = EventStatus.IGNORED.value
    event.outcome = outcome
    event.processed_at = datetime.now(UTC)
    await _changed(session, event, "ignored", actor=actor, before=before)
    return event


async def record_failure(
    session: AsyncSession, event_id: str, error: str, *, actor: Actor
) -> StripeEvent:
    """A failed delivery attempt that may be retried: counted and kept, status unchanged. An
    event no longer RECEIVED is left as it is."""
    event = await get(session, event_id, for_update=True)
    if event.status != EventStatus.RECEIVED.value:
        return event
    before = event_view(event)
    event.attempts += 1
    event.last_error = error
    await _changed(session, event, "attempt_failed", actor=actor, before=before)
    return event


async def dead_letter(
    session: AsyncSession, event_id: str, error: str, *, delivery: int, actor: Actor
) -> StripeEvent:
    """RECEIVED → DEAD with the last error, for an admin to retry. Another ``delivery`` than
    the row's is a late step of an older one: nothing changes."""
    event = await get(session, event_id, for_update=True)
    if event.delivery != delivery or event.status == EventStatus.DEAD.value:
        return event
    _check_received(event)
    before = event_view(event)
    event.status = EventStatus.DEAD.value
    event.last_error = error
    await _changed(session, event, "dead_lettered", actor=actor, before=before)
    return event


async def retry(session: AsyncSession, event_id: str, actor: Actor) -> StripeEvent:
    """DEAD → RECEIVED under the next delivery number (the caller starts that delivery);
    any other status is a 409."""
    event = await get(session, event_id, for_update=True)
    if event.status != EventStatus.DEAD.value:
        raise Conflict(
            f"only a dead Stripe event can be retried; {event_id} is {event.status}",
            code="stripe_event_not_dead",
            status=event.status,
        )
    before = event_view(event)
    event.status = EventStatus.RECEIVED.value
    event.delivery += 1
    event.outcome = None
    await _changed(session, event, "retried", actor=actor, before=before)
    return event


async def list_events(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: str | None = None,
    status: EventStatus | None = None,
    event_type: str | None = None,
    payment_id: uuid.UUID | None = None,
) -> Sequence[StripeEvent]:
    """Newest first, ``limit + 1`` rows so callers can tell ``has_more``. ``status`` RECEIVED
    lists the unprocessed events, DEAD the dead letters."""
    query = select(StripeEvent).order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc())
    if starting_after is not None:
        anchor = await session.get(StripeEvent, starting_after)
        if anchor is None:
            raise ValidationError(
                "starting_after must be an event id from a list", param="starting_after"
            )
        query = query.where(
            tuple_(StripeEvent.received_at, StripeEvent.id) < tuple_(anchor.received_at, anchor.id)
        )
    if status is not None:
        query = query.where(StripeEvent.status == status.value)
    if event_type:
        query = query.where(StripeEvent.type == event_type)
    if payment_id is not None:
        query = query.where(StripeEvent.payment_id == payment_id)
    return list(await session.scalars(query.limit(limit + 1)))

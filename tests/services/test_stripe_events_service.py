"""Stripe events on a real PostgreSQL: stored once, routed to their payment or refund, moved
through their statuses with compare-and-set, audited, and listed.

``stripe_event``, ``add_payment`` and ``add_refund`` are also used by the API and workflow
tests of the webhooks."""

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, NotFound, ValidationError
from models.audit import AuditEvent
from models.payments import Payment, PaymentMethod, Refund, StripeEvent
from services import stripe_events
from services.stripe_events import EventStatus, Target, TargetNotReady

OPS = Actor("ops-1", Role.PLATFORM_ADMIN)


def stripe_event(
    type_: str, obj: dict[str, Any], event_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """An event as Stripe sends it, around ``obj``."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "livemode": False,
        "type": type_,
        "data": {"object": obj},
        **fields,
    }


def intent(intent_id: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": "requires_capture",
        "metadata": metadata or {},
    }


async def add_payment(
    session: AsyncSession, *, intent_id: str | None = None, charge_id: str | None = None
) -> Payment:
    suffix = uuid.uuid4().hex[:10]
    method = PaymentMethod(
        customer_id="cus-1",
        stripe_payment_method_id=f"pm_{suffix}",
        type="card",
        status="active",
        verification_status="verified",
    )
    session.add(method)
    await session.flush()
    payment = Payment(
        number=f"PAY-{suffix}",
        customer_id="cus-1",
        payment_method_id=method.id,
        amount=5_000,
        currency="USD",
        status="authorized",
        stripe_payment_intent_id=intent_id,
        stripe_charge_id=charge_id,
    )
    session.add(payment)
    await session.flush()
    return payment


async def add_refund(
    session: AsyncSession, payment: Payment, *, stripe_refund_id: str | None = None
) -> Refund:
    refund = Refund(
        number=f"RFD-{uuid.uuid4().hex[:10]}",
        payment_id=payment.id,
        amount=1_000,
        currency="USD",
        reason="requested_by_customer",
        status="processing",
        requested_by="ops-1",
        stripe_refund_id=stripe_refund_id,
    )
    session.add(refund)
    await session.flush()
    return refund


async def stored(session: AsyncSession, event: dict[str, Any]) -> StripeEvent:
    row = await stripe_events.store(session, event)
    assert row is not None
    return row


async def audit_actions(session: AsyncSession, event_id: str) -> list[str]:
    rows = await session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.entity_type == "stripe_event", AuditEvent.entity_id == event_id)
        .order_by(AuditEvent.id)
    )
    return list(rows)


async def test_an_event_is_stored_once_by_its_id(session: AsyncSession) -> None:
    payment_id, refund_id = uuid.uuid4(), uuid.uuid4()
    obj = {
        "id": "re_1",
        "object": "refund",
        "metadata": {"tollgate_payment_id": str(payment_id), "tollgate_refund_id": str(refund_id)},
    }
    event = stripe_event("refund.created", obj)

    row = await stored(session, event)
    again = await stripe_events.store(session, {**event, "type": "refund.updated"})

    assert again is None
    found = await stripe_events.get(session, event["id"])
    assert found is row
    assert (found.type, found.object_id, found.payment_id, found.refund_id) == (
        "refund.created",
        "re_1",
        payment_id,
        refund_id,
    )
    assert (found.status, found.attempts, found.delivery) == ("received", 0, 0)
    assert found.payload == event and found.received_at is not None
    assert await audit_actions(session, event["id"]) == ["stripe_event.received"]


async def test_metadata_that_is_not_an_id_is_not_kept(session: AsyncSession) -> None:
    event = stripe_event("payment_intent.created", intent("pi_x", {"tollgate_payment_id": "42"}))
    row = await stored(session, event)
    assert row.payment_id is None and row.refund_id is None and row.object_id == "pi_x"


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "charge.succeeded", "data": {"object": {}}}, "id"),
        ({"id": "", "type": "charge.succeeded"}, "id"),
        ({"id": "evt_no_type", "data": {}}, "type"),
        ({"id": "evt_" + "x" * 100, "type": "charge.succeeded"}, "id"),
    ],
)
async def test_an_event_without_id_or_type_is_refused(
    session: AsyncSession, event: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        await stripe_events.store(session, event)
    assert refused.value.param == param


async def test_payment_events_route_by_metadata_or_stripe_ids(session: AsyncSession) -> None:
    suffix = uuid.uuid4().hex[:8]
    by_metadata = await add_payment(session)
    by_intent = await add_payment(session, intent_id=f"pi_{suffix}")
    by_charge = await add_payment(session, intent_id=f"pi_other_{suffix}", charge_id=f"ch_{suffix}")
    cases = [
        (
            stripe_event(
                "payment_intent.succeeded",
                intent("pi_unknown", {"tollgate_payment_id": str(by_metadata.id)}),
            ),
            by_metadata,
        ),
        (stripe_event("payment_intent.canceled", intent(f"pi_{suffix}")), by_intent),
        (
            stripe_event(
                "charge.succeeded",
                {"id": "ch_new", "object": "charge", "payment_intent": f"pi_{suffix}"},
            ),
            by_intent,
        ),
        (
            stripe_event(
                "charge.dispute.created",
                {"id": "dp_1", "object": "dispute", "charge": f"ch_{suffix}"},
            ),
            by_charge,
        ),
    ]
    for event, payment in cases:
        await stored(session, event)
        target = await stripe_events.route(session, event["id"])
        assert target == Target("payment", payment.id), event["type"]
        assert target.workflow_id == f"payment-{payment.id}"
        assert (await stripe_events.get(session, event["id"])).payment_id == payment.id


async def test_refund_events_route_to_the_refund_or_else_its_payment(
    session: AsyncSession,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    payment = await add_payment(session, intent_id=f"pi_{suffix}")
    asked = await add_refund(session, payment)
    known = await add_refund(session, payment, stripe_refund_id=f"re_known_{suffix}")
    by_metadata = stripe_event(
        "refund.created",
        {
            "id": f"re_{suffix}",
            "object": "refund",
            "payment_intent": f"pi_{suffix}",
            "metadata": {"tollgate_refund_id": str(asked.id)},
        },
    )
    by_stripe_id = stripe_event(
        "charge.refund.updated",
        {"id": f"re_known_{suffix}", "object": "refund", "status": "succeeded"},
    )
    from_dashboard = stripe_event(
        "refund.created",
        {"id": f"re_dash_{suffix}", "object": "refund", "payment_intent": f"pi_{suffix}"},
    )
    for event in (by_metadata, by_stripe_id, from_dashboard):
        await stored(session, event)

    assert await stripe_events.route(session, by_metadata["id"]) == Target("refund", asked.id)
    assert await stripe_events.route(session, by_stripe_id["id"]) == Target("refund", known.id)
    assert await stripe_events.route(session, from_dashboard["id"]) == Target("payment", payment.id)
    row = await stripe_events.get(session, by_stripe_id["id"])
    assert (row.refund_id, row.payment_id) == (known.id, payment.id)
    assert Target("refund", asked.id).workflow_id == f"refund-{asked.id}"


async def test_events_that_are_not_tollgates_have_no_target(session: AsyncSession) -> None:
    for event in (
        stripe_event("customer.created", {"id": "cus_1", "object": "customer", "metadata": {}}),
        stripe_event("payment_intent.created", intent(f"pi_{uuid.uuid4().hex}")),
        stripe_event("charge.succeeded", {"id": "ch_x", "object": "charge", "metadata": {}}),
        stripe_event("refund.created", {"id": "re_x", "object": "refund", "payment_intent": None}),
        stripe_event("transfer.created", {"id": "tr_1", "object": "transfer"}),
    ):
        await stored(session, event)
        assert await stripe_events.route(session, event["id"]) is None, event["type"]


@pytest.mark.parametrize("key", ["tollgate_payment_id", "tollgate_refund_id"])
async def test_metadata_naming_a_missing_row_is_not_ready(session: AsyncSession, key: str) -> None:
    event = stripe_event(
        "refund.updated" if key == "tollgate_refund_id" else "payment_intent.succeeded",
        {"id": "obj_1", "object": "refund", "metadata": {key: str(uuid.uuid4())}},
    )
    await stored(session, event)
    with pytest.raises(TargetNotReady):
        await stripe_events.route(session, event["id"])


async def test_delivery_moves_are_compare_and_set_and_audited(session: AsyncSession) -> None:
    done = await stored(session, stripe_event("payment_intent.succeeded", intent("pi_1")))
    await stripe_events.record_failure(session, done.id, "TargetNotReady: not yet", actor=SYSTEM)
    await stripe_events.mark_processed(session, done.id, "signalled payment-1", actor=SYSTEM)
    again = await stripe_events.mark_processed(session, done.id, "other", actor=SYSTEM)
    assert (again.status, again.outcome, again.attempts) == ("processed", "signalled payment-1", 1)
    assert again.last_error == "TargetNotReady: not yet" and again.processed_at is not None
    # Past RECEIVED a failure is not counted, and no other move is allowed.
    assert (
        await stripe_events.record_failure(session, done.id, "late", actor=SYSTEM)
    ).attempts == 1
    with pytest.raises(Conflict):
        await stripe_events.mark_ignored(session, done.id, actor=SYSTEM)
    with pytest.raises(Conflict):
        await stripe_events.dead_letter(session, done.id, "late", delivery=0, actor=SYSTEM)
    assert await audit_actions(session, done.id) == [
        "stripe_event.received",
        "stripe_event.attempt_failed",
        "stripe_event.processed",
    ]

    ignored = await stored(session, stripe_event("customer.created", {"id": "cus_1"}))
    row = await stripe_events.mark_ignored(session, ignored.id, actor=SYSTEM)
    assert (row.status, row.outcome) == ("ignored", stripe_events.NOT_TOLLGATES)


async def test_a_dead_letter_is_retried_under_the_next_delivery(session: AsyncSession) -> None:
    event = await stored(session, stripe_event("payment_intent.succeeded", intent("pi_2")))
    with pytest.raises(Conflict) as not_dead:
        await stripe_events.retry(session, event.id, OPS)
    assert not_dead.value.code == "stripe_event_not_dead"

    dead = await stripe_events.dead_letter(session, event.id, "gave up", delivery=0, actor=SYSTEM)
    assert (dead.status, dead.last_error) == ("dead", "gave up")
    retried = await stripe_events.retry(session, event.id, OPS)
    assert (retried.status, retried.delivery) == ("received", 1)
    # A late dead-letter step of delivery 0 leaves delivery 1 alone.
    late = await stripe_events.dead_letter(session, event.id, "late", delivery=0, actor=SYSTEM)
    assert (late.status, late.delivery) == ("received", 1)
    with pytest.raises(NotFound):
        await stripe_events.retry(session, "evt_missing", OPS)

    [retry_audit] = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.entity_id == event.id, AuditEvent.action == "stripe_event.retried"
            )
        )
    ).all()
    assert retry_audit.actor == "ops-1"
    assert retry_audit.before is not None and retry_audit.before["status"] == "dead"
    assert retry_audit.after is not None and retry_audit.after["delivery"] == 1


async def test_lists_filter_and_paginate(session: AsyncSession) -> None:
    payment = await add_payment(session)
    metadata = {"tollgate_payment_id": str(payment.id)}
    ours = [
        await stored(session, stripe_event("payment_intent.succeeded", intent("pi_3", metadata)))
        for _ in range(3)
    ]
    other = await stored(session, stripe_event("charge.succeeded", {"id": "ch_3"}))
    await stripe_events.dead_letter(session, ours[0].id, "gave up", delivery=0, actor=SYSTEM)

    async def ids(**filters: Any) -> list[str]:
        rows = await stripe_events.list_events(session, limit=10, **filters)
        return [row.id for row in rows]

    assert set(await ids(payment_id=payment.id)) == {row.id for row in ours}
    assert await ids(status=EventStatus.DEAD) == [ours[0].id]
    assert other.id in await ids(status=EventStatus.RECEIVED, event_type="charge.succeeded")
    assert ours[0].id not in await ids(status=EventStatus.RECEIVED)

    first = await stripe_events.list_events(session, limit=2, payment_id=payment.id)
    assert len(first) == 3  # limit + 1: there is more
    rest = await stripe_events.list_events(
        session, limit=2, payment_id=payment.id, starting_after=first[1].id
    )
    assert [row.id for row in [*first[:2], *rest]] == await ids(payment_id=payment.id)
    with pytest.raises(ValidationError):
        await stripe_events.list_events(session, limit=2, starting_after="evt_nope")

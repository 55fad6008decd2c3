"""Outbound webhooks on a real PostgreSQL: dispatch of outbox events into deliveries (once,
even by concurrent dispatchers), attempts and their outcomes, disabling a failing endpoint,
replays, test events and the purge of old logs.

``new_endpoint`` and ``new_event`` are also used by the workflow and API tests."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import Actor, Role
from domain.errors import Conflict, ValidationError
from domain.webhooks import DEFAULT_RETRY_SCHEDULE
from models.audit import AuditEvent
from models.outbox import OutboxEvent
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services import outbox, webhooks
from services.webhooks import Attempt

OPS = Actor("ops-1", Role.PLATFORM_ADMIN)
FIVE_DAYS = timedelta(days=5)


async def new_endpoint(
    session: AsyncSession,
    *,
    url: str = "https://hooks.example.com/tollgate",
    event_types: list[str] | None = None,
    schedule: list[int] | None = None,
    ordered: bool = False,
) -> WebhookEndpoint:
    return await webhooks.register(
        session,
        url=url,
        event_types=event_types or ["*"],
        retry_schedule_seconds=schedule or list(DEFAULT_RETRY_SCHEDULE),
        actor=OPS,
        ordered=ordered,
    )


async def new_event(
    session: AsyncSession,
    event_type: str = "invoice.paid",
    *,
    entity_id: str | None = None,
    created_at: datetime | None = None,
    **payload: Any,
) -> OutboxEvent:
    entity_type = event_type.split(".")[0]
    event = await outbox.emit(
        session,
        event_type,
        entity_type=entity_type,
        entity_id=entity_id or str(uuid.uuid4()),
        payload={"amount": 100, **payload},
    )
    if created_at is not None:
        event.created_at = created_at
    await session.flush()
    await session.refresh(event)
    return event


def now() -> datetime:
    return datetime.now(UTC)


async def dispatch_all(session: AsyncSession) -> list[WebhookDelivery]:
    done = await webhooks.dispatch(session, limit=1000, at=now())
    return done.deliveries


async def test_dispatch_makes_one_delivery_per_matching_enabled_endpoint(
    session: AsyncSession,
) -> None:
    everything = await new_endpoint(session)
    invoices = await new_endpoint(session, event_types=["invoice.*"])
    payments = await new_endpoint(session, event_types=["payment.captured"])
    disabled = await new_endpoint(session)
    await webhooks.disable(session, disabled.id, "paused", actor=OPS, at=now())
    paid = await new_event(session, "invoice.paid")
    captured = await new_event(session, "payment.captured")
    failed = await new_event(session, "payment.failed")

    created = await dispatch_all(session)

    pairs = {(delivery.endpoint_id, delivery.event_id) for delivery in created}
    assert pairs == {
        (everything.id, paid.id),
        (everything.id, captured.id),
        (everything.id, failed.id),
        (invoices.id, paid.id),
        (payments.id, captured.id),
    }
    first = next(d for d in created if d.event_id == paid.id)
    assert (first.status, first.attempt_count, first.message_id) == ("pending", 0, f"msg_{paid.id}")
    assert first.payload == paid.payload and first.occurred_at == paid.created_at
    for event in (paid, captured, failed):
        await session.refresh(event)
        assert event.delivered_at is not None
    assert await dispatch_all(session) == []
    unstarted = await webhooks.unstarted(session, limit=100)
    assert [d.event_id for d, _ in unstarted] == sorted(d.event_id for d in created)
    await webhooks.mark_started(session, [d.id for d, _ in unstarted], now())
    assert await webhooks.unstarted(session, limit=100) == []


async def test_concurrent_dispatchers_never_deliver_an_event_twice(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as session, session.begin():
        endpoints = [await new_endpoint(session) for _ in range(3)]
        events = [await new_event(session) for _ in range(60)]

    async def dispatcher() -> int:
        claimed = 0
        while True:
            async with db() as session, session.begin():
                done = await webhooks.dispatch(session, limit=7, at=now())
            if done.events == 0:
                return claimed
            claimed += done.events
            await asyncio.sleep(0)

    claimed = await asyncio.gather(*(dispatcher() for _ in range(4)))

    assert sum(claimed) == len(events)
    async with db() as session:
        rows = (
            await session.execute(
                select(
                    WebhookDelivery.endpoint_id, WebhookDelivery.event_id, func.count()
                ).group_by(WebhookDelivery.endpoint_id, WebhookDelivery.event_id)
            )
        ).all()
    assert len(rows) == len(events) * len(endpoints)
    assert {count for *_, count in rows} == {1}


async def test_an_event_committed_late_with_a_lower_id_is_still_dispatched(
    db: async_sessionmaker[AsyncSession],
) -> None:
    """No id cursor: an event whose transaction commits after a later one's is not skipped."""
    async with db() as session, session.begin():
        await new_endpoint(session)
    async with db() as slow:
        await slow.begin()
        early = await new_event(slow)  # its id is taken now; it commits last
        async with db() as session, session.begin():
            late = await new_event(session)
        async with db() as session, session.begin():
            first_round = await webhooks.dispatch(session, limit=100, at=now())
        await slow.commit()
    async with db() as session, session.begin():
        second_round = await webhooks.dispatch(session, limit=100, at=now())

    assert early.id < late.id
    assert [d.event_id for d in first_round.deliveries] == [late.id]
    assert [d.event_id for d in second_round.deliveries] == [early.id]


async def delivery_for(session: AsyncSession, endpoint: WebhookEndpoint) -> WebhookDelivery:
    event = await new_event(session)
    [delivery] = [d for d in await dispatch_all(session) if d.endpoint_id == endpoint.id]
    assert delivery.event_id == event.id
    return delivery


def attempt(number: int, status_code: int | None = 500, **fields: Any) -> Attempt:
    return Attempt(
        number=number, started_at=now(), duration_ms=12, status_code=status_code, **fields
    )


async def test_attempts_move_the_delivery_and_are_logged_once(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session)
    delivery = await delivery_for(session, endpoint)
    t0 = now()

    retrying = await webhooks.record_attempt(
        session,
        delivery.id,
        attempt(1, 503, response_excerpt="busy"),
        retry_at=t0 + timedelta(seconds=5),
        at=t0,
        disable_after=FIVE_DAYS,
    )
    assert (retrying.status, retrying.attempt_count, retrying.last_status_code) == (
        "retrying",
        1,
        503,
    )
    assert retrying.next_attempt_at == t0 + timedelta(seconds=5)
    assert retrying.last_error == "HTTP 503"
    await session.refresh(endpoint)
    assert endpoint.failing_since == t0

    # The same attempt recorded again (a retried step) changes nothing.
    again = await webhooks.record_attempt(
        session, delivery.id, attempt(1, 200), retry_at=None, at=t0, disable_after=FIVE_DAYS
    )
    assert (again.status, again.attempt_count) == ("retrying", 1)

    done = await webhooks.record_attempt(
        session, delivery.id, attempt(2, 204), retry_at=None, at=t0, disable_after=FIVE_DAYS
    )
    assert (done.status, done.attempt_count, done.delivered_at) == ("succeeded", 2, t0)
    assert done.next_attempt_at is None and done.last_error is None
    await session.refresh(endpoint)
    assert endpoint.failing_since is None
    logged = await webhooks.attempts(session, delivery.id)
    assert [(a.number, a.status_code, a.response_excerpt) for a in logged] == [
        (1, 503, "busy"),
        (2, 204, None),
    ]


async def test_the_last_failure_dead_letters_and_410_disables_the_endpoint(
    session: AsyncSession,
) -> None:
    endpoint = await new_endpoint(session)
    dead = await delivery_for(session, endpoint)
    dead = await webhooks.record_attempt(
        session,
        dead.id,
        attempt(1, None, error="ConnectError: refused"),
        retry_at=None,
        at=now(),
        disable_after=FIVE_DAYS,
    )
    assert (dead.status, dead.last_error) == ("dead_lettered", "ConnectError: refused")
    actions = await session.scalars(
        select(AuditEvent.action).where(AuditEvent.entity_id == str(dead.id))
    )
    assert list(actions) == ["webhook_delivery.dead_lettered"]

    gone = await delivery_for(session, endpoint)
    gone = await webhooks.record_attempt(
        session, gone.id, attempt(1, 410), retry_at=now(), at=now(), disable_after=FIVE_DAYS
    )
    assert (gone.status, gone.last_error) == ("cancelled", webhooks.GONE_REASON)
    await session.refresh(endpoint)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", webhooks.GONE_REASON)
    # A disabled endpoint gets no new deliveries.
    await new_event(session)
    assert [d for d in await dispatch_all(session) if d.endpoint_id == endpoint.id] == []


async def test_an_endpoint_failing_for_five_days_is_disabled(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session)
    t0 = now()
    first = await delivery_for(session, endpoint)
    await webhooks.record_attempt(
        session, first.id, attempt(1), retry_at=t0, at=t0, disable_after=FIVE_DAYS
    )
    # A success in between restarts the clock.
    await webhooks.record_attempt(
        session,
        first.id,
        attempt(2, 200),
        retry_at=None,
        at=t0 + timedelta(days=1),
        disable_after=FIVE_DAYS,
    )
    second = await delivery_for(session, endpoint)
    restart = t0 + timedelta(days=2)
    for number, day in enumerate((2, 4, 6), start=1):
        second = await webhooks.record_attempt(
            session,
            second.id,
            attempt(number),
            retry_at=t0 + timedelta(days=day + 1),
            at=t0 + timedelta(days=day),
            disable_after=FIVE_DAYS,
        )
        await session.refresh(endpoint)
        assert endpoint.failing_since == restart
        assert endpoint.status == "enabled"
        assert second.status == "retrying"
    second = await webhooks.record_attempt(
        session,
        second.id,
        attempt(4),
        retry_at=t0 + timedelta(days=8),
        at=restart + FIVE_DAYS,
        disable_after=FIVE_DAYS,
    )

    await session.refresh(endpoint)
    assert endpoint.status == "disabled"
    assert endpoint.disabled_reason == "every delivery failed for 5 days"
    assert second.status == "cancelled"
    assert second.last_error == "endpoint disabled: every delivery failed for 5 days"


async def test_replaying_a_delivery_reuses_its_message_id(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session)
    delivery = await delivery_for(session, endpoint)
    with pytest.raises(Conflict) as still_open:
        await webhooks.replay_delivery(session, delivery.id, actor=OPS)
    assert still_open.value.code == "webhook_delivery_open"
    await webhooks.record_attempt(
        session, delivery.id, attempt(1), retry_at=None, at=now(), disable_after=FIVE_DAYS
    )

    replay = await webhooks.replay_delivery(session, delivery.id, actor=OPS)

    assert replay.id != delivery.id and replay.replay_of == delivery.id
    assert (replay.message_id, replay.event_id, replay.status) == (
        delivery.message_id,
        delivery.event_id,
        "pending",
    )
    assert replay.workflow_started_at is None  # the dispatcher starts it
    await webhooks.disable(session, endpoint.id, "paused", actor=OPS, at=now())
    with pytest.raises(Conflict) as disabled:
        await webhooks.replay_delivery(session, delivery.id, actor=OPS)
    assert disabled.value.code == "webhook_endpoint_disabled"


async def test_replaying_a_time_range_resends_failures_and_what_was_missed(
    session: AsyncSession,
) -> None:
    endpoint = await new_endpoint(session, event_types=["invoice.*"])
    t0 = now() - timedelta(hours=2)
    delivered = await new_event(session, created_at=t0)
    failed = await new_event(session, created_at=t0 + timedelta(minutes=1))
    under_way = await new_event(session, created_at=t0 + timedelta(minutes=2))
    other_type = await new_event(session, "payment.captured", created_at=t0)
    outside = await new_event(session, created_at=t0 - timedelta(hours=1))
    by_event = {d.event_id: d for d in await dispatch_all(session)}
    await webhooks.record_attempt(
        session,
        by_event[delivered.id].id,
        attempt(1, 200),
        retry_at=None,
        at=now(),
        disable_after=FIVE_DAYS,
    )
    await webhooks.record_attempt(
        session,
        by_event[failed.id].id,
        attempt(1),
        retry_at=None,
        at=now(),
        disable_after=FIVE_DAYS,
    )
    # Missed while the endpoint was disabled.
    await webhooks.disable(session, endpoint.id, "maintenance", actor=OPS, at=now())
    missed = await new_event(session, created_at=t0 + timedelta(minutes=3))
    await dispatch_all(session)
    await webhooks.enable(session, endpoint.id, actor=OPS)

    since, until = t0, t0 + timedelta(hours=1)
    created = await webhooks.replay_range(session, endpoint.id, since=since, until=until, actor=OPS)

    assert {(d.event_id, d.replay_of) for d in created} == {
        (failed.id, by_event[failed.id].id),
        (missed.id, None),
    }
    assert under_way.id in by_event and other_type.id not in by_event
    assert outside.id in by_event
    with_succeeded = await webhooks.replay_range(
        session, endpoint.id, since=since, until=until, actor=OPS, include_succeeded=True
    )
    # The replays just made are under way now; only the delivered event goes again.
    assert [d.event_id for d in with_succeeded] == [delivered.id]
    with pytest.raises(ValidationError):
        await webhooks.replay_range(session, endpoint.id, since=until, until=since, actor=OPS)


async def test_a_test_event_goes_to_its_endpoint_alone(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session, event_types=["invoice.paid"])
    await new_endpoint(session)  # subscribes to everything, yet gets no test event

    delivery = await webhooks.send_test(session, endpoint.id, actor=OPS, at=now())

    assert (delivery.endpoint_id, delivery.event_type) == (endpoint.id, "webhook.test")
    assert delivery.payload["endpoint_id"] == str(endpoint.id)
    assert await dispatch_all(session) == []
    await webhooks.disable(session, endpoint.id, "paused", actor=OPS, at=now())
    with pytest.raises(Conflict):
        await webhooks.send_test(session, endpoint.id, actor=OPS, at=now())


async def test_a_rotated_secret_signs_alongside_the_new_one_for_a_day(
    session: AsyncSession,
) -> None:
    endpoint = await new_endpoint(session)
    old = endpoint.secret
    at = now()

    rotated = await webhooks.rotate_secret(session, endpoint.id, actor=OPS, at=at)

    assert rotated.secret != old
    assert webhooks.signing_secrets(rotated, at + timedelta(hours=23)) == [rotated.secret, old]
    assert webhooks.signing_secrets(rotated, at + timedelta(hours=25)) == [rotated.secret]
    audited = await session.scalars(
        select(AuditEvent).where(AuditEvent.entity_id == str(endpoint.id))
    )
    assert all("whsec_" not in str(event.after) for event in audited)


async def test_endpoint_changes_are_checked(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session)

    changed = await webhooks.update_endpoint(
        session,
        endpoint.id,
        {"event_types": ["payment.*"], "retry_schedule_seconds": [1, 2], "ordered": True},
        actor=OPS,
    )

    assert (changed.event_types, changed.retry_schedule_seconds, changed.ordered) == (
        ["payment.*"],
        [1, 2],
        True,
    )
    for bad in ({"url": "ftp://x"}, {"retry_schedule_seconds": [5, 1]}, {"secret": "x"}):
        with pytest.raises(ValidationError):
            await webhooks.update_endpoint(session, endpoint.id, bad, actor=OPS)


async def test_logs_older_than_the_retention_are_purged(session: AsyncSession) -> None:
    endpoint = await new_endpoint(session)
    old_closed = await delivery_for(session, endpoint)
    old_open = await delivery_for(session, endpoint)
    recent = await delivery_for(session, endpoint)
    long_ago = now() - timedelta(days=91)
    for delivery in (old_closed, old_open):
        delivery.created_at = long_ago
    await session.flush()
    for delivery, retry_at in ((old_closed, None), (old_open, now()), (recent, None)):
        await webhooks.record_attempt(
            session,
            delivery.id,
            Attempt(
                number=1,
                started_at=now() if delivery is recent else long_ago,
                duration_ms=5,
                status_code=500,
            ),
            retry_at=retry_at,
            at=now(),
            disable_after=FIVE_DAYS,
        )
    before = now() - timedelta(days=90)

    deleted = await webhooks.purge(session, before=before, limit=100)
    assert await webhooks.purge(session, before=before, limit=100) == 0

    assert deleted == 2  # the closed old delivery (its attempt cascades) and one old attempt
    remaining = set(await session.scalars(select(WebhookDelivery.id)))
    assert old_closed.id not in remaining and {old_open.id, recent.id} <= remaining
    attempts = await session.scalars(select(WebhookAttempt.delivery_id))
    assert set(attempts) == {recent.id}

"""Outbound webhooks: partners' endpoints, the deliveries of outbox events to them, and the
log of every attempt.

The dispatcher claims outbox events not yet dispatched (``delivered_at IS NULL``, in id
order, ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers share the work) and creates one
delivery per enabled endpoint that subscribes to the event's type; the unique (endpoint,
event) index makes a second delivery of the same event impossible. There is deliberately no
id cursor: ids are taken at insert and transactions commit out of order, so a cursor would
skip an event whose transaction committed after a later one's.

A delivery is PENDING, then each attempt leaves it SUCCEEDED, RETRYING (with its next
attempt's time), DEAD_LETTERED (its retry schedule ran out) or CANCELLED (410 Gone, the
endpoint disabled, or an operator). Moves are compare-and-set on the locked row, and an
attempt is recorded once by its number, so a repeated step changes nothing.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain import webhooks as rules
from domain.actors import Actor, Role
from domain.errors import Conflict, NotFound, ValidationError
from domain.webhooks import DeliveryStatus, EndpointStatus
from models.outbox import OutboxEvent
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services import audit, outbox
from services.locking import locked
from services.pagination import newest_first

ENDPOINT = "webhook_endpoint"
# The actor of what deliveries do by themselves (an endpoint disabled after a 410, say).
DELIVERY_ACTOR = Actor("webhook-delivery", Role.SYSTEM)
DELIVERY = "webhook_delivery"
GONE_REASON = "the receiver answered 410 Gone"
MAX_RANGE_EVENTS = 1000
EDITABLE = frozenset(
    {"url", "description", "event_types", "retry_schedule_seconds", "ordered", "metadata"}
)


def delivery_workflow_id(delivery_id: uuid.UUID) -> str:
    return f"webhook-delivery-{delivery_id}"


def sequence_workflow_id(endpoint_id: uuid.UUID, entity_type: str, entity_id: str) -> str:
    """The workflow that delivers one entity's events in order to an ordered endpoint."""
    return f"webhook-ordered-{endpoint_id}-{entity_type}-{entity_id}"


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: never its secret."""
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "retry_schedule_seconds": endpoint.retry_schedule_seconds,
        "ordered": endpoint.ordered,
    }


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "endpoint_id": str(delivery.endpoint_id),
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "replay_of": str(delivery.replay_of) if delivery.replay_of else None,
    }


async def _endpoint_changed(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await session.flush()
    await audit.record(
        session,
        action=f"{ENDPOINT}.{action}",
        entity_type=ENDPOINT,
        entity_id=endpoint.id,
        actor=actor,
        before=before,
        after=endpoint_view(endpoint),
        metadata=metadata,
    )


async def _delivery_changed(
    session: AsyncSession,
    delivery: WebhookDelivery,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await session.flush()
    await audit.record(
        session,
        action=f"{DELIVERY}.{action}",
        entity_type=DELIVERY,
        entity_id=delivery.id,
        actor=actor,
        before=before,
        after=delivery_view(delivery),
        metadata=metadata,
    )


# Endpoints


async def register(
    session: AsyncSession,
    *,
    url: str,
    event_types: Sequence[str],
    retry_schedule_seconds: Sequence[int],
    actor: Actor,
    description: str | None = None,
    ordered: bool = False,
    metadata: dict[str, Any] | None = None,
) -> WebhookEndpoint:
    """A new enabled endpoint with a fresh secret (which only this answer shows)."""
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        url=rules.check_url(url),
        description=description,
        event_types=rules.check_event_types(event_types),
        secret=rules.new_secret(),
        status=EndpointStatus.ENABLED.value,
        retry_schedule_seconds=rules.check_retry_schedule(retry_schedule_seconds),
        ordered=ordered,
        metadata_=metadata or {},
    )
    session.add(endpoint)
    await _endpoint_changed(session, endpoint, "created", actor=actor, before=None)
    return endpoint


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    found: WebhookEndpoint | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}", param="endpoint_id")
    return found


async def list_endpoints(
    session: AsyncSession,
    *,
    limit: int,
    after: WebhookEndpoint | None = None,
    status: EndpointStatus | None = None,
) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint)
    if status is not None:
        query = query.where(WebhookEndpoint.status == status.value)
    return list(await session.scalars(newest_first(query, WebhookEndpoint, after).limit(limit)))


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, changes: dict[str, Any], *, actor: Actor
) -> WebhookEndpoint:
    """Changes any of ``EDITABLE``; each is checked as at registration. Deliveries already
    under way keep the retry schedule they started with."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}", param=min(unknown))
    checked = dict(changes)
    if "url" in checked:
        checked["url"] = rules.check_url(checked["url"])
    if "event_types" in checked:
        checked["event_types"] = rules.check_event_types(checked["event_types"])
    if "retry_schedule_seconds" in checked:
        checked["retry_schedule_seconds"] = rules.check_retry_schedule(
            checked["retry_schedule_seconds"]
        )
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    before = endpoint_view(endpoint)
    for name, value in checked.items():
        setattr(endpoint, "metadata_" if name == "metadata" else name, value)
    await _endpoint_changed(session, endpoint, "updated", actor=actor, before=before)
    return endpoint


async def disable(
    session: AsyncSession, endpoint_id: uuid.UUID, reason: str, *, actor: Actor, at: datetime
) -> WebhookEndpoint:
    """No new deliveries; those under way are cancelled at their next attempt. Idempotent."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    if endpoint.status == EndpointStatus.DISABLED.value:
        return endpoint
    before = endpoint_view(endpoint)
    endpoint.status = EndpointStatus.DISABLED.value
    endpoint.disabled_reason = reason
    endpoint.disabled_at = at
    await _endpoint_changed(session, endpoint, "disabled", actor=actor, before=before)
    return endpoint


async def enable(session: AsyncSession, endpoint_id: uuid.UUID, *, actor: Actor) -> WebhookEndpoint:
    """Deliveries resume with the next events; what was missed meanwhile is replayed by
    time range. The failure clock starts afresh. Idempotent."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    if endpoint.status == EndpointStatus.ENABLED.value:
        return endpoint
    before = endpoint_view(endpoint)
    endpoint.status = EndpointStatus.ENABLED.value
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    endpoint.failing_since = None
    await _endpoint_changed(session, endpoint, "enabled", actor=actor, before=before)
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, *, actor: Actor, at: datetime
) -> WebhookEndpoint:
    """A new secret; the old one still signs too (a second signature) for 24 hours."""
    endpoint = await get_endpoint(session, endpoint_id, for_update=True)
    before = endpoint_view(endpoint)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = at + rules.ROTATION_OVERLAP
    endpoint.secret = rules.new_secret()
    await _endpoint_changed(session, endpoint, "secret_rotated", actor=actor, before=before)
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, at: datetime) -> list[str]:
    """The secrets that sign at ``at``: the current one, and the previous one until it expires."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and at < expires:
        secrets.append(endpoint.previous_secret)
    return secrets


# Dispatch


def _new_delivery(
    endpoint_id: uuid.UUID, event: OutboxEvent, replay_of: uuid.UUID | None = None
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "endpoint_id": endpoint_id,
        "event_id": event.id,
        "event_type": event.event_type,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "message_id": rules.message_id(event.id),
        "payload": event.payload,
        "occurred_at": event.created_at,
        "status": DeliveryStatus.PENDING.value,
        "attempt_count": 0,
        "replay_of": replay_of,
    }


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> list[WebhookDelivery]:
    """The deliveries created; one whose (endpoint, event) already has a delivery is not."""
    if not rows:
        return []
    statement = (
        insert(WebhookDelivery)
        .on_conflict_do_nothing(
            index_elements=[WebhookDelivery.endpoint_id, WebhookDelivery.event_id],
            index_where=text("replay_of IS NULL"),
        )
        .returning(WebhookDelivery)
    )
    created = list(await session.scalars(statement, rows))
    return sorted(created, key=lambda delivery: (delivery.event_id, str(delivery.endpoint_id)))


@dataclass(frozen=True)
class Dispatched:
    events: int
    deliveries: list[WebhookDelivery]


async def dispatch(session: AsyncSession, *, limit: int, at: datetime) -> Dispatched:
    """Claim up to ``limit`` undispatched events, oldest first, create their deliveries and
    mark them dispatched (``delivered_at``). The caller commits, then starts the workflows."""
    events = list(
        await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.delivered_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not events:
        return Dispatched(0, [])
    endpoints = list(
        await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.status == EndpointStatus.ENABLED.value)
        )
    )
    rows = [
        _new_delivery(endpoint.id, event)
        for event in events
        for endpoint in endpoints
        if rules.subscribes(endpoint.event_types, event.event_type)
    ]
    created = await _insert(session, rows)
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_([event.id for event in events]))
        .values(delivered_at=at)
    )
    return Dispatched(len(events), created)


async def unstarted(
    session: AsyncSession, *, limit: int
) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """Deliveries whose workflow is not known to run, in event order, with their endpoint."""
    rows = await session.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.workflow_started_at.is_(None))
        .order_by(WebhookDelivery.event_id, WebhookDelivery.created_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [(delivery, endpoint) for delivery, endpoint in rows.tuples()]


async def mark_started(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], at: datetime
) -> None:
    if delivery_ids:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.workflow_started_at.is_(None)
            )
            .values(workflow_started_at=at)
        )


# Attempts


async def get_delivery(
    session: AsyncSession, delivery_id: uuid.UUID, *, for_update: bool = False
) -> WebhookDelivery:
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    found: WebhookDelivery | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no webhook delivery {delivery_id}", param="delivery_id")
    return found


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt as the sender saw it."""

    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None

    @property
    def description(self) -> str:
        if self.error is not None:
            return self.error
        return f"HTTP {self.status_code}"


async def _failing(
    session: AsyncSession, endpoint_id: uuid.UUID, at: datetime, disable_after: timedelta
) -> str | None:
    """Start the endpoint's failure clock unless it runs; disable the endpoint once it has run
    ``disable_after``. The endpoint's disabled reason when it is (now) disabled. Conditional
    updates: the endpoint's row is locked only when it changes, not at every attempt."""
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=at)
    )
    current = (
        await session.execute(
            select(
                WebhookEndpoint.status,
                WebhookEndpoint.disabled_reason,
                WebhookEndpoint.failing_since,
            ).where(WebhookEndpoint.id == endpoint_id)
        )
    ).one()
    if current.status == EndpointStatus.DISABLED.value:
        return current.disabled_reason or "disabled"
    if current.failing_since is None or at - current.failing_since < disable_after:
        return None
    reason = f"every delivery failed for {disable_after / timedelta(days=1):g} days"
    await disable(session, endpoint_id, reason, actor=DELIVERY_ACTOR, at=at)
    return reason


async def record_attempt(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    attempt: Attempt,
    *,
    retry_at: datetime | None,
    at: datetime,
    disable_after: timedelta,
) -> WebhookDelivery:
    """Log the attempt and move the delivery: SUCCEEDED on a 2xx; CANCELLED on 410 Gone
    (disabling the endpoint) or when the endpoint is disabled by this failure (it failed
    for ``disable_after``); else RETRYING at ``retry_at``, or DEAD_LETTERED without one.
    An attempt number already logged, or a delivery no longer open, changes nothing."""
    logged = await session.scalar(
        insert(WebhookAttempt)
        .values(
            delivery_id=delivery_id,
            number=attempt.number,
            started_at=attempt.started_at,
            status_code=attempt.status_code,
            duration_ms=attempt.duration_ms,
            error=attempt.error,
            response_excerpt=(attempt.response_excerpt or None) and attempt.response_excerpt[:1024],
        )
        .on_conflict_do_nothing(index_elements=[WebhookAttempt.delivery_id, WebhookAttempt.number])
        .returning(WebhookAttempt.id)
    )
    delivery = await get_delivery(session, delivery_id, for_update=True)
    if logged is None or DeliveryStatus(delivery.status) not in rules.OPEN_STATUSES:
        return delivery
    before = delivery_view(delivery)
    delivery.attempt_count = max(delivery.attempt_count, attempt.number)
    delivery.last_status_code = attempt.status_code
    delivery.next_attempt_at = None
    if rules.succeeded(attempt.status_code):
        delivery.status = DeliveryStatus.SUCCEEDED.value
        delivery.delivered_at = at
        delivery.last_error = None
        await session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == delivery.endpoint_id,
                WebhookEndpoint.failing_since.is_not(None),
            )
            .values(failing_since=None)
        )
        await session.flush()
        return delivery
    delivery.last_error = attempt.description
    if attempt.status_code == rules.GONE:
        await disable(session, delivery.endpoint_id, GONE_REASON, actor=DELIVERY_ACTOR, at=at)
        return await _close(session, delivery, DeliveryStatus.CANCELLED, GONE_REASON, before)
    disabled = await _failing(session, delivery.endpoint_id, at, disable_after)
    if disabled is not None:
        reason = f"endpoint disabled: {disabled}"
        return await _close(session, delivery, DeliveryStatus.CANCELLED, reason, before)
    if retry_at is None:
        return await _close(
            session, delivery, DeliveryStatus.DEAD_LETTERED, attempt.description, before
        )
    delivery.status = DeliveryStatus.RETRYING.value
    delivery.next_attempt_at = retry_at
    await session.flush()
    return delivery


async def _close(
    session: AsyncSession,
    delivery: WebhookDelivery,
    status: DeliveryStatus,
    reason: str,
    before: dict[str, Any],
    actor: Actor | None = None,
) -> WebhookDelivery:
    delivery.status = status.value
    delivery.last_error = reason
    delivery.next_attempt_at = None
    await _delivery_changed(
        session, delivery, status.value, actor=actor or DELIVERY_ACTOR, before=before
    )
    return delivery


async def cancel(
    session: AsyncSession, delivery_id: uuid.UUID, reason: str, *, actor: Actor
) -> WebhookDelivery:
    """An open delivery CANCELLED; a closed one is returned as it is."""
    delivery = await get_delivery(session, delivery_id, for_update=True)
    if DeliveryStatus(delivery.status) not in rules.OPEN_STATUSES:
        return delivery
    return await _close(
        session, delivery, DeliveryStatus.CANCELLED, reason, delivery_view(delivery), actor
    )


# Replays and test events


async def _enabled(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id)
    if endpoint.status != EndpointStatus.ENABLED.value:
        raise Conflict(
            f"webhook endpoint {endpoint_id} is disabled; enable it first",
            code="webhook_endpoint_disabled",
        )
    return endpoint


async def replay_delivery(
    session: AsyncSession, delivery_id: uuid.UUID, *, actor: Actor
) -> WebhookDelivery:
    """A new delivery of the same event (same ``webhook-id``) to the same endpoint. Only a
    closed delivery is replayed: an open one is retried by its ``retry_now`` signal."""
    original = await get_delivery(session, delivery_id)
    if DeliveryStatus(original.status) in rules.OPEN_STATUSES:
        raise Conflict(
            f"webhook delivery {delivery_id} is {original.status}: it is still being delivered",
            code="webhook_delivery_open",
        )
    await _enabled(session, original.endpoint_id)
    event = await session.get(OutboxEvent, original.event_id)
    if event is None:  # the foreign key prevents it
        raise NotFound(f"the event of webhook delivery {delivery_id} is gone")
    [replay] = await _insert(session, [_new_delivery(original.endpoint_id, event, original.id)])
    await _delivery_changed(
        session,
        replay,
        "replayed",
        actor=actor,
        before=None,
        metadata={"replay_of": str(original.id)},
    )
    return replay


async def replay_range(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    since: datetime,
    until: datetime,
    actor: Actor,
    include_succeeded: bool = False,
) -> list[WebhookDelivery]:
    """Deliver again the events of ``[since, until)`` the endpoint subscribes to: those whose
    delivery failed (dead-lettered or cancelled) as replays, those it never got (it was
    disabled, or subscribed later) as first deliveries, and with ``include_succeeded`` the
    delivered ones too. Events with a delivery under way are left to it. At most 1000 events
    in the range (else 400, nothing done)."""
    if until <= since:
        raise ValidationError("the range's end must be after its start", param="to")
    endpoint = await _enabled(session, endpoint_id)
    events = list(
        await session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.created_at >= since,
                OutboxEvent.created_at < until,
                OutboxEvent.delivered_at.is_not(None),  # the others are the dispatcher's
                OutboxEvent.event_type != rules.TEST_EVENT,
            )
            .order_by(OutboxEvent.id)
            .limit(MAX_RANGE_EVENTS + 1)
        )
    )
    if len(events) > MAX_RANGE_EVENTS:
        raise ValidationError(
            f"more than {MAX_RANGE_EVENTS} events in the range: narrow it", param="from"
        )
    wanted = [event for event in events if rules.subscribes(endpoint.event_types, event.event_type)]
    earlier = await session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.event_id.in_([event.id for event in wanted]),
        )
    )
    by_event: dict[int, list[WebhookDelivery]] = {}
    for delivery in earlier:
        by_event.setdefault(delivery.event_id, []).append(delivery)
    rows = []
    for event in wanted:
        deliveries = by_event.get(event.id, [])
        statuses = {DeliveryStatus(delivery.status) for delivery in deliveries}
        if statuses & rules.OPEN_STATUSES:
            continue
        if DeliveryStatus.SUCCEEDED in statuses and not include_succeeded:
            continue
        first = next((d for d in deliveries if d.replay_of is None), None)
        rows.append(_new_delivery(endpoint_id, event, first.id if first else None))
    created = await _insert(session, rows)
    await _endpoint_changed(
        session,
        endpoint,
        "replayed",
        actor=actor,
        before=None,
        metadata={
            "from": since.isoformat(),
            "to": until.isoformat(),
            "include_succeeded": include_succeeded,
            "deliveries": len(created),
        },
    )
    return created


async def send_test(
    session: AsyncSession, endpoint_id: uuid.UUID, *, actor: Actor, at: datetime
) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint alone (whatever it subscribes to): stored in
    the outbox already dispatched, so no other endpoint gets it."""
    endpoint = await _enabled(session, endpoint_id)
    event = await outbox.emit(
        session,
        rules.TEST_EVENT,
        entity_type=ENDPOINT,
        entity_id=str(endpoint.id),
        payload={
            "endpoint_id": str(endpoint.id),
            "message": "A test event from Tollgate",
            "sent_by": actor.id,
        },
    )
    event.delivered_at = at
    await session.flush()
    await session.refresh(event, ["created_at"])
    [delivery] = await _insert(session, [_new_delivery(endpoint.id, event)])
    await _delivery_changed(session, delivery, "test_sent", actor=actor, before=None)
    return delivery


# Lists and the logs' retention


async def list_deliveries(
    session: AsyncSession,
    *,
    limit: int,
    after: WebhookDelivery | None = None,
    endpoint_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: str | None = None,
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if event_type:
        query = query.where(WebhookDelivery.event_type == event_type)
    return list(await session.scalars(newest_first(query, WebhookDelivery, after).limit(limit)))


async def attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    return list(
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
    )


async def purge(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` closed deliveries created before ``before`` (with their
    attempts) and up to ``limit`` older attempts of deliveries still open; returns how many
    rows went. Called in batches, each its own transaction, until it returns 0."""
    closed = [status.value for status in rules.FINAL_STATUSES]
    old = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.created_at < before, WebhookDelivery.status.in_(closed))
        .order_by(WebhookDelivery.created_at)
        .limit(limit)
    )
    deliveries = await session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.id.in_(old.scalar_subquery()))
    )
    old_attempts = (
        select(WebhookAttempt.id)
        .where(WebhookAttempt.started_at < before)
        .order_by(WebhookAttempt.started_at)
        .limit(limit)
    )
    attempts_gone = await session.execute(
        delete(WebhookAttempt).where(WebhookAttempt.id.in_(old_attempts.scalar_subquery()))
    )
    return int(getattr(deliveries, "rowcount", 0)) + int(getattr(attempts_gone, "rowcount", 0))

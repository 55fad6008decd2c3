"""Stripe's webhooks, and the admins' view of the events received.

``POST /webhooks/stripe`` has no bearer token: Stripe signs the raw body instead
(``Stripe-Signature``), and a bad or stale signature is a 400 with nothing stored. An event
is stored once by its id; once committed, its delivery workflow signals the payment or refund
workflow it concerns. A start that fails after the commit leaves the event RECEIVED with no
delivery: the same event sent again (Stripe retries when our answer was lost; its dashboard
resends) starts it.
"""

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, Session, get_settings
from api.pagination import Page, PageQuery, paginate
from api.workflow_calls import (
    BULK_MAX,
    BulkError,
    BulkItem,
    BulkOut,
    WorkflowStart,
    start_after_commit,
)
from domain.actors import Actor
from domain.errors import TollgateError, ValidationError
from integrations.stripe_client import verify_webhook
from models.payments import StripeEvent
from services import stripe_events
from services.stripe_events import EventStatus
from settings import Settings
from workflows.types import StripeEventDeliveryInput

router = APIRouter(prefix="/webhooks/stripe", tags=["stripe webhooks"])

AppSettings = Annotated[Settings, Depends(get_settings)]
EventId = Annotated[str, Path(min_length=1, max_length=100, description="Stripe event id")]


def delivery_workflow_id(event_id: str, delivery: int) -> str:
    return f"stripe-event-{event_id}-{delivery}"


def delivery_workflow(event: StripeEvent, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="StripeEventDelivery",
        id=delivery_workflow_id(event.id, event.delivery),
        arg=StripeEventDeliveryInput(
            event_id=event.id,
            delivery=event.delivery,
            max_attempts=settings.stripe_event_max_attempts,
            initial_interval_seconds=settings.stripe_event_retry_initial_seconds,
            maximum_interval_seconds=settings.stripe_event_retry_max_seconds,
        ),
        task_queue=settings.task_queue,
    )


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = Field(description="The event id was stored before: nothing more is done")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: Stripe never repeats one, and a repeated
    key is read differently by different parsers (first or last wins), so it is refused."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a key is repeated in a JSON object")
    return found


def _event(payload: bytes) -> dict[str, Any]:
    """The body as a JSON object; checked first, as the SDK's check fails with an
    ``AttributeError`` on other JSON."""
    try:
        event = json.loads(payload, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ValidationError("invalid Stripe webhook payload", code="webhook_invalid") from exc
    if not isinstance(event, dict):
        raise ValidationError("a Stripe event is a JSON object", code="webhook_invalid")
    return event


@router.post("")
async def receive_webhook(
    request: Request,
    session: Session,
    settings: AppSettings,
    stripe_signature: Annotated[str | None, Header(description="Stripe's signature")] = None,
) -> WebhookAck:
    """Check the signature over the raw body, store the event once, and deliver it after
    the commit. Answers 200 for a duplicate too, so Stripe stops sending it."""
    payload = await request.body()
    event = _event(payload)
    verify_webhook(payload, stripe_signature, settings.stripe_webhook_secret)
    stored = await stripe_events.store(session, event)
    if stored is not None:
        start_after_commit(request, delivery_workflow(stored, settings))
        return WebhookAck(duplicate=False)
    existing = await stripe_events.get(session, event["id"])
    if existing.status == EventStatus.RECEIVED.value:
        # Its delivery may never have started; if it runs, the same workflow id is a no-op.
        start_after_commit(request, delivery_workflow(existing, settings))
    return WebhookAck(duplicate=True)


class EventOut(BaseModel):
    id: str
    object: str = "stripe_event"
    type: str
    object_id: str | None
    payment_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    status: EventStatus
    attempts: int
    delivery: int
    outcome: str | None
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    updated_at: datetime
    workflow_id: str = Field(description="The workflow of the event's latest delivery")
    data: dict[str, Any] = Field(description="The event as Stripe sent it")


def event_out(event: StripeEvent) -> EventOut:
    return EventOut(
        id=event.id,
        type=event.type,
        object_id=event.object_id,
        payment_id=event.payment_id,
        refund_id=event.refund_id,
        status=EventStatus(event.status),
        attempts=event.attempts,
        delivery=event.delivery,
        outcome=event.outcome,
        last_error=event.last_error,
        received_at=event.received_at,
        processed_at=event.processed_at,
        updated_at=event.updated_at,
        workflow_id=delivery_workflow_id(event.id, event.delivery),
        data=event.payload,
    )


@router.get("/events")
async def list_events(
    session: Session,
    _: Admin,
    params: PageQuery,
    status: Annotated[
        EventStatus | None, Query(description="received: not yet processed; dead: dead letters")
    ] = None,
    event_type: Annotated[
        str | None, Query(alias="type", max_length=100, description="e.g. charge.refunded")
    ] = None,
    payment_id: Annotated[uuid.UUID | None, Query(description="Events of one payment")] = None,
) -> Page[EventOut]:
    """Newest first."""
    rows = await stripe_events.list_events(
        session,
        limit=params.limit,
        starting_after=params.starting_after,
        status=status,
        event_type=event_type,
        payment_id=payment_id,
    )
    return paginate(rows, params.limit, event_out, lambda item: item.id)


@router.get("/events/dead-letters")
async def list_dead_letters(session: Session, _: Admin, params: PageQuery) -> Page[EventOut]:
    """Events whose delivery ran out of retries, newest first."""
    rows = await stripe_events.list_events(
        session,
        limit=params.limit,
        starting_after=params.starting_after,
        status=EventStatus.DEAD,
    )
    return paginate(rows, params.limit, event_out, lambda item: item.id)


@router.get("/events/{event_id}")
async def get_event(event_id: EventId, session: Session, _: Admin) -> EventOut:
    return event_out(await stripe_events.get(session, event_id))


async def _retry(
    request: Request, session: AsyncSession, event_id: str, actor: Actor, settings: Settings
) -> StripeEvent:
    event = await stripe_events.retry(session, event_id, actor)
    start_after_commit(request, delivery_workflow(event, settings))
    return event


@router.post("/events/{event_id}/retry", status_code=202)
async def retry_event(
    event_id: EventId, request: Request, session: Session, actor: Admin, settings: AppSettings
) -> EventOut:
    """Deliver a dead event again (a new delivery with its own retries); 409 unless dead."""
    return event_out(await _retry(request, session, event_id, actor, settings))


class RetryDeadIn(BaseModel):
    ids: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=1, max_length=BULK_MAX, description="These events; default: any dead"
    )
    limit: int = Field(BULK_MAX, ge=1, le=BULK_MAX, description="Most dead letters, without ids")


@router.post("/events/retry-dead")
async def retry_dead(
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    body: RetryDeadIn | None = None,
) -> BulkOut:
    """Retry the given dead events, or the newest ``limit`` dead letters; each id gets its
    own result (one not dead is refused, the others still go)."""
    body = body or RetryDeadIn()
    if body.ids is not None:
        ids = list(dict.fromkeys(body.ids))
    else:
        dead = await stripe_events.list_events(session, limit=body.limit, status=EventStatus.DEAD)
        ids = [event.id for event in dead[: body.limit]]
    items: list[BulkItem] = []
    for event_id in ids:
        try:
            await _retry(request, session, event_id, actor, settings)
        except TollgateError as error:
            items.append(
                BulkItem(
                    id=event_id,
                    status="error",
                    error=BulkError(type=error.type, code=error.code, message=error.message),
                )
            )
        else:
            items.append(BulkItem(id=event_id, status="accepted"))
    accepted = sum(item.status == "accepted" for item in items)
    return BulkOut(data=items, accepted=accepted, failed=len(items) - accepted)

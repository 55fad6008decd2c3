"""Outbound webhooks: partners' endpoints and the deliveries made to them (admins only).

An endpoint's secret (``whsec_...``) is shown whole once, in the answer that creates it
(registration or rotation); afterwards only its first characters. Deliveries, replays and
test events are rows the dispatcher picks up within its interval (a couple of seconds) and
hands to their workflows: a replay or test event is never lost to a failed start.
"""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import webhooks as actions
from api.deps import Admin, Session, get_settings
from api.pagination import Page, PageParams, PageQuery, paginate, row_cursor
from domain.errors import ValidationError
from domain.webhooks import DeliveryStatus, EndpointStatus, mask_secret
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services import webhooks

router = APIRouter(tags=["webhooks"])

ENDPOINTS = "/webhook-endpoints"
DELIVERIES = "/webhook-deliveries"

Url = Annotated[str, Field(min_length=1, max_length=2048, description="http(s) receiver URL")]
EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(min_length=1, max_length=100, description="'*', '<entity>.*' or '<entity>.<action>'"),
]
RetrySchedule = Annotated[
    list[int],
    Field(
        min_length=1,
        max_length=20,
        description="Seconds to wait before each retry, not decreasing; default from settings",
    ),
]
Description = Annotated[str, Field(max_length=500)]
Metadata = Annotated[dict[str, str], Field(max_length=50)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: Description | None = None
    retry_schedule_seconds: RetrySchedule | None = None
    ordered: bool = Field(False, description="Deliver each entity's events one at a time, in order")
    metadata: Metadata = Field(default_factory=dict)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    retry_schedule_seconds: RetrySchedule | None = None
    ordered: bool | None = None
    metadata: Metadata | None = None


class EndpointOut(BaseModel):
    id: uuid.UUID
    object: str = "webhook_endpoint"
    url: str
    description: str | None
    event_types: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    disabled_at: datetime | None
    retry_schedule_seconds: list[int]
    ordered: bool
    failing_since: datetime | None
    secret: str = Field(description="Whole only when created or rotated; masked otherwise")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def endpoint_out(endpoint: WebhookEndpoint, *, reveal: bool = False) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=endpoint.event_types,
        status=EndpointStatus(endpoint.status),
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        retry_schedule_seconds=endpoint.retry_schedule_seconds,
        ordered=endpoint.ordered,
        failing_since=endpoint.failing_since,
        secret=endpoint.secret if reveal else mask_secret(endpoint.secret),
        metadata=endpoint.metadata_,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    object: str = "webhook_delivery"
    endpoint_id: uuid.UUID
    event_id: int
    event_type: str
    entity_type: str
    entity_id: str
    message_id: str = Field(description="The webhook-id header: the same for every replay")
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    replay_of: uuid.UUID | None
    occurred_at: datetime
    created_at: datetime
    workflow_id: str
    data: dict[str, Any]
    attempts: list[AttemptOut] | None = Field(None, description="Only when one is fetched")


def delivery_out(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt] | None = None
) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        entity_type=delivery.entity_type,
        entity_id=delivery.entity_id,
        message_id=delivery.message_id,
        status=DeliveryStatus(delivery.status),
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        replay_of=delivery.replay_of,
        occurred_at=delivery.occurred_at,
        created_at=delivery.created_at,
        workflow_id=webhooks.delivery_workflow_id(delivery.id),
        data=delivery.payload,
        attempts=None
        if attempts is None
        else [
            AttemptOut(
                number=attempt.number,
                started_at=attempt.started_at,
                status_code=attempt.status_code,
                duration_ms=attempt.duration_ms,
                error=attempt.error,
                response_excerpt=attempt.response_excerpt,
            )
            for attempt in attempts
        ],
    )


class DeliveryList(BaseModel):
    object: str = "list"
    data: list[DeliveryOut]


# Endpoints


@router.post(ENDPOINTS, status_code=201)
async def register_endpoint(
    body: EndpointIn, request: Request, session: Session, actor: Admin
) -> EndpointOut:
    """A new endpoint, enabled; its ``secret`` is in this answer and never again."""
    endpoint = await webhooks.register(
        session,
        url=body.url,
        event_types=body.event_types,
        retry_schedule_seconds=body.retry_schedule_seconds
        or get_settings(request).webhook_retry_schedule_seconds,
        actor=actor,
        description=body.description,
        ordered=body.ordered,
        metadata=body.metadata,
    )
    return endpoint_out(endpoint, reveal=True)


@router.get(ENDPOINTS)
async def list_endpoints(
    session: Session,
    _: Admin,
    params: PageQuery,
    status: Annotated[EndpointStatus | None, Query()] = None,
) -> Page[EndpointOut]:
    """Newest first."""
    after = await row_cursor(
        params.starting_after,
        lambda endpoint_id: webhooks.get_endpoint(session, endpoint_id),
        lambda _: True,
    )
    rows = await webhooks.list_endpoints(
        session, limit=params.limit + 1, after=after, status=status
    )
    return paginate(rows, params.limit, endpoint_out, lambda item: item.id)


@router.get(ENDPOINTS + "/{endpoint_id}")
async def get_endpoint(endpoint_id: uuid.UUID, session: Session, _: Admin) -> EndpointOut:
    return endpoint_out(await webhooks.get_endpoint(session, endpoint_id))


NOT_NULL = ("url", "event_types", "retry_schedule_seconds", "ordered", "metadata")


@router.patch(ENDPOINTS + "/{endpoint_id}")
async def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointPatch, session: Session, actor: Admin
) -> EndpointOut:
    """Change the URL, event types, description, retry schedule, ordering or metadata.
    Deliveries already under way keep the schedule they started with."""
    changes = body.model_dump(exclude_unset=True)
    for name in NOT_NULL:
        if name in changes and changes[name] is None:
            raise ValidationError(f"{name} cannot be null", param=name)
    endpoint = await webhooks.update_endpoint(session, endpoint_id, changes, actor=actor)
    return endpoint_out(endpoint)


class DisableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("disabled by an admin", min_length=1, max_length=500)


@router.post(ENDPOINTS + "/{endpoint_id}/disable")
async def disable_endpoint(
    endpoint_id: uuid.UUID, session: Session, actor: Admin, body: DisableIn | None = None
) -> EndpointOut:
    """No new deliveries; those under way are cancelled at their next attempt."""
    reason = (body or DisableIn()).reason
    endpoint = await webhooks.disable(
        session, endpoint_id, reason, actor=actor, at=datetime.now(UTC)
    )
    return endpoint_out(endpoint)


@router.post(ENDPOINTS + "/{endpoint_id}/enable")
async def enable_endpoint(endpoint_id: uuid.UUID, session: Session, actor: Admin) -> EndpointOut:
    """Deliveries resume with the next events; replay a time range for what was missed."""
    return endpoint_out(await webhooks.enable(session, endpoint_id, actor=actor))


@router.post(ENDPOINTS + "/{endpoint_id}/rotate-secret")
async def rotate_secret(endpoint_id: uuid.UUID, session: Session, actor: Admin) -> EndpointOut:
    """A new secret, in this answer only; the old one signs too for 24 hours."""
    endpoint = await webhooks.rotate_secret(session, endpoint_id, actor=actor, at=datetime.now(UTC))
    return endpoint_out(endpoint, reveal=True)


@router.post(ENDPOINTS + "/{endpoint_id}/test", status_code=202)
async def send_test_event(endpoint_id: uuid.UUID, session: Session, actor: Admin) -> DeliveryOut:
    """A ``webhook.test`` event to this endpoint alone, sent within the dispatch interval."""
    delivery = await webhooks.send_test(session, endpoint_id, actor=actor, at=datetime.now(UTC))
    return delivery_out(delivery)


class ReplayRangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    since: AwareDatetime = Field(alias="from", description="Events from this time (inclusive)")
    until: AwareDatetime = Field(alias="to", description="Events before this time")
    include_succeeded: bool = Field(False, description="Also events already delivered")


@router.post(ENDPOINTS + "/{endpoint_id}/replay", status_code=202)
async def replay_range(
    endpoint_id: uuid.UUID, body: ReplayRangeIn, session: Session, actor: Admin
) -> DeliveryList:
    """Deliver again the events of a time range the endpoint subscribes to: failed ones,
    ones it never got (disabled then, or subscribed since) and, if asked, delivered ones.
    At most 1000 events per call."""
    created = await webhooks.replay_range(
        session,
        endpoint_id,
        since=body.since,
        until=body.until,
        actor=actor,
        include_succeeded=body.include_succeeded,
    )
    return DeliveryList(data=[delivery_out(delivery) for delivery in created])


# Deliveries


async def _delivery_page(
    session: AsyncSession,
    params: PageParams,
    *,
    endpoint_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: str | None = None,
) -> Page[DeliveryOut]:
    after = await row_cursor(
        params.starting_after,
        lambda delivery_id: webhooks.get_delivery(session, delivery_id),
        lambda _: True,
    )
    rows = await webhooks.list_deliveries(
        session,
        limit=params.limit + 1,
        after=after,
        endpoint_id=endpoint_id,
        status=status,
        event_type=event_type,
    )
    return paginate(rows, params.limit, delivery_out, lambda item: item.id)


@router.get(DELIVERIES)
async def list_deliveries(
    session: Session,
    _: Admin,
    params: PageQuery,
    endpoint_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event_type: Annotated[str | None, Query(max_length=64, description="e.g. invoice.paid")] = None,
) -> Page[DeliveryOut]:
    """Newest first."""
    return await _delivery_page(
        session, params, endpoint_id=endpoint_id, status=status, event_type=event_type
    )


@router.get(DELIVERIES + "/dead-letters")
async def list_dead_letters(
    session: Session,
    _: Admin,
    params: PageQuery,
    endpoint_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[DeliveryOut]:
    """Deliveries whose retry schedule ran out, newest first."""
    return await _delivery_page(
        session, params, endpoint_id=endpoint_id, status=DeliveryStatus.DEAD_LETTERED
    )


@router.get(DELIVERIES + "/{delivery_id}")
async def get_delivery(delivery_id: uuid.UUID, session: Session, _: Admin) -> DeliveryOut:
    """The delivery with the log of its attempts."""
    delivery = await webhooks.get_delivery(session, delivery_id)
    return delivery_out(delivery, await webhooks.attempts(session, delivery_id))


@router.post(DELIVERIES + "/{delivery_id}/replay", status_code=202)
async def replay_delivery(delivery_id: uuid.UUID, session: Session, actor: Admin) -> DeliveryOut:
    """The same event again (same ``webhook-id``) as a new delivery; 409 while the delivery
    is still under way or its endpoint is disabled."""
    return delivery_out(await actions.replay_delivery(session, delivery_id, actor=actor))

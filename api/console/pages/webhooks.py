"""Webhook deliveries: filters (status, dead letters, event type, endpoint), search by id, the
last error of each in a tooltip, a delivery's page with every attempt and its payload, and
*Replay* (the same event again, same ``webhook-id``) through ``api.actions.webhooks``, the
API's own path."""

import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import webhooks as actions
from api.console.auth import ConsoleAction, ConsoleUser
from api.console.inputs import check_text
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    htmx_target,
    list_context,
    parse_id,
    render,
    text_filter,
    with_flash,
)
from api.deps import Session
from domain.errors import NotFound, ValidationError
from domain.webhooks import DeliveryStatus
from models.webhooks import WebhookDelivery, WebhookEndpoint
from services import webhooks

router = console_router()

DEAD = DeliveryStatus.DEAD_LETTERED.value
# A replay is possible once a delivery is closed (an open one is still being retried).
CLOSED = frozenset({DeliveryStatus.SUCCEEDED.value, DEAD, DeliveryStatus.CANCELLED.value})


@dataclass
class Filters(PageFilters):
    status: str | None = None
    event_type: str | None = None
    endpoint_id: str | None = None
    id: str | None = None


async def _endpoints(
    session: AsyncSession, deliveries: list[WebhookDelivery]
) -> dict[uuid.UUID, WebhookEndpoint]:
    """The endpoints of ``deliveries`` (a page has few)."""
    found: dict[uuid.UUID, WebhookEndpoint] = {}
    for endpoint_id in dict.fromkeys(d.endpoint_id for d in deliveries):
        found[endpoint_id] = await webhooks.get_endpoint(session, endpoint_id)
    return found


def row_context(delivery: WebhookDelivery, endpoint: WebhookEndpoint | None) -> dict[str, object]:
    return {
        "d": delivery,
        "endpoint": endpoint,
        "workflow_id": actions.workflow_id(delivery.id),
        "replayable": delivery.status in CLOSED,
    }


@router.get("/webhooks")
async def webhooks_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    event_type: str | None = None,
    endpoint_id: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        status=status or None,
        event_type=text_filter(event_type),
        endpoint_id=text_filter(endpoint_id),
        id=text_filter(id),
    )
    context = list_context(
        "webhooks",
        filters,
        after,
        statuses=[s.value for s in DeliveryStatus],
        dead=DEAD,
    )
    status_code = 200
    try:
        check_text(event_type=filters.event_type)
        if filters.status and filters.status not in {s.value for s in DeliveryStatus}:
            raise ValidationError(f"{filters.status!r} is not a delivery status", param="status")
        endpoint = parse_id(filters.endpoint_id, "an endpoint")
        delivery_id = parse_id(filters.id, "a webhook delivery", prefix="webhook-delivery-")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found: list[WebhookDelivery]
        if delivery_id is not None:
            try:
                found = [await webhooks.get_delivery(session, delivery_id)]
            except NotFound:
                found = []
        else:
            last = await webhooks.get_delivery(session, after) if after else None
            found = await webhooks.list_deliveries(
                session,
                limit=PAGE_SIZE + 1,
                after=last,
                endpoint_id=endpoint,
                status=DeliveryStatus(filters.status) if filters.status else None,
                event_type=filters.event_type,
            )
        rows = found[:PAGE_SIZE]
        endpoints = await _endpoints(session, rows)
        context["rows"] = [row_context(d, endpoints.get(d.endpoint_id)) for d in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/webhooks{filters.query(after=str(rows[-1].id))}"
    template = (
        "webhooks/_results.html" if htmx_target(request) == "results" else "webhooks/page.html"
    )
    return render(request, template, context, active="webhooks", status=status_code)


@router.get("/webhooks/{delivery_id}")
async def delivery_page(
    request: Request, delivery_id: uuid.UUID, session: Session, _: ConsoleUser
) -> HTMLResponse:
    """The delivery, the log of its attempts and what it sends."""
    delivery = await webhooks.get_delivery(session, delivery_id)
    endpoint = await webhooks.get_endpoint(session, delivery.endpoint_id)
    context = {
        "r": row_context(delivery, endpoint),
        "attempts": await webhooks.attempts(session, delivery_id),
    }
    return render(request, "webhooks/detail.html", context, active="webhooks")


@router.post("/webhooks/{delivery_id}/replay")
async def replay(
    request: Request, delivery_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    replayed = await actions.replay_delivery(session, delivery_id, actor=actor)
    original = await webhooks.get_delivery(session, delivery_id)
    endpoint = await webhooks.get_endpoint(session, original.endpoint_id)
    message = (
        f"Replay queued as delivery {replayed.id} ({actions.workflow_id(replayed.id)}): "
        "it is sent within a few seconds, with the same webhook-id."
    )
    if htmx_target(request) == "delivery":  # the delivery's own page
        main = render(request, "webhooks/_summary.html", {"r": row_context(original, endpoint)})
    else:
        fresh = render(
            request,
            "webhooks/_row.html",
            {"r": row_context(replayed, endpoint), "fresh": True},
        )
        row = render(request, "webhooks/_row.html", {"r": row_context(original, endpoint)})
        # The replay's row goes on top of the table, the original's row is swapped.
        main = HTMLResponse(
            bytes(row.body)
            + b'<template><tbody hx-swap-oob="afterbegin:#deliveries">'
            + bytes(fresh.body)
            + b"</tbody></template>"
        )
    return with_flash(request, main, message)

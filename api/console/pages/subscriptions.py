"""Subscriptions: filters (status, customer, plan), search by id, past-due and unpaid ones
highlighted with their dunning state (the overdue invoice, its failed charges, the next
retry and the last decline code), and *Retry payment* through ``api.actions.subscriptions``,
the API's own path (the ``retry_payment`` signal to ``subscription-{id}``)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import subscriptions as actions
from api.console.auth import ConsoleAction, ConsoleUser
from api.console.inputs import check_text
from api.console.web import (
    PAGE_SIZE,
    PageFilters,
    console_router,
    field,
    form_fields,
    htmx_target,
    list_context,
    parse_id,
    render,
    settings_of,
    text_filter,
    with_flash,
)
from api.deps import Session
from domain.errors import NotFound, ValidationError
from domain.subscriptions import RETRYABLE, AttemptStatus, SubscriptionStatus
from models.subscriptions import Invoice, Plan, Subscription
from services import invoices, plans, subscriptions

router = console_router()

WATCH = 30  # see pages/payouts.py
DUNNING = frozenset(status.value for status in RETRYABLE)


@dataclass
class Filters(PageFilters):
    status: str | None = None
    customer_id: str | None = None
    plan_id: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Dunning:
    """Where chasing a subscription's overdue invoice stands."""

    invoice: Invoice
    attempts: int
    next_retry: datetime | None
    decline_code: str | None
    failure_message: str | None
    failed_at: datetime | None


async def dunning(session: AsyncSession, subscription: Subscription) -> Dunning | None:
    """The dunning state of a past-due or unpaid subscription (None otherwise)."""
    if subscription.status not in DUNNING:
        return None
    invoice = await invoices.oldest_open(session, subscription.id)
    if invoice is None:
        return None
    failed = [
        attempt
        for attempt in await invoices.attempts_of(session, invoice.id)
        if attempt.status == AttemptStatus.FAILED.value
    ]
    last = failed[-1] if failed else None
    return Dunning(
        invoice=invoice,
        attempts=invoice.attempt_count,
        next_retry=invoice.next_payment_attempt,
        decline_code=(last.decline_code or last.failure_code) if last else None,
        failure_message=last.failure_message if last else None,
        failed_at=last.finished_at if last else None,
    )


async def row_context(
    session: AsyncSession,
    subscription: Subscription,
    watch: int = 0,
    plans_seen: dict[uuid.UUID, Plan] | None = None,
) -> dict[str, object]:
    seen = plans_seen if plans_seen is not None else {}
    if subscription.plan_id not in seen:
        seen[subscription.plan_id] = await plans.get(session, subscription.plan_id)
    return {
        "s": subscription,
        "plan": seen[subscription.plan_id],
        "workflow_id": actions.workflow_id(subscription.id),
        "dunning": await dunning(session, subscription),
        "retryable": subscription.status in DUNNING,
        "watch": watch if subscription.status in DUNNING else 0,
    }


@router.get("/subscriptions")
async def subscriptions_page(
    request: Request,
    session: Session,
    _: ConsoleUser,
    status: str | None = None,
    customer_id: str | None = None,
    plan_id: str | None = None,
    id: str | None = None,
    after: uuid.UUID | None = None,
) -> HTMLResponse:
    filters = Filters(
        status=status or None,
        customer_id=text_filter(customer_id),
        plan_id=text_filter(plan_id),
        id=text_filter(id),
    )
    context = list_context(
        "subscriptions",
        filters,
        after,
        statuses=[s.value for s in SubscriptionStatus],
        dunning_statuses=sorted(DUNNING),
    )
    status_code = 200
    try:
        check_text(customer_id=filters.customer_id)
        if filters.status and filters.status not in {s.value for s in SubscriptionStatus}:
            raise ValidationError(
                f"{filters.status!r} is not a subscription status", param="status"
            )
        plan = parse_id(filters.plan_id, "a plan")
        subscription_id = parse_id(filters.id, "a subscription", prefix="subscription-")
    except ValidationError as exc:
        context["problem"] = exc.message
        status_code = 400
    else:
        found: list[Subscription]
        if subscription_id is not None:
            try:
                found = [await subscriptions.get(session, subscription_id)]
            except NotFound:
                found = []
        else:
            last = await subscriptions.get(session, after) if after else None
            found = await subscriptions.list_subscriptions(
                session,
                customer_id=filters.customer_id,
                status=SubscriptionStatus(filters.status) if filters.status else None,
                plan_id=plan,
                after=last,
                limit=PAGE_SIZE + 1,
            )
        rows = found[:PAGE_SIZE]
        seen: dict[uuid.UUID, Plan] = {}
        context["rows"] = [await row_context(session, s, plans_seen=seen) for s in rows]
        if len(found) > PAGE_SIZE:
            context["next_url"] = f"/admin/subscriptions{filters.query(after=str(rows[-1].id))}"
    template = (
        "subscriptions/_results.html"
        if htmx_target(request) == "results"
        else "subscriptions/page.html"
    )
    return render(request, template, context, active="subscriptions", status=status_code)


@router.get("/subscriptions/{subscription_id}/row")
async def subscription_row(
    request: Request, subscription_id: uuid.UUID, session: Session, _: ConsoleUser, watch: int = 0
) -> HTMLResponse:
    """One row as it is now (what a row watching for its workflow re-reads)."""
    subscription = await subscriptions.get(session, subscription_id)
    context = await row_context(session, subscription, max(min(watch, WATCH), 0))
    return render(request, "subscriptions/_row.html", {"r": context})


@router.post("/subscriptions/{subscription_id}/retry-payment")
async def retry_payment(
    request: Request, subscription_id: uuid.UUID, session: Session, actor: ConsoleAction
) -> HTMLResponse:
    default = f"retried in the admin console by {actor.id}"
    reason = (field(await form_fields(request), "reason") or default)[:200]
    subscription = await actions.retry_payment(
        request,
        session,
        subscription_id,
        reason=reason,
        actor=actor,
        settings=settings_of(request),
    )
    row = render(
        request, "subscriptions/_row.html", {"r": await row_context(session, subscription, WATCH)}
    )
    message = (
        f"Retry payment sent to {actions.workflow_id(subscription.id)}: "
        "it charges the overdue invoice now."
    )
    return with_flash(request, row, message)

"""Subscriptions: create (the workflow ``subscription-{id}`` then runs the trial, bills each
period and chases failed charges), read and look up, and the operations ``cancel``,
``pause``, ``resume``, ``renew``, ``change-plan`` and ``retry-payment``. An operation is
checked against the subscription's rules first, so a refused one is a 4xx and nothing is
sent, then signalled to the workflow, which alone changes the row: the answer is a 202 with
the subscription as it is now and the operation pending. Customers see and operate their
own subscriptions (another's is a 404); admins any."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import subscriptions as actions
from api.actions.subscriptions import subscription_workflow, visible, workflow_id
from api.customers import ADMIN_ROLES, acting_for, check_customer
from api.deps import Admin, CurrentActor, Session, get_settings
from api.fields import Party
from api.pagination import Page, PageParams, PageQuery, paginate, row_cursor
from api.workflow_calls import signal, signal_after_commit, start_after_commit
from domain.actors import Actor, Role
from domain.subscriptions import (
    LIVE,
    PAUSABLE,
    RENEWABLE,
    RESUMABLE,
    SubscriptionStatus,
    check_subscription_status,
)
from models.subscriptions import Subscription
from services import payment_methods, plans, subscriptions
from settings import Settings
from workflows.types import (
    CancelSubscription,
    ChangePlan,
    PauseSubscription,
    RenewSubscription,
    ResumeSubscription,
    RetryPayment,
)

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

AppSettings = Annotated[Settings, Depends(get_settings)]
Reference = Annotated[str, Path(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]
Before = Annotated[
    AwareDatetime | None, Query(description="Up to this instant; default: a day from now")
]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Party | None = Field(None, description="Defaults to the calling customer")
    plan_id: uuid.UUID
    payment_method_id: uuid.UUID | None = Field(
        None, description="Default: the customer's default method when each charge is made"
    )
    trial_days: int | None = Field(None, ge=0, le=730, description="Default: the plan's")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    object: str = "subscription"
    customer_id: str
    plan_id: uuid.UUID
    payment_method_id: uuid.UUID | None
    status: SubscriptionStatus
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    cancel_reason: str | None
    credit_balance: int
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    workflow_id: str
    pending_operation: str | None = Field(
        None, description="The operation just sent to the workflow, not yet applied"
    )


def subscription_out(
    subscription: Subscription, pending_operation: str | None = None
) -> SubscriptionOut:
    return SubscriptionOut(
        id=subscription.id,
        customer_id=subscription.customer_id,
        plan_id=subscription.plan_id,
        payment_method_id=subscription.payment_method_id,
        status=SubscriptionStatus(subscription.status),
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        trial_end=subscription.trial_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        canceled_at=subscription.canceled_at,
        cancel_reason=subscription.cancel_reason,
        credit_balance=subscription.credit_balance,
        metadata=subscription.metadata_,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        workflow_id=workflow_id(subscription.id),
        pending_operation=pending_operation,
    )


def retry_dunning_after_commit(
    request: Request, subscription_ids: list[uuid.UUID], reason: str, actor: Actor
) -> None:
    """Once committed, ask each subscription waiting on a failed payment to charge again now
    (a new payment method); best effort: the dunning schedule retries anyway."""
    settings: Settings = request.app.state.settings
    for subscription_id in subscription_ids:
        signal_after_commit(
            request,
            subscription_workflow(subscription_id, settings),
            "retry_payment",
            RetryPayment(reason=reason, by=actor.id),
        )


def may_see(actor: Actor, customer_id: str) -> bool:
    return actor.role in ADMIN_ROLES or (actor.role is Role.CUSTOMER and actor.id == customer_id)


@router.post("", status_code=201)
async def create_subscription(
    body: SubscriptionIn,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> SubscriptionOut:
    """Subscribe the customer to an active plan, then start its workflow. Without a trial
    the first period is charged at once, so a payment method is needed (the one given, or
    the customer's default): 400 ``payment_method_required`` otherwise."""
    customer_id = acting_for(actor, body.customer_id)
    plan = await plans.get(session, body.plan_id)
    method = None
    if body.payment_method_id is not None:
        method = await payment_methods.usable(session, body.payment_method_id, customer_id)
    subscription = await subscriptions.create_subscription(
        session,
        customer_id=customer_id,
        plan=plan,
        at=datetime.now(UTC),
        actor=actor,
        payment_method=method,
        trial_days=body.trial_days,
        metadata=body.metadata,
    )
    start_after_commit(request, subscription_workflow(subscription.id, settings))
    return subscription_out(subscription)


async def _page(
    session: AsyncSession,
    actor: Actor,
    params: PageParams,
    *,
    customer_id: str | None = None,
    status: SubscriptionStatus | None = None,
    plan_id: uuid.UUID | None = None,
) -> Page[SubscriptionOut]:
    """A page of subscriptions; a customer sees only its own whatever it asks for."""
    if actor.role not in ADMIN_ROLES:
        check_customer(actor, customer_id or actor.id)
        customer_id = actor.id
    after = await row_cursor(
        params.starting_after,
        lambda cursor: subscriptions.get(session, cursor),
        lambda row: may_see(actor, row.customer_id),
    )
    rows = await subscriptions.list_subscriptions(
        session,
        customer_id=customer_id,
        status=status,
        plan_id=plan_id,
        after=after,
        limit=params.limit + 1,
    )
    return paginate(rows, params.limit, subscription_out, lambda item: item.id)


@router.get("")
async def list_subscriptions(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    status: SubscriptionStatus | None = None,
    plan_id: uuid.UUID | None = None,
) -> Page[SubscriptionOut]:
    """Newest first, filtered; customers see their own subscriptions only."""
    return await _page(
        session, actor, params, customer_id=customer_id, status=status, plan_id=plan_id
    )


@router.get("/customer/{customer_id}")
async def customer_subscriptions(
    customer_id: Reference, session: Session, actor: CurrentActor, params: PageQuery
) -> Page[SubscriptionOut]:
    check_customer(actor, customer_id)
    return await _page(session, actor, params, customer_id=customer_id)


@router.get("/status/{status}")
async def subscriptions_by_status(
    status: SubscriptionStatus, session: Session, actor: Admin, params: PageQuery
) -> Page[SubscriptionOut]:
    return await _page(session, actor, params, status=status)


def _before(before: datetime | None) -> datetime:
    return before if before is not None else datetime.now(UTC) + timedelta(days=1)


@router.get("/renewal/due")
async def due_for_renewal(
    session: Session, actor: Admin, params: PageQuery, before: Before = None
) -> Page[SubscriptionOut]:
    """Active and past-due subscriptions whose period ends by ``before`` and that renew then
    (those cancelling at the period's end are left out). The workflows renew them on their
    own timers: this is a view, not a to-do list."""
    after = await row_cursor(
        params.starting_after, lambda cursor: subscriptions.get(session, cursor), lambda _: True
    )
    rows = await subscriptions.due_for_renewal(
        session, before=_before(before), after=after, limit=params.limit + 1
    )
    return paginate(rows, params.limit, subscription_out, lambda item: item.id)


@router.get("/trial/conversion-due")
async def trials_ending(
    session: Session, actor: Admin, params: PageQuery, before: Before = None
) -> Page[SubscriptionOut]:
    """Trials ending by ``before``: each converts (charged) or, with no payment method to
    charge, is canceled, by its workflow at the trial's end."""
    after = await row_cursor(
        params.starting_after, lambda cursor: subscriptions.get(session, cursor), lambda _: True
    )
    rows = await subscriptions.trials_ending(
        session, before=_before(before), after=after, limit=params.limit + 1
    )
    return paginate(rows, params.limit, subscription_out, lambda item: item.id)


@router.get("/{subscription_id}")
async def get_subscription(
    subscription_id: uuid.UUID, session: Session, actor: CurrentActor
) -> SubscriptionOut:
    return subscription_out(await visible(session, subscription_id, actor))


async def _operate(
    request: Request,
    subscription: Subscription,
    settings: Settings,
    name: str,
    arg: BaseModel,
) -> SubscriptionOut:
    await signal(request, subscription_workflow(subscription.id, settings), name, arg)
    return subscription_out(subscription, pending_operation=name)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at_period_end: bool = Field(
        False, description="Run to the end of the paid period instead of ending now"
    )
    reason: Reason | None = None


@router.post("/{subscription_id}/cancel", status_code=202)
async def cancel_subscription(
    subscription_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
    body: CancelIn | None = None,
) -> SubscriptionOut:
    """Now (its drafts deleted, what it still owes written off) or at the end of the
    current period; 409 if already canceled."""
    body = body or CancelIn()
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), LIVE, "cancel")
    reason = body.reason.strip() if body.reason else f"requested by {actor.role.value}"
    cancel = CancelSubscription(at_period_end=body.at_period_end, reason=reason, by=actor.id)
    return await _operate(request, subscription, settings, "cancel", cancel)


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


@router.post("/{subscription_id}/pause", status_code=202)
async def pause_subscription(
    subscription_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
    body: PauseIn | None = None,
) -> SubscriptionOut:
    """No invoices while paused (periods that end are skipped). Only an active subscription
    pauses: a trial, a past-due or a canceled one is a 409."""
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), PAUSABLE, "pause")
    reason = body.reason.strip() if body and body.reason else f"requested by {actor.role.value}"
    pause = PauseSubscription(reason=reason, by=actor.id)
    return await _operate(request, subscription, settings, "pause", pause)


@router.post("/{subscription_id}/resume", status_code=202)
async def resume_subscription(
    subscription_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> SubscriptionOut:
    """Active again; outside a period already billed a new period starts now and is billed
    at once. 409 unless paused."""
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), RESUMABLE, "resume")
    resume = ResumeSubscription(by=actor.id)
    return await _operate(request, subscription, settings, "resume", resume)


@router.post("/{subscription_id}/renew", status_code=202)
async def renew_subscription(
    subscription_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> SubscriptionOut:
    """End the current period now and bill a new one (the unused time of a billed period is
    credited on it); a trial ends now and converts. 409 unless trialing or active."""
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), RENEWABLE, "renew")
    renew = RenewSubscription(by=actor.id)
    return await _operate(request, subscription, settings, "renew_now", renew)


class ChangePlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID


@router.post("/{subscription_id}/change-plan", status_code=202)
async def change_plan(
    subscription_id: uuid.UUID,
    body: ChangePlanIn,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> SubscriptionOut:
    """Switch plan now; in a billed period the difference is prorated onto the next invoice
    (an upgrade charged, a downgrade credited). The new plan must be active, with the same
    currency and billing interval (400 ``plan_change_unsupported`` otherwise)."""
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), LIVE, "change the plan of")
    old = await plans.get(session, subscription.plan_id)
    new = await plans.get(session, body.plan_id)
    subscriptions.check_plan_change(old, new)
    change = ChangePlan(plan_id=new.id, by=actor.id)
    return await _operate(request, subscription, settings, "change_plan", change)


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")] | None = None


@router.post("/{subscription_id}/retry-payment", status_code=202)
async def retry_payment(
    subscription_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
    body: RetryIn | None = None,
) -> SubscriptionOut:
    """Charge the overdue invoice now instead of at the next dunning date. 409 unless the
    subscription is past due or unpaid."""
    subscription = await actions.retry_payment(
        request,
        session,
        subscription_id,
        reason=body.reason if body else None,
        actor=actor,
        settings=settings,
    )
    return subscription_out(subscription, pending_operation="retry_payment")

"""Charging a subscription's overdue invoice now instead of at the next dunning date:
checked against the subscription's status first (a 409 unless past due or unpaid, and
nothing is sent), then signalled (``retry_payment``) to ``subscription-{id}``, which alone
charges. Customers retry their own subscriptions (another's is a 404), admins any."""

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.customers import ADMIN_ROLES
from api.workflow_calls import WorkflowStart, signal
from domain.actors import Actor, Role
from domain.errors import NotFound, PermissionDenied
from domain.subscriptions import RETRYABLE, check_subscription_status
from models.subscriptions import Subscription
from services import subscriptions
from settings import Settings
from workflows.types import RetryPayment, SubscriptionInput


def workflow_id(subscription_id: uuid.UUID) -> str:
    return f"subscription-{subscription_id}"


def subscription_workflow(subscription_id: uuid.UUID, settings: Settings) -> WorkflowStart:
    """The dunning settings are fixed when the workflow starts (and carried across its
    continue-as-new runs)."""
    return WorkflowStart(
        workflow="Subscription",
        id=workflow_id(subscription_id),
        arg=SubscriptionInput(
            subscription_id=subscription_id,
            retry_days=list(settings.subscription_retry_days),
            dunning_outcome=settings.subscription_dunning_outcome.value,
            stripe_task_queue=settings.stripe_task_queue,
        ),
        task_queue=settings.task_queue,
    )


def check_visible(actor: Actor, customer_id: str, what: str) -> None:
    """Admins see everything, a customer its own; another customer's is missing (404), and
    other roles (drivers, vendors) are refused."""
    if actor.role in ADMIN_ROLES:
        return
    if actor.role is not Role.CUSTOMER:
        raise PermissionDenied("only customers and admins use subscriptions")
    if actor.id != customer_id:
        raise NotFound(f"no {what}", param="id")


async def visible(session: AsyncSession, subscription_id: uuid.UUID, actor: Actor) -> Subscription:
    subscription = await subscriptions.get(session, subscription_id)
    check_visible(actor, subscription.customer_id, f"subscription {subscription_id}")
    return subscription


async def retry_payment(
    request: Request,
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    reason: str | None,
    actor: Actor,
    settings: Settings,
) -> Subscription:
    """Returns the subscription as it is now (its workflow charges, then moves it)."""
    subscription = await visible(session, subscription_id, actor)
    check_subscription_status(subscriptions.status_of(subscription), RETRYABLE, "retry")
    reason = reason.strip() if reason and reason.strip() else f"requested by {actor.role.value}"
    retry = RetryPayment(reason=reason, by=actor.id)
    await signal(request, subscription_workflow(subscription.id, settings), "retry_payment", retry)
    return subscription

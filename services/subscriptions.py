"""Subscriptions: creation, the billing period and its anchor, and the changes of their life
as compare-and-set changes of the locked row. The subscription's workflow calls the changes
with the time on its own clock (``at``), so periods follow durable timers; the API creates,
reads, and signals the workflow."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import NotFound, ValidationError
from domain.subscriptions import (
    LIVE,
    PAUSABLE,
    RENEWABLE,
    RESUMABLE,
    DunningOutcome,
    Interval,
    SubscriptionStatus,
    check_subscription_status,
    period_boundary,
    proration,
)
from models.payments import PaymentMethod
from models.subscriptions import Invoice, InvoiceLine, Plan, Subscription
from services import outbox, payment_methods, plans
from services.locking import locked
from services.pagination import newest_first


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    return {
        "status": subscription.status,
        "plan_id": str(subscription.plan_id),
        "current_period_start": subscription.current_period_start.isoformat(),
        "current_period_end": subscription.current_period_end.isoformat(),
        "trial_end": subscription.trial_end.isoformat() if subscription.trial_end else None,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "credit_balance": subscription.credit_balance,
    }


async def changed(
    session: AsyncSession,
    subscription: Subscription,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="subscription",
        entity_id=subscription.id,
        action=action,
        actor=actor,
        before=before,
        after=subscription_view(subscription),
        announce=True,
        metadata=metadata,
        payload={"customer_id": subscription.customer_id},
    )


def _set_period(subscription: Subscription, plan: Plan, anchor: datetime, index: int) -> None:
    interval = Interval(plan.interval)
    subscription.billing_anchor = anchor
    subscription.period_index = index
    subscription.current_period_start = period_boundary(
        anchor, interval, plan.interval_count, index
    )
    subscription.current_period_end = period_boundary(
        anchor, interval, plan.interval_count, index + 1
    )


def _start(subscription: Subscription, plan: Plan, at: datetime) -> None:
    """A trial runs from ``at`` for its days; billing starts at its end, or at once."""
    if subscription.trial_days:
        trial_end = at + timedelta(days=subscription.trial_days)
        subscription.status = SubscriptionStatus.TRIALING.value
        subscription.trial_end = trial_end
        subscription.billing_anchor = trial_end
        subscription.period_index = 0
        subscription.current_period_start = at
        subscription.current_period_end = trial_end
    else:
        subscription.status = SubscriptionStatus.ACTIVE.value
        subscription.trial_end = None
        _set_period(subscription, plan, at, 0)


async def create_subscription(
    session: AsyncSession,
    *,
    customer_id: str,
    plan: Plan,
    at: datetime,
    actor: Actor,
    payment_method: PaymentMethod | None = None,
    trial_days: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Subscription:
    """A subscription to an active plan; without a trial it needs a payment method (the one
    given, or the customer's default) since its first period is charged at once."""
    if not plan.active:
        raise ValidationError(f"plan {plan.id} takes no new subscriptions", param="plan_id")
    days = plan.trial_days if trial_days is None else trial_days
    if days == 0 and payment_method is None:
        if await payment_methods.default_for(session, customer_id) is None:
            raise ValidationError(
                "A subscription without a trial needs a payment method: give"
                " payment_method_id or set a default one",
                code="payment_method_required",
                param="payment_method_id",
            )
    subscription = Subscription(
        id=uuid.uuid4(),
        customer_id=customer_id,
        plan_id=plan.id,
        payment_method_id=payment_method.id if payment_method else None,
        trial_days=days,
        cancel_at_period_end=False,
        credit_balance=0,
        metadata_=metadata or {},
    )
    _start(subscription, plan, at)
    session.add(subscription)
    await changed(session, subscription, "created", actor=actor, before=None)
    return subscription


async def get(
    session: AsyncSession, subscription_id: uuid.UUID, *, for_update: bool = False
) -> Subscription:
    query = select(Subscription).where(Subscription.id == subscription_id)
    subscription = await session.scalar(locked(query) if for_update else query)
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}", param="subscription_id")
    return subscription


async def _locked(
    session: AsyncSession, subscription_id: uuid.UUID
) -> tuple[Subscription, dict[str, Any]]:
    subscription = await get(session, subscription_id, for_update=True)
    return subscription, subscription_view(subscription)


def status_of(subscription: Subscription) -> SubscriptionStatus:
    return SubscriptionStatus(subscription.status)


async def begin(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Subscription:
    """The workflow's first step: the trial and the billing anchor start on its clock, once."""
    subscription, before = await _locked(session, subscription_id)
    if subscription.started_at is None:
        if status_of(subscription) in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE):
            _start(subscription, await plans.get(session, subscription.plan_id), at)
        subscription.started_at = at
        await changed(session, subscription, "started", actor=actor, before=before)
    return subscription


async def charge_method(session: AsyncSession, subscription: Subscription) -> PaymentMethod | None:
    """What a charge uses: the subscription's own method while usable, else the customer's
    default."""
    if subscription.payment_method_id is not None:
        method = await session.get(PaymentMethod, subscription.payment_method_id)
        if method is not None and method.status == "active":
            return method
    return await payment_methods.default_for(session, subscription.customer_id)


async def convert_trial(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Subscription:
    """At the trial's end: paid from the trial's end when there is a payment method to
    charge, cancelled otherwise."""
    subscription, before = await _locked(session, subscription_id)
    if status_of(subscription) is not SubscriptionStatus.TRIALING:
        return subscription
    trial_end = subscription.trial_end or at
    if subscription.cancel_at_period_end:
        _cancel(subscription, at, subscription.cancel_reason or "canceled at the trial's end")
        await changed(session, subscription, "canceled", actor=actor, before=before)
        return subscription
    if await charge_method(session, subscription) is None:
        _cancel(subscription, at, "the trial ended with no payment method")
        await changed(
            session,
            subscription,
            "canceled",
            actor=actor,
            before=before,
            metadata={"reason": "trial_ended_without_payment_method"},
        )
        return subscription
    subscription.status = SubscriptionStatus.ACTIVE.value
    _set_period(subscription, await plans.get(session, subscription.plan_id), min(trial_end, at), 0)
    await changed(session, subscription, "trial_converted", actor=actor, before=before)
    return subscription


async def advance_period(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Subscription:
    """The next period once the current one has ended (the workflow bills it). A paused
    subscription skips to the period that contains ``at``: no invoice for those."""
    subscription, before = await _locked(session, subscription_id)
    if at < subscription.current_period_end or status_of(subscription) not in LIVE:
        return subscription
    plan = await plans.get(session, subscription.plan_id)
    index = subscription.period_index + 1
    if status_of(subscription) is SubscriptionStatus.PAUSED:
        interval = Interval(plan.interval)
        while (
            period_boundary(subscription.billing_anchor, interval, plan.interval_count, index + 1)
            <= at
        ):
            index += 1
    skipped = (
        index
        - subscription.period_index
        - (0 if status_of(subscription) is SubscriptionStatus.PAUSED else 1)
    )
    _set_period(subscription, plan, subscription.billing_anchor, index)
    await changed(
        session,
        subscription,
        "period_advanced",
        actor=actor,
        before=before,
        metadata={"period_index": index, "periods_skipped": skipped},
    )
    return subscription


async def _drop_previews(session: AsyncSession, subscription: Subscription) -> None:
    """Drafts previewing periods of the old anchor (``generate_next``): the subscription was
    re-anchored, so those periods will never start."""
    await session.execute(
        delete(Invoice).where(
            Invoice.subscription_id == subscription.id,
            Invoice.kind == "cycle",
            Invoice.status == "draft",
        )
    )


def _cancel(subscription: Subscription, at: datetime, reason: str) -> None:
    subscription.status = SubscriptionStatus.CANCELED.value
    subscription.canceled_at = at
    subscription.cancel_reason = reason
    subscription.cancel_at_period_end = False


async def cancel(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    at: datetime,
    at_period_end: bool,
    reason: str,
    actor: Actor,
) -> Subscription:
    """Now: canceled, its drafts deleted and what it still owes written off (the caller
    does that through ``invoices``). At period end: it runs to the end of the paid period."""
    subscription, before = await _locked(session, subscription_id)
    check_subscription_status(status_of(subscription), LIVE, "cancel")
    if at_period_end:
        subscription.cancel_at_period_end = True
        subscription.cancel_reason = reason
        await changed(session, subscription, "cancel_scheduled", actor=actor, before=before)
        return subscription
    _cancel(subscription, at, reason)
    await changed(session, subscription, "canceled", actor=actor, before=before)
    return subscription


async def pause(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, reason: str, actor: Actor
) -> Subscription:
    subscription, before = await _locked(session, subscription_id)
    check_subscription_status(status_of(subscription), PAUSABLE, "pause")
    subscription.status = SubscriptionStatus.PAUSED.value
    subscription.paused_at = at
    await changed(
        session, subscription, "paused", actor=actor, before=before, metadata={"reason": reason}
    )
    return subscription


async def period_billed(session: AsyncSession, subscription: Subscription) -> bool:
    """Whether the current period has its invoice (finalized, whatever became of it)."""
    status = await session.scalar(
        select(Invoice.status).where(
            Invoice.subscription_id == subscription.id,
            Invoice.kind == "cycle",
            Invoice.period_start == subscription.current_period_start,
        )
    )
    return status is not None and status != "draft"


async def resume(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Subscription:
    """Active again. Inside a period already billed it carries on; otherwise a new period
    starts now and is billed at once (Stripe's ``billing_cycle_anchor=now``)."""
    subscription, before = await _locked(session, subscription_id)
    check_subscription_status(status_of(subscription), RESUMABLE, "resume")
    subscription.status = SubscriptionStatus.ACTIVE.value
    subscription.paused_at = None
    if not (at < subscription.current_period_end and await period_billed(session, subscription)):
        await _drop_previews(session, subscription)
        _set_period(subscription, await plans.get(session, subscription.plan_id), at, 0)
    await changed(session, subscription, "resumed", actor=actor, before=before)
    return subscription


def in_order(count: int) -> list[datetime]:
    """Creation times a microsecond apart for lines added together, so they are read back
    (by creation time) in the order given: ``now()`` is the same for the whole transaction."""
    first = datetime.now(UTC)
    return [first + timedelta(microseconds=index) for index in range(count)]


async def _prorate(
    session: AsyncSession,
    subscription: Subscription,
    *,
    old: Plan,
    new: Plan | None,
    at: datetime,
) -> None:
    """Pending lines for the next invoice: the unused time of ``old`` credited and, for a
    plan change, the rest of the period on ``new`` charged. Only a billed period is
    prorated: nothing was charged for one that was not."""
    if not await period_billed(session, subscription):
        return
    start, end = subscription.current_period_start, subscription.current_period_end
    parts = proration(old.amount, new.amount if new else 0, start, end, at)
    lines = [(f"Unused time on {old.name} after {at:%Y-%m-%d %H:%M} UTC", -parts.credit, old)]
    if new is not None:
        lines.append(
            (f"Remaining time on {new.name} from {at:%Y-%m-%d %H:%M} UTC", parts.charge, new)
        )
    lines = [line for line in lines if line[1]]
    session.add_all(
        InvoiceLine(
            id=uuid.uuid4(),
            subscription_id=subscription.id,
            kind="proration",
            description=description,
            amount=amount,
            currency=old.currency,
            plan_id=plan.id,
            period_start=at,
            period_end=end,
            created_at=created_at,
        )
        for created_at, (description, amount, plan) in zip(in_order(len(lines)), lines, strict=True)
    )


def check_plan_change(old: Plan, new: Plan) -> None:
    if new.id == old.id:
        raise ValidationError("The subscription is already on this plan", param="plan_id")
    if not new.active:
        raise ValidationError(f"plan {new.id} takes no new subscriptions", param="plan_id")
    if (new.currency, new.interval, new.interval_count) != (
        old.currency,
        old.interval,
        old.interval_count,
    ):
        raise ValidationError(
            "A plan change keeps the currency and the billing interval; cancel and subscribe"
            " to change them",
            code="plan_change_unsupported",
            param="plan_id",
        )


async def change_plan(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    plan_id: uuid.UUID,
    *,
    at: datetime,
    actor: Actor,
) -> Subscription:
    """Switches plan now; in a billed period the difference is prorated onto the next
    invoice (an upgrade charged, a downgrade credited)."""
    subscription, before = await _locked(session, subscription_id)
    check_subscription_status(status_of(subscription), LIVE, "change the plan of")
    old = await plans.get(session, subscription.plan_id)
    new = await plans.get(session, plan_id)
    check_plan_change(old, new)
    if status_of(subscription) is not SubscriptionStatus.TRIALING:
        await _prorate(session, subscription, old=old, new=new, at=at)
    subscription.plan_id = new.id
    await changed(
        session,
        subscription,
        "plan_changed",
        actor=actor,
        before=before,
        metadata={"from_plan": str(old.id), "to_plan": str(new.id)},
    )
    return subscription


async def renew_now(
    session: AsyncSession, subscription_id: uuid.UUID, *, at: datetime, actor: Actor
) -> Subscription:
    """Ends the current period now and starts a new one, billed at once; the unused time of
    a billed period is credited on it. A trial ends now and converts."""
    subscription, before = await _locked(session, subscription_id)
    check_subscription_status(status_of(subscription), RENEWABLE, "renew")
    await _drop_previews(session, subscription)
    if status_of(subscription) is SubscriptionStatus.TRIALING:
        subscription.trial_end = at
        await changed(session, subscription, "trial_ended_early", actor=actor, before=before)
        return subscription
    plan = await plans.get(session, subscription.plan_id)
    await _prorate(session, subscription, old=plan, new=None, at=at)
    _set_period(subscription, plan, at, 0)
    await changed(session, subscription, "renewed", actor=actor, before=before)
    return subscription


async def mark_past_due(session: AsyncSession, subscription: Subscription, *, actor: Actor) -> None:
    """The first failed charge of an invoice; the caller holds the row."""
    if status_of(subscription) is SubscriptionStatus.ACTIVE:
        before = subscription_view(subscription)
        subscription.status = SubscriptionStatus.PAST_DUE.value
        await changed(session, subscription, "past_due", actor=actor, before=before)


async def mark_settled(session: AsyncSession, subscription: Subscription, *, actor: Actor) -> None:
    """Nothing overdue any more: a past_due or unpaid subscription is active again."""
    if status_of(subscription) in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
        before = subscription_view(subscription)
        subscription.status = SubscriptionStatus.ACTIVE.value
        await changed(session, subscription, "reactivated", actor=actor, before=before)


async def dunning_exhausted(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    outcome: DunningOutcome,
    *,
    at: datetime,
    actor: Actor,
) -> Subscription:
    """The last retry failed: unpaid (no more charges until a retry or a payment) or
    canceled."""
    subscription, before = await _locked(session, subscription_id)
    if status_of(subscription) is not SubscriptionStatus.PAST_DUE:
        return subscription
    if outcome is DunningOutcome.CANCELED:
        _cancel(subscription, at, "the payment failed after every retry")
        await changed(session, subscription, "canceled", actor=actor, before=before)
    else:
        subscription.status = SubscriptionStatus.UNPAID.value
        await changed(session, subscription, "unpaid", actor=actor, before=before)
    return subscription


async def list_subscriptions(
    session: AsyncSession,
    *,
    customer_id: str | None = None,
    status: SubscriptionStatus | None = None,
    plan_id: uuid.UUID | None = None,
    after: Subscription | None,
    limit: int,
) -> list[Subscription]:
    query = select(Subscription)
    if customer_id is not None:
        query = query.where(Subscription.customer_id == customer_id)
    if status is not None:
        query = query.where(Subscription.status == status.value)
    if plan_id is not None:
        query = query.where(Subscription.plan_id == plan_id)
    return list(await session.scalars(newest_first(query, Subscription, after).limit(limit)))


async def due_for_renewal(
    session: AsyncSession, *, before: datetime, after: Subscription | None, limit: int
) -> list[Subscription]:
    """Live, billing subscriptions whose period ends by ``before`` (they renew then)."""
    query = select(Subscription).where(
        Subscription.status.in_(("active", "past_due")),
        Subscription.cancel_at_period_end.is_(False),
        Subscription.current_period_end <= before,
    )
    return list(await session.scalars(newest_first(query, Subscription, after).limit(limit)))


async def trials_ending(
    session: AsyncSession, *, before: datetime, after: Subscription | None, limit: int
) -> list[Subscription]:
    query = select(Subscription).where(
        Subscription.status == "trialing", Subscription.trial_end <= before
    )
    return list(await session.scalars(newest_first(query, Subscription, after).limit(limit)))


async def in_dunning(session: AsyncSession, customer_id: str) -> list[uuid.UUID]:
    """A customer's subscriptions waiting on a failed payment: a new payment method retries
    them at once."""
    rows = await session.scalars(
        select(Subscription.id).where(
            Subscription.customer_id == customer_id,
            Subscription.status.in_(("past_due", "unpaid")),
        )
    )
    return list(rows)


async def live(session: AsyncSession) -> list[uuid.UUID]:
    """Subscriptions not canceled: each must have its workflow running (the safety net)."""
    rows = await session.scalars(
        select(Subscription.id).where(Subscription.status != SubscriptionStatus.CANCELED.value)
    )
    return list(rows)

"""Subscriptions and invoices, with no I/O: statuses as Stripe names them, billing periods
counted from an anchor, proration of a plan change, an invoice's totals against the
customer's credit, and the dunning schedule."""

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.errors import Conflict, ValidationError


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    PAUSED = "paused"
    CANCELED = "canceled"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"


class InvoiceKind(StrEnum):
    CYCLE = "cycle"  # one billing period of the subscription: at most one per period
    ONE_OFF = "one_off"  # charges outside the cycle (a setup fee, an overage)


class AttemptStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DunningOutcome(StrEnum):
    """What an exhausted dunning schedule does to the subscription."""

    UNPAID = "unpaid"
    CANCELED = "canceled"


# A trial is not paused: it is cancelled or ends.
PAUSABLE = frozenset({SubscriptionStatus.ACTIVE})
RESUMABLE = frozenset({SubscriptionStatus.PAUSED})
RENEWABLE = frozenset({SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE})
RETRYABLE = frozenset({SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID})
LIVE = frozenset(SubscriptionStatus) - {SubscriptionStatus.CANCELED}


def check_subscription_status(
    status: SubscriptionStatus, allowed: frozenset[SubscriptionStatus], action: str
) -> None:
    if status not in allowed:
        raise Conflict(
            f"Cannot {action} a {status.value} subscription",
            code="subscription_status",
            status=status.value,
        )


def _add_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` plus whole months, the day clamped to the month's length: an anchor on the
    31st bills on Feb 28 (or 29) and back on Mar 31."""
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def period_boundary(anchor: datetime, interval: Interval, count: int, index: int) -> datetime:
    """The start of period ``index`` (0 = the anchor's) for a plan billed every ``count``
    ``interval``s. Counted from the anchor, never from the previous boundary, so clamped
    month ends do not drift."""
    steps = count * index
    if interval is Interval.DAY:
        return anchor + timedelta(days=steps)
    if interval is Interval.WEEK:
        return anchor + timedelta(weeks=steps)
    if interval is Interval.MONTH:
        return _add_months(anchor, steps)
    return _add_months(anchor, 12 * steps)


def prorate(amount: int, period_start: datetime, period_end: datetime, at: datetime) -> int:
    """The part of ``amount`` for the rest of the period from ``at``, rounded half up to the
    minor unit (exact integers: the unused seconds over the period's seconds)."""
    total = int((period_end - period_start).total_seconds())
    if total <= 0:
        raise ValidationError("A billing period has a positive length", param="period")
    left = min(max(int((period_end - at).total_seconds()), 0), total)
    return (2 * amount * left + total) // (2 * total)


@dataclass(frozen=True)
class Proration:
    """A plan change inside a paid period: the unused time of the old plan is credited and
    the rest of the period on the new plan is charged, both on the next invoice."""

    credit: int
    charge: int


def proration(
    old_amount: int, new_amount: int, period_start: datetime, period_end: datetime, at: datetime
) -> Proration:
    return Proration(
        credit=prorate(old_amount, period_start, period_end, at),
        charge=prorate(new_amount, period_start, period_end, at),
    )


@dataclass(frozen=True)
class InvoiceTotals:
    """``subtotal`` is the sum of the lines (a credit line is negative); the customer's credit
    balance pays what it can of a positive subtotal (``credit_applied``), and a negative
    subtotal becomes credit for later invoices (``credit_added``). ``total`` is charged."""

    subtotal: int
    credit_applied: int
    credit_added: int
    total: int


def invoice_totals(line_amounts: Sequence[int], credit_balance: int) -> InvoiceTotals:
    if credit_balance < 0:
        raise ValidationError("A credit balance is not negative", param="credit_balance")
    subtotal = sum(line_amounts)
    applied = min(credit_balance, max(subtotal, 0))
    return InvoiceTotals(
        subtotal=subtotal,
        credit_applied=applied,
        credit_added=max(-subtotal, 0),
        total=max(subtotal, 0) - applied,
    )


DEFAULT_RETRY_DAYS = (1, 3, 5, 7)


def check_retry_days(days: Sequence[int]) -> tuple[int, ...]:
    """A dunning schedule: days after the first failed attempt, strictly increasing."""
    schedule = tuple(days)
    if any(day <= 0 for day in schedule) or list(schedule) != sorted(set(schedule)):
        raise ValidationError(
            "Dunning retry days must be positive and strictly increasing", param="retry_days"
        )
    return schedule


def next_retry_at(
    first_failure_at: datetime, retry_days: Sequence[int], failed_attempts: int
) -> datetime | None:
    """When to try again after ``failed_attempts`` failures (the first charge included), or
    None when the schedule is exhausted. Retry ``n`` is ``retry_days[n-1]`` days after the
    first failure: the default schedule retries on days 1, 3, 5 and 7."""
    if failed_attempts < 1:
        raise ValidationError("No attempt has failed yet", param="failed_attempts")
    if failed_attempts > len(retry_days):
        return None
    return first_failure_at + timedelta(days=retry_days[failed_attempts - 1])

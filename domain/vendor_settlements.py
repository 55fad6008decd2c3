"""Vendor settlements, with no I/O: their statuses, the period they cover, the hold, and the
figures of one payment's line for a vendor.

A settlement covers the vendor's split lines of payments completed (captured) in the
half-open period ``[period_start, period_end)``, in one currency. Per line:

- ``captured``: what the capture credited to the vendor (``payee:{vendor}``), already net
  of commission;
- ``commission``: the line's commission in proportion to what was captured of the payment
  (``commission * amount_captured / amount``, rounded half up);
- ``gross_captured = captured + commission``;
- ``refunded``: what completed refunds took back from the vendor's line;
- ``net = captured - refunded`` (never negative: a line's refunds never exceed its capture),
  so ``net = gross_captured - commission - refunded``.

A settlement waits ``hold_days`` after its period (refunds and disputes arrive meanwhile;
its figures follow them until it is processed), is then ``due``, then ``processing`` once
its transfer is requested; the router that sends the transfer makes it ``paid`` or
``failed``. A settlement with nothing to pay is ``paid`` at once when processed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.errors import Conflict, ValidationError

MAX_PERIOD = timedelta(days=366)
MAX_HOLD_DAYS = 365


class SettlementStatus(StrEnum):
    PENDING_HOLD = "pending_hold"  # computed; waits until ``hold_until``
    DUE = "due"  # the hold passed: ready to be processed
    PROCESSING = "processing"  # its transfer is requested; the router sends it
    PAID = "paid"  # set by the router (or at once when there was nothing to pay)
    FAILED = "failed"  # set by the router


# Before processing, the figures follow the payments' refunds.
SETTLEMENT_OPEN = frozenset({SettlementStatus.PENDING_HOLD, SettlementStatus.DUE})
# Handed over to be paid (or paid): counted as settled in a vendor's summary.
SETTLEMENT_SETTLED = frozenset({SettlementStatus.PROCESSING, SettlementStatus.PAID})


class TransferStatus(StrEnum):
    """A transfer request's life; only ``requested`` is set here, the rest by the router."""

    REQUESTED = "requested"  # waits for the router to choose a rail
    ROUTED = "routed"  # a rail is chosen; the transfer is being sent
    PAID = "paid"
    FAILED = "failed"


def _aware(value: datetime, param: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{param} needs a time zone (e.g. ...Z)", param=param)
    return value


def check_period(period_start: datetime, period_end: datetime, now: datetime) -> None:
    """A period is aware, ordered, at most ``MAX_PERIOD`` long and over by ``now``: a
    settlement of a period still running would miss what is captured after it."""
    _aware(period_start, "period_start")
    _aware(period_end, "period_end")
    if period_end <= period_start:
        raise ValidationError("period_end comes after period_start", param="period_end")
    if period_end - period_start > MAX_PERIOD:
        raise ValidationError(
            f"a settlement period is at most {MAX_PERIOD.days} days", param="period_end"
        )
    if period_end > now:
        raise ValidationError(
            "the period has not ended yet", code="period_not_ended", param="period_end"
        )


def hold_until(period_end: datetime, hold_days: int) -> datetime:
    if isinstance(hold_days, bool) or not isinstance(hold_days, int):
        raise ValidationError("hold_days is a whole number of days", param="hold_days")
    if not 0 <= hold_days <= MAX_HOLD_DAYS:
        raise ValidationError(f"hold_days is 0 to {MAX_HOLD_DAYS}", param="hold_days")
    return period_end + timedelta(days=hold_days)


def captured_commission(commission: int, amount_captured: int, amount: int) -> int:
    """A line's commission in proportion to what was captured of the payment, half up."""
    if amount <= 0:
        return 0
    return (2 * commission * amount_captured + amount) // (2 * amount)


@dataclass(frozen=True)
class LineFigures:
    gross_captured: int
    commission: int
    captured: int
    refunded: int

    @property
    def net(self) -> int:
        return self.captured - self.refunded


def line_figures(
    *,
    commission: int,
    captured: int,
    refunded: int,
    payment_amount: int,
    payment_captured: int,
) -> LineFigures:
    """The figures of a vendor's line (see the module)."""
    taken = captured_commission(commission, payment_captured, payment_amount)
    return LineFigures(
        gross_captured=captured + taken, commission=taken, captured=captured, refunded=refunded
    )


def check_processable(status: SettlementStatus, hold_until: datetime, now: datetime) -> None:
    """Only a settlement whose hold has passed, not yet processed, may be processed."""
    if status not in SETTLEMENT_OPEN:
        raise Conflict(
            f"cannot process a settlement that is {status.value}",
            code="settlement_not_due",
            status=status.value,
        )
    if now < hold_until:
        raise Conflict(
            f"the settlement is on hold until {hold_until.isoformat()}",
            code="settlement_not_due",
            status=status.value,
        )

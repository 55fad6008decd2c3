"""Payments, payment methods and refunds: their statuses, the rules of their transitions, and
the integer arithmetic that splits a payment between vendors and the platform."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import Conflict, ValidationError

BPS = 10_000


class PaymentStatus(StrEnum):
    PENDING = "pending"  # created; the fraud check runs
    IN_REVIEW = "in_review"  # MEDIUM risk: waits for a reviewer
    AUTHORIZING = "authorizing"  # the payment intent is being confirmed at Stripe
    AUTHORIZED = "authorized"  # held on the card, waits for capture
    CAPTURING = "capturing"  # the capture is under way at Stripe
    COMPLETED = "completed"  # captured, in the ledger
    FAILED = "failed"  # refused (fraud, declined card) or failed by an admin
    CANCELLED = "cancelled"  # cancelled before capture; an authorization is released
    VOIDED = "voided"  # not captured in time: the authorization was released


PAYMENT_FINAL = frozenset(
    {PaymentStatus.COMPLETED, PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.VOIDED}
)
# Before the money is captured a payment can still be cancelled or failed.
PAYMENT_CANCELLABLE = frozenset(
    {
        PaymentStatus.PENDING,
        PaymentStatus.IN_REVIEW,
        PaymentStatus.AUTHORIZING,
        PaymentStatus.AUTHORIZED,
    }
)


class PaymentMethodType(StrEnum):
    CARD = "card"


class PaymentMethodStatus(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


class VerificationStatus(StrEnum):
    UNVERIFIED = "unverified"
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


class RefundStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # above the approval threshold: waits for `approve`
    PROCESSING = "processing"  # sent, or about to be sent, to Stripe
    COMPLETED = "completed"
    FAILED = "failed"  # Stripe refused it; its amount is refundable again
    REJECTED = "rejected"  # an admin refused it; its amount is refundable again


REFUND_OPEN = frozenset({RefundStatus.PENDING_APPROVAL, RefundStatus.PROCESSING})


class RefundReason(StrEnum):
    """Stripe's refund reasons, plus ``other``, which is sent to Stripe without a reason."""

    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    OTHER = "other"


def check_payment_status(
    status: PaymentStatus, allowed: frozenset[PaymentStatus], action: str
) -> None:
    if status not in allowed:
        raise Conflict(f"cannot {action} a payment that is {status.value}", status=status.value)


def check_refundable(captured: int, refunded: int, pending: int, amount: int) -> None:
    """A refund fits when, with every refund completed or still open, the payment's refunds
    stay within what was captured."""
    if amount <= 0:
        raise ValidationError("a refund refunds a positive amount", param="amount")
    if captured == 0:
        raise Conflict("nothing was captured: cancel the payment instead", code="not_captured")
    left = captured - refunded - pending
    if amount > left:
        raise Conflict(
            f"a refund of {amount} exceeds what is left to refund ({left} of {captured} captured)",
            code="refund_exceeds_captured",
            param="amount",
            refundable=left,
        )


def split_proportionally(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` shared in proportion to ``weights`` in whole units, summing to ``amount``
    exactly: each part is its floor share, and the units left over go one each to the largest
    remainders (earlier positions first on a tie). A part never exceeds its weight when
    ``amount`` does not exceed their sum."""
    if amount < 0 or any(weight < 0 for weight in weights):
        raise ValidationError("cannot split a negative amount", param="amount")
    total = sum(weights)
    if total == 0:
        if amount:
            raise ValidationError("cannot split an amount over nothing", param="amount")
        return [0] * len(weights)
    floors = [amount * weight // total for weight in weights]
    remainders = [amount * weight % total for weight in weights]
    left = amount - sum(floors)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        floors[index] += 1
    return floors


def commission(amount: int, bps: int, fixed: int = 0) -> int:
    """The platform's part of ``amount``: ``bps`` basis points rounded half up, plus ``fixed``,
    never more than the amount."""
    return min(amount, (amount * bps + BPS // 2) // BPS + fixed)


@dataclass(frozen=True)
class Allocation:
    """A vendor's part of a payment, before the platform's commission on it."""

    vendor_id: str
    amount: int
    commission_bps: int
    commission_fixed: int = 0


@dataclass(frozen=True)
class SplitLine:
    """Who receives what of a payment: a vendor (net of commission) or, with ``vendor_id``
    None, the platform (every commission and whatever is not allocated)."""

    vendor_id: str | None
    gross: int
    commission: int
    amount: int


def plan_splits(amount: int, allocations: Sequence[Allocation]) -> list[SplitLine]:
    """The vendors' lines in order, then the platform's; their amounts sum to ``amount``."""
    vendors = [allocation.vendor_id for allocation in allocations]
    if any(allocation.amount < 0 for allocation in allocations):
        raise ValidationError("an allocation is a non-negative amount", param="allocations")
    if len(set(vendors)) != len(vendors):
        raise ValidationError("each vendor appears once in the allocations", param="allocations")
    allocated = sum(allocation.amount for allocation in allocations)
    if allocated > amount:
        raise ValidationError(
            f"the allocations ({allocated}) exceed the payment ({amount})",
            code="allocations_exceed_amount",
            param="allocations",
        )
    lines = []
    for allocation in allocations:
        if not 0 <= allocation.commission_bps <= BPS or allocation.commission_fixed < 0:
            raise ValidationError(
                "a commission is 0 to 10000 basis points plus a non-negative fixed part",
                param="allocations",
            )
        cut = commission(allocation.amount, allocation.commission_bps, allocation.commission_fixed)
        lines.append(
            SplitLine(allocation.vendor_id, allocation.amount, cut, allocation.amount - cut)
        )
    platform = amount - sum(line.amount for line in lines)
    lines.append(SplitLine(None, amount - allocated, platform - (amount - allocated), platform))
    return lines

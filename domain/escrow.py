"""Escrow holds and payout schedules: their states, reasons and the moves allowed between."""

from enum import StrEnum

from domain.errors import Conflict


class HoldStatus(StrEnum):
    ACTIVE = "active"
    PARTIALLY_RELEASED = "partially_released"
    RELEASED = "released"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class HoldReason(StrEnum):
    GUARANTEE_PERIOD = "guarantee_period"
    DISPUTE = "dispute"
    VERIFICATION = "verification"
    OTHER = "other"


# Money is still held in these: it can be released, refunded or cancelled.
HOLDING = frozenset({HoldStatus.ACTIVE, HoldStatus.PARTIALLY_RELEASED})


class PayoutStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TriggerEvent(StrEnum):
    GUARANTEE_PERIOD_END = "guarantee_period_end"
    MILESTONE_REACHED = "milestone_reached"
    CONTRACT_SIGNED = "contract_signed"
    MANUAL = "manual"


PAYOUT_MOVES: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.PROCESSING, PayoutStatus.CANCELLED}),
    # A failed payout runs again on a later trigger, or is given up.
    PayoutStatus.FAILED: frozenset({PayoutStatus.PROCESSING, PayoutStatus.CANCELLED}),
    PayoutStatus.PROCESSING: frozenset({PayoutStatus.COMPLETED, PayoutStatus.FAILED}),
    PayoutStatus.COMPLETED: frozenset(),
    PayoutStatus.CANCELLED: frozenset(),
}


def check_payout_move(current: PayoutStatus, target: PayoutStatus) -> None:
    if target not in PAYOUT_MOVES[current]:
        raise Conflict(
            f"a {current.value} payout schedule cannot become {target.value}",
            status=current.value,
        )


def check_holding(status: HoldStatus) -> None:
    if status not in HOLDING:
        raise Conflict(f"the hold is {status.value}: nothing is held any more", status=status.value)

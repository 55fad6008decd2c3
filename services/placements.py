"""Placement activation: the guarantee-period escrow hold and the payout that follows it,
created together once per placement."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.escrow import HoldReason, TriggerEvent
from domain.money import Money
from models.escrow import EscrowHold, PayoutSchedule
from services import escrow, payouts


@dataclass(frozen=True)
class Activation:
    hold: EscrowHold
    schedule: PayoutSchedule
    created: bool


async def activate(
    session: AsyncSession,
    placement_id: str,
    *,
    payer_id: str,
    payee_id: str,
    destination: str,
    money: Money,
    guarantee_ends_at: datetime,
    required_approvals: int,
    actor: Actor,
) -> Activation:
    """Hold ``money`` until the guarantee ends, then pay it to ``destination``; activating the
    placement again returns the first pair (``created`` False), whatever the arguments."""
    # Serialises activations of one placement, so two at once cannot both create a pair.
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"placement:{placement_id}", 0)))
    )
    found = await _existing(session, placement_id)
    if found is not None:
        return Activation(*found, created=False)
    hold = await escrow.create_hold(
        session,
        payer_id=payer_id,
        payee_id=payee_id,
        money=money,
        reason=HoldReason.GUARANTEE_PERIOD,
        release_at=guarantee_ends_at,
        actor=actor,
        required_approvals=required_approvals,
        placement_id=placement_id,
    )
    schedule = await payouts.create_schedule(
        session,
        payee_id=payee_id,
        destination=destination,
        money=money,
        trigger_event=TriggerEvent.GUARANTEE_PERIOD_END,
        scheduled_for=guarantee_ends_at,
        actor=actor,
        placement_id=placement_id,
        hold_id=hold.id,
    )
    return Activation(hold, schedule, created=True)


async def _existing(
    session: AsyncSession, placement_id: str
) -> tuple[EscrowHold, PayoutSchedule] | None:
    """The pair an earlier activation made: the guarantee payout with its hold."""
    schedule = await session.scalar(
        select(PayoutSchedule)
        .where(
            PayoutSchedule.placement_id == placement_id,
            PayoutSchedule.trigger_event == TriggerEvent.GUARANTEE_PERIOD_END.value,
            PayoutSchedule.hold_id.is_not(None),
        )
        .order_by(PayoutSchedule.created_at)
        .limit(1)
    )
    if schedule is None or schedule.hold_id is None:
        return None
    return await escrow.get(session, schedule.hold_id), schedule

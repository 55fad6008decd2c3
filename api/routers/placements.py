"""Placement activation: the guarantee-period escrow hold and the payout that follows it."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import PlatformAdmin, Session, get_settings
from api.routers.escrow import (
    Amount,
    Currency,
    HoldOut,
    Party,
    hold_out,
    hold_workflow,
    money,
)
from api.routers.payouts import ScheduleOut, StripeAccount, schedule_out, schedule_workflow
from api.workflow_calls import start_after_commit
from domain.actors import Actor
from domain.errors import ValidationError
from domain.escrow import HOLDING, HoldReason, HoldStatus, PayoutStatus, TriggerEvent
from models.escrow import EscrowHold, PayoutSchedule
from services import escrow, payouts
from settings import Settings

router = APIRouter(prefix="/placements", tags=["placements"])

MAX_GUARANTEE_DAYS = 365
PlacementPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class ActivateIn(BaseModel):
    payer_id: Party
    payee_id: Party
    destination: StripeAccount
    amount: Amount
    currency: Currency
    guarantee_days: int | None = Field(None, ge=1, le=MAX_GUARANTEE_DAYS)
    guarantee_ends_at: AwareDatetime | None = None
    required_approvals: int = Field(0, ge=0, le=20)

    @model_validator(mode="after")
    def one_guarantee_end(self) -> "ActivateIn":
        if (self.guarantee_days is None) == (self.guarantee_ends_at is None):
            raise ValueError("give exactly one of guarantee_days and guarantee_ends_at")
        return self


class ActivationOut(BaseModel):
    object: str = "placement_activation"
    placement_id: str
    hold: HoldOut
    payout_schedule: ScheduleOut


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


@router.post("/{placement_id}/activate", status_code=201)
async def activate_placement(
    placement_id: PlacementPath,
    body: ActivateIn,
    request: Request,
    response: Response,
    session: Session,
    actor: PlatformAdmin,
    settings: Annotated[Settings, Depends(get_settings)],
) -> ActivationOut:
    """Hold the amount until the guarantee ends, then pay it out to ``destination``: both in
    one transaction, their workflows started once committed. Activating the placement again
    returns the first pair (200), whatever the body."""
    # Serialises activations of one placement, so two at once cannot both create a pair.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"placement-activation:{placement_id}"},
    )
    found = await _existing(session, placement_id)
    if found is not None:
        response.status_code = 200
        hold, schedule = found
    else:
        hold, schedule = await _create(session, placement_id, body, actor)
    # Again on a repeat: it finds them running, or starts those whose first start failed.
    if HoldStatus(hold.status) in HOLDING:
        start_after_commit(request, hold_workflow(hold, settings))
    if schedule.status not in (PayoutStatus.COMPLETED.value, PayoutStatus.CANCELLED.value):
        start_after_commit(request, schedule_workflow(schedule, settings))
    return ActivationOut(
        placement_id=placement_id, hold=hold_out(hold), payout_schedule=schedule_out(schedule)
    )


async def _create(
    session: AsyncSession, placement_id: str, body: ActivateIn, actor: Actor
) -> tuple[EscrowHold, PayoutSchedule]:
    now = datetime.now(UTC)
    if body.guarantee_ends_at is not None:
        ends_at = body.guarantee_ends_at
        if not now < ends_at <= now + timedelta(days=MAX_GUARANTEE_DAYS):
            raise ValidationError(
                f"guarantee_ends_at is within the next {MAX_GUARANTEE_DAYS} days",
                param="guarantee_ends_at",
            )
    else:
        assert body.guarantee_days is not None  # the model requires one of the two
        ends_at = now + timedelta(days=body.guarantee_days)
    value = money(body.amount, body.currency)
    hold = await escrow.create_hold(
        session,
        payer_id=body.payer_id,
        payee_id=body.payee_id,
        money=value,
        reason=HoldReason.GUARANTEE_PERIOD,
        release_at=ends_at,
        actor=actor,
        required_approvals=body.required_approvals,
        placement_id=placement_id,
    )
    schedule = await payouts.create_schedule(
        session,
        payee_id=body.payee_id,
        destination=body.destination,
        money=value,
        trigger_event=TriggerEvent.GUARANTEE_PERIOD_END,
        scheduled_for=ends_at,
        actor=actor,
        placement_id=placement_id,
        hold_id=hold.id,
    )
    return hold, schedule

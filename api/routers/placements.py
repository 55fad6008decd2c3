"""Placement activation: the guarantee-period escrow hold and the payout that follows it."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.deps import PlatformAdmin, Session, get_settings
from api.fields import Amount, Currency, Party, money
from api.routers.escrow import HoldOut, hold_out, hold_workflow
from api.routers.payouts import ScheduleOut, StripeAccount, schedule_out, schedule_workflow
from api.workflow_calls import start_after_commit
from domain.errors import ValidationError
from domain.escrow import HOLDING, HoldStatus, PayoutStatus
from services import placements
from settings import Settings

router = APIRouter(prefix="/placements", tags=["placements"])

MAX_GUARANTEE_DAYS = 365
PlacementPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    activation = await placements.activate(
        session,
        placement_id,
        payer_id=body.payer_id,
        payee_id=body.payee_id,
        destination=body.destination,
        money=money(body.amount, body.currency),
        guarantee_ends_at=ends_at,
        required_approvals=body.required_approvals,
        actor=actor,
    )
    hold, schedule = activation.hold, activation.schedule
    if not activation.created:
        response.status_code = 200
    # Again on a repeat: it finds them running, or starts those whose first start failed.
    if HoldStatus(hold.status) in HOLDING:
        start_after_commit(request, hold_workflow(hold, settings))
    if schedule.status not in (PayoutStatus.COMPLETED.value, PayoutStatus.CANCELLED.value):
        start_after_commit(request, schedule_workflow(schedule, settings))
    return ActivationOut(
        placement_id=placement_id, hold=hold_out(hold), payout_schedule=schedule_out(schedule)
    )

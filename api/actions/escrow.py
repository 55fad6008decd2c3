"""Releasing, extending and cancelling escrow holds, one or many: checked against the
service's rules, then signalled to the hold's workflow, which alone moves the money."""

import uuid
from datetime import datetime

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import PLATFORM_ADMIN_ONLY, allow
from api.workflow_calls import BulkOut, WorkflowStart, run_bulk, signal
from domain.actors import Actor
from domain.escrow import HoldStatus, check_holding
from models.escrow import EscrowHold
from services import escrow
from settings import Settings
from workflows.types import EscrowHoldInput, ExtendHold, HoldSignal, ReleasePartial

RELEASE_ROLES = PLATFORM_ADMIN_ONLY
EXTEND_ROLES = PLATFORM_ADMIN_ONLY
CANCEL_ROLES = PLATFORM_ADMIN_ONLY


def workflow_id(hold_id: uuid.UUID) -> str:
    return f"escrow-hold-{hold_id}"


def hold_workflow(hold: EscrowHold, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="EscrowHold",
        id=workflow_id(hold.id),
        arg=EscrowHoldInput(hold_id=hold.id, release_at=hold.release_at),
        task_queue=settings.task_queue,
    )


async def holding(session: AsyncSession, hold_id: uuid.UUID) -> EscrowHold:
    """The hold, if money is still held (only then does its workflow take signals)."""
    hold = await escrow.get(session, hold_id)
    check_holding(HoldStatus(hold.status))
    return hold


async def _release(
    request: Request, hold: EscrowHold, amount: int | None, actor: Actor, settings: Settings
) -> None:
    # The service's rules, checked before the workflow is asked.
    escrow.check_release(hold, amount)
    start = hold_workflow(hold, settings)
    if amount is None:
        await signal(request, start, "release_now", HoldSignal(by=actor.id))
    else:
        await signal(request, start, "release_partial", ReleasePartial(amount=amount, by=actor.id))


async def release(
    request: Request,
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    amount: int | None,
    actor: Actor,
    settings: Settings,
) -> EscrowHold:
    """Release all that is held (``amount`` None), or ``amount`` of it, to the payee now."""
    allow(actor, RELEASE_ROLES)
    hold = await escrow.get(session, hold_id)
    await _release(request, hold, amount, actor, settings)
    return hold


async def bulk_release(
    request: Request,
    session: AsyncSession,
    ids: list[str],
    *,
    actor: Actor,
    settings: Settings,
) -> BulkOut:
    """Release each hold in full; every id gets its own result."""
    allow(actor, RELEASE_ROLES)

    async def one(hold_id: uuid.UUID) -> None:
        await _release(request, await escrow.get(session, hold_id), None, actor, settings)

    return await run_bulk(ids, one)


async def extend(
    request: Request,
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    release_at: datetime,
    actor: Actor,
    settings: Settings,
) -> EscrowHold:
    """Only later (an earlier release is ``release``)."""
    allow(actor, EXTEND_ROLES)
    hold = await escrow.get(session, hold_id)
    escrow.check_extend(hold, release_at)
    extend = ExtendHold(release_at=release_at, by=actor.id)
    await signal(request, hold_workflow(hold, settings), "extend", extend)
    return hold


async def cancel(
    request: Request,
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    actor: Actor,
    settings: Settings,
) -> EscrowHold:
    """Cancel the hold: what is still held goes back to the payer."""
    allow(actor, CANCEL_ROLES)
    hold = await holding(session, hold_id)
    await signal(request, hold_workflow(hold, settings), "cancel", HoldSignal(by=actor.id))
    return hold

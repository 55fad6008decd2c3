"""Settling a rail's queued transfers now, without waiting for its window: signal
``settle_now`` to ``settlement-window-{rail}`` (starting it if needed). Platform admins only."""

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import PLATFORM_ADMIN_ONLY, allow
from api.transfer_workflows import window_workflow
from api.workflow_calls import signal
from domain.actors import Actor
from services import settlement_windows
from settings import Settings
from workflows.types import SettleNow

SETTLE_ROLES = PLATFORM_ADMIN_ONLY
DEFAULT_REASON = "settled early by an operator"


def workflow_id(rail: str) -> str:
    return f"settlement-window-{rail}"


async def settle_now(
    request: Request,
    session: AsyncSession,
    rail: str,
    *,
    reason: str,
    actor: Actor,
    settings: Settings,
) -> settlement_windows.WindowView:
    """Send every transfer queued for ``rail`` now (503 if Temporal is unreachable). Returns
    the rail's windows and queue as they are now (the workflow empties the queue)."""
    allow(actor, SETTLE_ROLES)
    settlement_windows.check_rail(rail)
    settle = SettleNow(by=actor.id, reason=reason)
    await signal(request, window_workflow(rail, settings), "settle_now", settle)
    return await settlement_windows.view(session, rail)

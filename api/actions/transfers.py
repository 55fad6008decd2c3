"""Retrying a transfer batch's failed items: the items go back to pending in the request's
transaction and, once it has committed, the batch's workflow is told (``retry_failed``,
starting a new run of it if the last one finished)."""

import uuid

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import ADMIN_ROLES, allow
from api.transfer_workflows import batch_workflow, batch_workflow_id
from api.workflow_calls import signal_after_commit
from domain.actors import Actor
from services import transfers
from settings import Settings
from workflows.types import RetryFailedTransfers

RETRY_ROLES = ADMIN_ROLES

workflow_id = batch_workflow_id


async def retry_failed(
    request: Request,
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    actor: Actor,
    settings: Settings,
) -> transfers.Retried:
    """The batch's failed transfers pending again (a 409 ``nothing_to_retry`` if none
    failed), run by the batch's workflow once committed."""
    allow(actor, RETRY_ROLES)
    retried = await transfers.retry_failed(session, batch_id, actor=actor)
    retry = RetryFailedTransfers(by=actor.id)
    signal_after_commit(request, batch_workflow(batch_id, settings), "retry_failed", retry)
    return retried

"""Resolving a reconciliation discrepancy with a note saying how (platform and billing
admins): the service's rules (a note is required; one resolved already is a 409
``discrepancy_resolved``), audited."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import ADMIN_ROLES, allow
from domain.actors import Actor
from models.reconciliation import ReconciliationDiscrepancy
from services import reconciliation

RESOLVE_ROLES = ADMIN_ROLES


async def resolve(
    session: AsyncSession, discrepancy_id: uuid.UUID, *, note: object, actor: Actor
) -> ReconciliationDiscrepancy:
    allow(actor, RESOLVE_ROLES)
    return await reconciliation.resolve(session, discrepancy_id, note=note, actor=actor)

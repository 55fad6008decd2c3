"""Replaying a webhook delivery (platform and billing admins): the same event again, same
``webhook-id``, as a new delivery the dispatcher hands to its workflow within its interval;
a 409 while the delivery is still under way or its endpoint is disabled."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.actions import ADMIN_ROLES, allow
from domain.actors import Actor
from models.webhooks import WebhookDelivery
from services import webhooks

REPLAY_ROLES = ADMIN_ROLES

workflow_id = webhooks.delivery_workflow_id


async def replay_delivery(
    session: AsyncSession, delivery_id: uuid.UUID, *, actor: Actor
) -> WebhookDelivery:
    allow(actor, REPLAY_ROLES)
    return await webhooks.replay_delivery(session, delivery_id, actor=actor)

"""Housekeeping activities run by Schedules."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from services import idempotency
from workflows.types import PurgeInput, PurgeResult


class MaintenanceActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="purge_expired_idempotency_keys")
    async def purge_expired_idempotency_keys(self, _: PurgeInput) -> PurgeResult:
        async with self.sessionmaker() as session, session.begin():
            return PurgeResult(deleted=await idempotency.purge_expired(session))

"""Starting an anchoring run early, when a full batch of tickets is waiting."""

import logging
import time

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError

from domain.errors import ProviderError
from integrations.temporal import LazyClient
from schedules import ANCHORING_SCHEDULE
from services import anchoring

log = logging.getLogger(__name__)


class EarlyAnchoring:
    """After tickets are issued: if ``batch_size`` wait, trigger the anchoring Schedule now.

    The Schedule skips a trigger while a run is in progress (that run keeps batching until
    nothing waits), and at most one check runs at a time per API process, at most every
    ``min_interval`` seconds once it has triggered. Issuing tickets counts the waiting ones at
    most every ``check_interval`` seconds: a busy API need not count after every ticket.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        temporal: LazyClient,
        *,
        batch_size: int,
        min_interval: float = 10.0,
        check_interval: float = 1.0,
        schedule_id: str = ANCHORING_SCHEDULE,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.schedule_id = schedule_id
        self.temporal = temporal
        self.batch_size = batch_size
        self.min_interval = min_interval
        self.check_interval = check_interval
        self._checked_at = float("-inf")
        self._checking = False
        self._triggered_at = float("-inf")

    async def tickets_issued(self) -> None:
        if time.monotonic() - self._checked_at >= self.check_interval:
            self._checked_at = time.monotonic()
            await self.check()

    async def check(self) -> bool:
        """Whether it triggered a run."""
        if self._checking or time.monotonic() - self._triggered_at < self.min_interval:
            return False
        self._checking = True
        try:
            async with self.sessionmaker() as session:
                waiting = await anchoring.pending_count(session, up_to=self.batch_size)
            if waiting < self.batch_size:
                return False
            client = await self.temporal.get()
            await client.get_schedule_handle(self.schedule_id).trigger()
            self._triggered_at = time.monotonic()
            log.info("%d tickets wait: triggered %s early", waiting, self.schedule_id)
            return True
        except (SQLAlchemyError, RPCError, ProviderError) as exc:
            # The Schedule still runs on time: this only makes it earlier.
            log.warning("could not start anchoring early: %s", exc)
            return False
        finally:
            self._checking = False

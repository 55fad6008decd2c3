"""Settlement window activities (database steps, main task queue): the earliest window a
queued transfer of the rail waits for, what a window sends, and the record of a window
settled. The sending itself is the transfer activities' (``activities.transfers``)."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.transfers import system
from services import settlement_windows
from workflows.types import (
    SettlementWindowItems,
    SettlementWindowPlan,
    SettlementWindowRecordInput,
    SettlementWindowResult,
    SettlementWindowStepInput,
    TransferItemRef,
)


class SettlementWindowActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="settlement_window_plan")
    async def plan(self, request: SettlementWindowStepInput) -> SettlementWindowPlan:
        with business_errors():
            async with self.sessionmaker() as session:
                queue = await settlement_windows.queue(session, request.rail)
                return SettlementWindowPlan(next_window_at=queue.next_window_at, queued=queue.count)

    @activity.defn(name="settlement_window_release")
    async def release(self, request: SettlementWindowStepInput) -> SettlementWindowItems:
        with business_errors():
            async with self.sessionmaker() as session:
                due = await settlement_windows.due(session, request.rail, request.up_to)
                return SettlementWindowItems(
                    items=[
                        TransferItemRef(transfer_id=item.id, rail=item.rail, status=item.status)
                        for item in due
                    ]
                )

    @activity.defn(name="settlement_window_record")
    async def record(self, request: SettlementWindowRecordInput) -> SettlementWindowResult:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                outcome = await settlement_windows.record_run(
                    session,
                    rail=request.rail,
                    window_at=request.window_at,
                    trigger=request.trigger,
                    requested_by=request.requested_by,
                    transfer_ids=request.transfer_ids,
                    started_at=request.started_at,
                    actor=system(request.actor),
                )
                run = outcome.run
                return SettlementWindowResult(
                    run_id=run.id,
                    window_at=run.window_at,
                    trigger=run.trigger,
                    total=run.total_count,
                    succeeded=run.succeeded_count,
                    failed=run.failed_count,
                    batch_ids=outcome.batch_ids,
                )

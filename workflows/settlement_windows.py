"""A rail's settlement windows: ``settlement-window-{rail}`` sleeps until the earliest window a
queued transfer of the rail waits for, then sends every transfer due by it together (each
with its own retries, ``workflows.transfer_items``), records the window and tells the
batches concerned; then it continues as new, one run per window.

The rows are the queue: each transfer was QUEUED with its window when it was stored (the
cut-off is applied then, ``domain.settlement_windows.window_for``). The ``enqueue`` signal
(sent with start by the API) only wakes the workflow to look again, so a lost signal
delays nothing past the next look. ``settle_now`` (an operator, the Temporal UI or the
API) sends everything queued at once."""

from datetime import datetime, timedelta

from temporalio import workflow

from workflows import search_attributes as sa
from workflows.transfer_items import DATABASE, TransferRunner, history_long
from workflows.types import (
    SettlementWindowInput,
    SettlementWindowRecordInput,
    SettlementWindowResult,
    SettlementWindowStatus,
    SettlementWindowStepInput,
    SettleNow,
    TransfersQueued,
    WindowSettled,
)

with workflow.unsafe.imports_passed_through():
    from activities.settlement_windows import SettlementWindowActivities

# With nothing queued the workflow still looks again daily (a missed signal waits no more).
IDLE_RECHECK = timedelta(days=1)
WINDOW_TRIGGER = "window"
SETTLE_NOW_TRIGGER = "settle_now"


def workflow_id(rail: str) -> str:
    return f"settlement-window-{rail}"


@workflow.defn(name="SettlementWindow")
class SettlementWindowWorkflow:
    @workflow.init
    def __init__(self, request: SettlementWindowInput) -> None:
        self._input = request
        self._actor = workflow_id(request.rail)
        self._settle_now: SettleNow | None = request.settle_now
        self._signalled: datetime | None = request.earliest_signalled
        self._next: datetime | None = None
        self._last: SettlementWindowResult | None = request.last
        self._runner = TransferRunner(request, self._actor)

    @workflow.run
    async def run(self, request: SettlementWindowInput) -> None:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(request.rail),
                sa.ENTITY_TYPE.value_set("settlement_window"),
            ]
        )
        while True:
            self._signalled = None
            plan = await workflow.execute_activity_method(
                SettlementWindowActivities.plan,
                SettlementWindowStepInput(rail=request.rail),
                **DATABASE,
            )
            self._next = plan.next_window_at
            if self._settle_now is not None:
                await self._settle(None)
            due = self._next
            if due is None:
                if not await self._woken(IDLE_RECHECK) and history_long():
                    await self._continue()
                continue
            wait = due - workflow.now()
            if wait > timedelta(0) and await self._woken(wait, before=due):
                continue  # an operator, or a transfer for an earlier window: look again
            await self._settle(due)

    async def _woken(self, wait: timedelta, before: datetime | None = None) -> bool:
        """Waits ``wait``; True when woken earlier by ``settle_now``, or by transfers
        queued for a window before ``before`` (any window, when there is none)."""

        def woken() -> bool:
            if self._settle_now is not None:
                return True
            return self._signalled is not None and (before is None or self._signalled < before)

        try:
            await workflow.wait_condition(woken, timeout=wait)
        except TimeoutError:
            return False
        return True

    async def _settle(self, window_at: datetime | None) -> None:
        """Send what is due by ``window_at`` (everything queued, for ``settle_now``), record
        the window, tell the batches, and continue as new."""
        asked, self._settle_now = self._settle_now, None
        started = workflow.now()
        released = await workflow.execute_activity_method(
            SettlementWindowActivities.release,
            SettlementWindowStepInput(rail=self._input.rail, up_to=window_at),
            **DATABASE,
        )
        drained = await self._runner.execute(released.items)
        if not drained:
            # The history is long: the next run sends the rest of the same window.
            self._settle_now = self._settle_now or asked
            await self._continue()
        result = await workflow.execute_activity_method(
            SettlementWindowActivities.record,
            SettlementWindowRecordInput(
                rail=self._input.rail,
                window_at=window_at or started,
                trigger=SETTLE_NOW_TRIGGER if asked is not None else WINDOW_TRIGGER,
                requested_by=asked.by if asked is not None else self._actor,
                transfer_ids=[item.transfer_id for item in released.items],
                started_at=started,
                actor=self._actor,
            ),
            **DATABASE,
        )
        self._last = result
        workflow.logger.info(
            "settlement window %s of %s: %s sent, %s succeeded, %s failed",
            result.window_at,
            self._input.rail,
            result.total,
            result.succeeded,
            result.failed,
        )
        for batch_id in result.batch_ids:
            batch = workflow.get_external_workflow_handle(f"transfer-batch-{batch_id}")
            try:
                await batch.signal(
                    "window_settled", WindowSettled(rail=self._input.rail, run_id=result.run_id)
                )
            except Exception as failed:  # a finished batch needs no news
                workflow.logger.warning("could not tell batch %s: %s", batch_id, failed)
        await self._continue()

    async def _continue(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            self._input.model_copy(
                update={
                    "settle_now": self._settle_now,
                    "earliest_signalled": self._signalled,
                    "last": self._last,
                }
            )
        )

    @workflow.signal
    def enqueue(self, request: TransfersQueued) -> None:
        """Transfers were queued for the window at ``window_at``: look again if it is earlier
        than the one the workflow waits for."""
        if self._signalled is None or request.window_at < self._signalled:
            self._signalled = request.window_at

    @workflow.signal
    def settle_now(self, request: SettleNow) -> None:
        """Send every queued transfer of the rail now, without waiting for its window."""
        workflow.logger.info(
            "settlement window %s: settle now asked by %s (%s)",
            self._input.rail,
            request.by,
            request.reason,
        )
        self._settle_now = request

    @workflow.query
    def status(self) -> SettlementWindowStatus:
        return SettlementWindowStatus(
            rail=self._input.rail,
            next_window_at=self._next,
            settling=self._runner.running,
            settle_now_requested=self._settle_now is not None,
            last=self._last,
        )

"""A prediction market's resolution: distribute the pool once, hold it open to disputes for a
window, roll it back on request (then wait for a new resolution), and settle it when the
window passes. Operators act through signals."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from domain.markets import MarketStatus
from workflows import search_attributes as sa
from workflows.activity_options import database_step
from workflows.failures import reason
from workflows.types import (
    DisputeMarket,
    MarketLoadInput,
    MarketReasonInput,
    MarketResolutionInput,
    MarketResolutionStatus,
    MarketSignal,
    MarketStartInput,
    MarketState,
    MarketStepInput,
    ResolveMarket,
    RollbackMarket,
)

with workflow.unsafe.imports_passed_through():
    from activities.markets import MarketActivities

FINAL_ERRORS = ["NotFound", "Conflict", "ValidationError"]
# Database outages are retried until the database is back; refusals are final.
DATABASE = database_step(FINAL_ERRORS)
# The distribution is one transaction over every commitment: minutes for a very large
# market, heartbeating meanwhile. After the last attempt the saga compensates the start.
DISTRIBUTE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=10,
        non_retryable_error_types=FINAL_ERRORS,
    ),
}
# The actor of the steps the workflow takes by itself (operators' signals carry their own).
WORKFLOW_ACTOR = "market-resolution"

MarketStep = Callable[[MarketActivities, Any], Awaitable[MarketState]]


@dataclass(frozen=True)
class _Command:
    """A signal, waiting for the main loop, which runs them one at a time, in order."""

    verb: str
    by: str
    option_id: Any = None
    reason: str = ""
    key: str = ""


@workflow.defn(name="MarketResolution")
class MarketResolutionWorkflow:
    """``market-resolution-{id}``. The rows are the record: every step returns the market's
    new state, which this process mirrors. Ends when the market is settled."""

    @workflow.init
    def __init__(self, request: MarketResolutionInput) -> None:
        self._input = request
        self._state: MarketState | None = None
        self._pending: list[_Command] = []
        self._dispute_until: datetime | None = None
        self._rolled_back = False
        self._last_error: str | None = None

    @workflow.run
    async def run(self, request: MarketResolutionInput) -> MarketResolutionStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(request.market_id)),
                sa.ENTITY_TYPE.value_set("market"),
            ]
        )
        self._apply(
            await workflow.execute_activity_method(
                MarketActivities.load, MarketLoadInput(market_id=request.market_id), **DATABASE
            )
        )
        while self._current().status != MarketStatus.SETTLED:
            state = self._current()
            if self._pending:
                await self._run_command(self._pending.pop(0))
            elif state.status == MarketStatus.RESOLVING and state.resolution_id is not None:
                # A distribution an earlier run started: finish it (or compensate it).
                await self._distribute(state.resolution_id)
            elif state.status == MarketStatus.RESOLVED and self._window_over():
                await self._step(
                    "settle", MarketActivities.settle, self._on_resolution(WORKFLOW_ACTOR)
                )
            elif state.status == MarketStatus.ROLLED_BACK and self._rolled_back:
                # Each resolution is a cycle: a new run waits for the next one.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._pending:
                    workflow.continue_as_new(self._input)
            else:
                await self._wait()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _wait(self) -> None:
        """Until a signal comes, or (a resolved market) the end of the dispute window."""
        timeout = None
        if self._current().status == MarketStatus.RESOLVED and self._dispute_until is not None:
            timeout = self._dispute_until - workflow.now()
        try:
            await workflow.wait_condition(lambda: bool(self._pending), timeout=timeout)
        except TimeoutError:
            pass

    def _window_over(self) -> bool:
        return self._dispute_until is not None and workflow.now() >= self._dispute_until

    async def _run_command(self, command: _Command) -> None:
        if command.verb == "resolve":
            start = MarketStartInput(
                market_id=self._input.market_id,
                option_id=command.option_id,
                key=command.key,
                actor=command.by,
            )
            if await self._step("resolve", MarketActivities.start_resolution, start):
                resolution_id = self._current().resolution_id
                assert resolution_id is not None, "a started resolution has an id"
                await self._distribute(resolution_id)
            return
        if self._current().resolution_id is None:
            workflow.logger.warning(
                "market %s: %s refused: nothing resolved yet", self._input.market_id, command.verb
            )
            return
        if command.verb == "dispute":
            await self._step("dispute", MarketActivities.dispute, self._with_reason(command))
        elif command.verb == "uphold":
            await self._step("uphold", MarketActivities.uphold, self._on_resolution(command.by))
        elif command.verb == "rollback":
            if await self._step("rollback", MarketActivities.rollback, self._with_reason(command)):
                self._rolled_back = True
                self._dispute_until = None

    async def _distribute(self, resolution_id: Any) -> None:
        """The distribution; if it fails for good, the saga's compensation: the resolution
        FAILED and the market given back, so it can be resolved again."""
        step = MarketStepInput(resolution_id=resolution_id, actor=WORKFLOW_ACTOR)
        try:
            state = await workflow.execute_activity_method(
                MarketActivities.distribute, step, **DISTRIBUTE
            )
        except ActivityError as failed:
            self._last_error = reason(failed)
            workflow.logger.warning(
                "market %s: distribution failed, compensating: %s",
                self._input.market_id,
                self._last_error,
            )
            state = await workflow.execute_activity_method(
                MarketActivities.abandon,
                MarketReasonInput(
                    resolution_id=resolution_id, reason=self._last_error, actor=WORKFLOW_ACTOR
                ),
                **DATABASE,
            )
        self._apply(state)

    async def _step(self, what: str, activity: MarketStep, request: BaseModel) -> bool:
        """A refusal is logged and the market reloaded (it may have moved on); False then."""
        try:
            state = await workflow.execute_activity_method(activity, request, **DATABASE)
        except ActivityError as refused:
            workflow.logger.warning(
                "market %s: %s refused: %s", self._input.market_id, what, reason(refused)
            )
            state = await workflow.execute_activity_method(
                MarketActivities.load, MarketLoadInput(market_id=self._input.market_id), **DATABASE
            )
            self._apply(state)
            return False
        self._apply(state)
        return True

    def _on_resolution(self, by: str) -> MarketStepInput:
        resolution_id = self._current().resolution_id
        assert resolution_id is not None, "checked by the caller"
        return MarketStepInput(resolution_id=resolution_id, actor=by)

    def _with_reason(self, command: _Command) -> MarketReasonInput:
        step = self._on_resolution(command.by)
        return MarketReasonInput(
            resolution_id=step.resolution_id, reason=command.reason, actor=command.by
        )

    def _apply(self, state: MarketState) -> None:
        previous = self._state
        self._state = state
        if state.status == MarketStatus.RESOLVED and self._dispute_until is None:
            self._dispute_until = workflow.now() + timedelta(
                seconds=self._input.dispute_window_seconds
            )
        if previous is None or previous.status != state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])

    def _current(self) -> MarketState:
        assert self._state is not None, "loaded first thing in run"
        return self._state

    @workflow.signal
    def resolve(self, signal: ResolveMarket) -> None:
        """Resolve with the winning option (refused unless the market is open or rolled
        back: a market is paid out once per resolution)."""
        key = f"market-{self._input.market_id}-resolution-{workflow.uuid4()}"
        self._pending.append(_Command("resolve", signal.by, option_id=signal.option_id, key=key))

    @workflow.signal
    def dispute(self, signal: DisputeMarket) -> None:
        """Hold a completed distribution until ``uphold`` or ``rollback``."""
        self._pending.append(_Command("dispute", signal.by, reason=signal.reason))

    @workflow.signal
    def uphold(self, signal: MarketSignal) -> None:
        """Reject the dispute: the distribution stands (and settles when the window ends)."""
        self._pending.append(_Command("uphold", signal.by))

    @workflow.signal
    def rollback(self, signal: RollbackMarket) -> None:
        """Reverse a completed or disputed distribution; the market may be resolved again."""
        self._pending.append(_Command("rollback", signal.by, reason=signal.reason))

    @workflow.query
    def status(self) -> MarketResolutionStatus:
        state = self._state or MarketState(status=MarketStatus.OPEN.value)
        return MarketResolutionStatus(
            market_id=self._input.market_id,
            status=state.status,
            resolution_id=state.resolution_id,
            resolution_status=state.resolution_status,
            winning_option_id=state.winning_option_id,
            pool=state.pool,
            paid_out=state.paid_out,
            last_error=self._last_error or state.error,
        )

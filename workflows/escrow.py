"""An escrow hold's process: wait (durably) until the release date, then release what is still
held, unless a dispute or missing approvals hold it back; operators act through signals."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError

from domain.escrow import HOLDING
from workflows import search_attributes as sa
from workflows.activity_options import database_step
from workflows.failures import reason
from workflows.types import (
    ApproveHold,
    DisputeHold,
    EscrowApproveInput,
    EscrowDisputeInput,
    EscrowExtendInput,
    EscrowGiveBackInput,
    EscrowHoldInput,
    EscrowHoldState,
    EscrowHoldStatus,
    EscrowLoadInput,
    EscrowReleaseInput,
    EscrowResolveInput,
    ExtendHold,
    HoldSignal,
    ReleasePartial,
)

with workflow.unsafe.imports_passed_through():
    from activities.escrow import EscrowActivities

# Database outages are retried until the database is back; refusals are final.
DATABASE = database_step()
# The actor of the release the date triggers (operators' signals carry their own).
SCHEDULE_ACTOR = "escrow-release-schedule"

EscrowStep = Callable[[EscrowActivities, Any], Awaitable[EscrowHoldState]]


@dataclass(frozen=True)
class _Step:
    """A signal's step, waiting for the main loop, which runs them one at a time, in order."""

    what: str
    activity: EscrowStep
    request: BaseModel


@workflow.defn(name="EscrowHold")
class EscrowHoldWorkflow:
    """``escrow-hold-{id}``. The row is the record: every step returns the row's new state,
    which this process mirrors. Ends when nothing is held (released, refunded or cancelled)."""

    @workflow.init
    def __init__(self, hold: EscrowHoldInput) -> None:
        self._hold = hold
        self._state: EscrowHoldState | None = None
        self._pending: list[_Step] = []

    @workflow.run
    async def run(self, hold: EscrowHoldInput) -> EscrowHoldStatus:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(hold.hold_id)),
                sa.ENTITY_TYPE.value_set("escrow_hold"),
            ]
        )
        self._apply(
            await workflow.execute_activity_method(
                EscrowActivities.load, EscrowLoadInput(hold_id=hold.hold_id), **DATABASE
            )
        )
        while self._current().status in HOLDING:
            if self._pending:
                await self._run_step(self._pending.pop(0))
            elif self._due() and self._releasable():
                release = EscrowReleaseInput(
                    hold_id=hold.hold_id, key=self._key("release"), actor=SCHEDULE_ACTOR
                )
                await self._run_step(_Step("release at date", EscrowActivities.release, release))
            else:
                await self._wait()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _wait(self) -> None:
        """Until a signal comes, or the release date (re-armed on each pass, so an extension
        moves it). Once due, a disputed or unapproved hold waits for signals only."""
        timeout = None if self._due() else self._current().release_at - workflow.now()
        try:
            await workflow.wait_condition(lambda: bool(self._pending), timeout=timeout)
        except TimeoutError:
            pass

    async def _run_step(self, step: _Step) -> None:
        """A refusal is logged and the row reloaded (it may have moved on); the hold keeps
        waiting."""
        try:
            state = await workflow.execute_activity_method(step.activity, step.request, **DATABASE)
        except ActivityError as refused:
            workflow.logger.warning(
                "escrow hold %s: %s refused: %s", self._hold.hold_id, step.what, reason(refused)
            )
            state = await workflow.execute_activity_method(
                EscrowActivities.load, EscrowLoadInput(hold_id=self._hold.hold_id), **DATABASE
            )
        self._apply(state)

    def _key(self, kind: str) -> str:
        """A money movement's key, made once in the workflow (the same on replay) and sent by
        every retry of its activity, so the movement happens once."""
        return f"hold-{self._hold.hold_id}-{kind}-{workflow.uuid4()}"

    def _apply(self, state: EscrowHoldState) -> None:
        previous = self._state
        self._state = state
        if previous is None:
            workflow.upsert_search_attributes(
                [sa.CUSTOMER_ID.value_set(state.payer_id), sa.STATUS.value_set(state.status)]
            )
        elif previous.status != state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])

    def _current(self) -> EscrowHoldState:
        assert self._state is not None, "loaded first thing in run"
        return self._state

    def _due(self) -> bool:
        return workflow.now() >= self._current().release_at

    def _releasable(self) -> bool:
        state = self._current()
        return not state.disputed and len(state.approvals) >= state.required_approvals

    def _enqueue(self, what: str, activity: EscrowStep, request: BaseModel) -> None:
        self._pending.append(_Step(what, activity, request))

    @workflow.signal
    def release_now(self, signal: HoldSignal) -> None:
        """Release everything still held, before the date (refused while disputed or short of
        approvals)."""
        release = EscrowReleaseInput(
            hold_id=self._hold.hold_id, key=self._key("release"), actor=signal.by
        )
        self._enqueue("release_now", EscrowActivities.release, release)

    @workflow.signal
    def release_partial(self, signal: ReleasePartial) -> None:
        """Release part now; the rest stays held until the date."""
        release = EscrowReleaseInput(
            hold_id=self._hold.hold_id,
            key=self._key("release"),
            actor=signal.by,
            amount=signal.amount,
        )
        self._enqueue("release_partial", EscrowActivities.release, release)

    @workflow.signal
    def refund_to_payer(self, signal: HoldSignal) -> None:
        refund = EscrowGiveBackInput(
            hold_id=self._hold.hold_id, key=self._key("refund"), actor=signal.by
        )
        self._enqueue("refund_to_payer", EscrowActivities.give_back, refund)

    @workflow.signal
    def cancel(self, signal: HoldSignal) -> None:
        """Everything still held goes back to the payer; nothing is released any more."""
        cancel = EscrowGiveBackInput(
            hold_id=self._hold.hold_id, key=self._key("cancel"), actor=signal.by, cancel=True
        )
        self._enqueue("cancel", EscrowActivities.give_back, cancel)

    @workflow.signal
    def extend(self, signal: ExtendHold) -> None:
        """Move the release date later (an earlier one is refused: that is ``release_now``)."""
        extend = EscrowExtendInput(
            hold_id=self._hold.hold_id, release_at=signal.release_at, actor=signal.by
        )
        self._enqueue("extend", EscrowActivities.extend, extend)

    @workflow.signal
    def dispute(self, signal: DisputeHold) -> None:
        """Hold the release back until ``resolve``."""
        dispute = EscrowDisputeInput(
            hold_id=self._hold.hold_id, reason=signal.reason, actor=signal.by
        )
        self._enqueue("dispute", EscrowActivities.dispute, dispute)

    @workflow.signal
    def resolve(self, signal: HoldSignal) -> None:
        resolve = EscrowResolveInput(hold_id=self._hold.hold_id, actor=signal.by)
        self._enqueue("resolve", EscrowActivities.resolve, resolve)

    @workflow.signal
    def approve(self, signal: ApproveHold) -> None:
        """One approver's approval; the same approver twice counts once."""
        approve = EscrowApproveInput(
            hold_id=self._hold.hold_id, approver=signal.approver, actor=signal.approver
        )
        self._enqueue("approve", EscrowActivities.approve, approve)

    @workflow.query
    def status(self) -> EscrowHoldStatus:
        state = self._state
        if state is None:  # before the row is loaded
            return EscrowHoldStatus(
                hold_id=self._hold.hold_id,
                status="active",
                release_at=self._hold.release_at,
                held_amount=0,
            )
        return EscrowHoldStatus(
            hold_id=self._hold.hold_id,
            status=state.status,
            release_at=state.release_at,
            held_amount=state.held_amount,
            disputed=state.disputed,
            approvals=state.approvals,
        )

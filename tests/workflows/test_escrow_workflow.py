"""The escrow hold workflow on the time-skipping server, with name-matched stub activities.

The stubs keep the hold as ``services.escrow`` does (held amount, keyed movements, dispute,
distinct approvers) and refuse what it refuses, so the workflow sees the same answers. Call
times are the server's skipped time, compared with the hold's release date.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.escrow import EscrowHoldWorkflow
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

AMOUNT = 10_000
# A release "at the date" starts within this of it (a workflow task and an activity task).
PROMPTLY = timedelta(minutes=1)


def refused(message: str, type_: str = "Conflict") -> ApplicationError:
    return ApplicationError(message, type=type_, non_retryable=True)


@dataclass
class Hold:
    """The stubbed row."""

    release_at: datetime
    required_approvals: int = 0
    amount: int = AMOUNT
    released: int = 0
    returned: int = 0
    status: str = "active"
    dispute: str | None = None
    approvals: list[str] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)

    @property
    def held(self) -> int:
        return self.amount - self.released - self.returned

    def state(self, moved: int = 0) -> EscrowHoldState:
        return EscrowHoldState(
            status=self.status,
            held_amount=self.held,
            currency="USD",
            release_at=self.release_at,
            payer_id="payer-1",
            disputed=self.dispute is not None,
            required_approvals=self.required_approvals,
            approvals=list(self.approvals),
            moved=moved,
        )

    def check_holding(self) -> None:
        if self.status not in ("active", "partially_released"):
            raise refused(f"the hold is {self.status}: nothing is held any more")


@dataclass
class EscrowStub:
    env: WorkflowEnvironment
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    releases: list[tuple[EscrowReleaseInput, datetime]] = field(default_factory=list)
    give_backs: list[tuple[EscrowGiveBackInput, datetime]] = field(default_factory=list)

    @activity.defn(name="escrow_load")
    async def load(self, request: EscrowLoadInput) -> EscrowHoldState:
        return self.holds[request.hold_id].state()

    @activity.defn(name="escrow_release")
    async def release(self, request: EscrowReleaseInput) -> EscrowHoldState:
        self.releases.append((request, await self.env.get_current_time()))
        hold = self.holds[request.hold_id]
        if request.key in hold.keys:
            return hold.state(hold.keys[request.key])
        hold.check_holding()
        if hold.dispute is not None:
            raise refused(f"the hold is disputed ({hold.dispute}): resolve it first")
        if len(hold.approvals) < hold.required_approvals:
            raise refused(f"the hold needs {hold.required_approvals} approvals")
        moved = hold.held if request.amount is None else request.amount
        if not 0 < moved <= hold.held:
            raise refused(f"a release moves 1 to {hold.held}, not {moved}", "ValidationError")
        hold.keys[request.key] = moved
        hold.released += moved
        hold.status = "released" if hold.held == 0 else "partially_released"
        return hold.state(moved)

    @activity.defn(name="escrow_give_back")
    async def give_back(self, request: EscrowGiveBackInput) -> EscrowHoldState:
        self.give_backs.append((request, await self.env.get_current_time()))
        hold = self.holds[request.hold_id]
        if request.key in hold.keys:
            return hold.state(hold.keys[request.key])
        hold.check_holding()
        moved = hold.keys[request.key] = hold.held
        hold.returned += moved
        hold.status = "cancelled" if request.cancel else "refunded"
        return hold.state(moved)

    @activity.defn(name="escrow_extend")
    async def extend(self, request: EscrowExtendInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.check_holding()
        if request.release_at <= hold.release_at:
            raise refused("extend moves the release later", "ValidationError")
        hold.release_at = request.release_at
        return hold.state()

    @activity.defn(name="escrow_dispute")
    async def dispute(self, request: EscrowDisputeInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.check_holding()
        hold.dispute = request.reason
        return hold.state()

    @activity.defn(name="escrow_resolve")
    async def resolve(self, request: EscrowResolveInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.dispute = None
        return hold.state()

    @activity.defn(name="escrow_approve")
    async def approve(self, request: EscrowApproveInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.check_holding()
        if request.approver not in hold.approvals:
            hold.approvals.append(request.approver)
        return hold.state()

    def release_times(self, hold_id: uuid.UUID) -> list[datetime]:
        return [at for request, at in self.releases if request.hold_id == hold_id]


Handle = WorkflowHandle[EscrowHoldWorkflow, EscrowHoldStatus]


@dataclass
class Harness:
    env: WorkflowEnvironment
    queue: str
    stub: EscrowStub

    async def start(
        self, held_for: timedelta = timedelta(days=30), required_approvals: int = 0
    ) -> tuple[Handle, uuid.UUID, datetime]:
        hold_id = uuid.uuid4()
        release_at = (await self.env.get_current_time()) + held_for
        self.stub.holds[hold_id] = Hold(release_at, required_approvals)
        handle = await self.env.client.start_workflow(
            EscrowHoldWorkflow.run,
            EscrowHoldInput(hold_id=hold_id, release_at=release_at),
            id=f"escrow-hold-{hold_id}",
            task_queue=self.queue,
        )
        return handle, hold_id, release_at


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    stub = EscrowStub(time_skipping_env)
    queue = f"escrow-{uuid.uuid4()}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[EscrowHoldWorkflow],
        activities=[
            stub.load,
            stub.release,
            stub.give_back,
            stub.extend,
            stub.dispute,
            stub.resolve,
            stub.approve,
        ],
    ):
        yield Harness(time_skipping_env, queue, stub)


async def test_a_30_day_hold_is_released_at_its_release_date_and_not_before(
    harness: Harness,
) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))

    await harness.env.sleep(timedelta(days=29, hours=23))
    assert harness.stub.releases == []
    before = await handle.query(EscrowHoldWorkflow.status)
    assert (before.status, before.held_amount) == ("active", AMOUNT)

    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert release_at <= released_at < release_at + PROMPTLY
    [(release, _)] = harness.stub.releases
    assert release.amount is None and release.actor == "escrow-release-schedule"
    assert release.key.startswith(f"hold-{hold_id}-release-")
    assert result == EscrowHoldStatus(
        hold_id=hold_id, status="released", release_at=release_at, held_amount=0
    )
    assert harness.stub.holds[hold_id].released == AMOUNT


async def test_release_now_releases_before_the_date(harness: Harness) -> None:
    handle, hold_id, release_at = await harness.start()

    await handle.signal(EscrowHoldWorkflow.release_now, HoldSignal(by="ops-1"))
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert released_at < release_at - timedelta(days=29)
    assert harness.stub.releases[0][0].actor == "ops-1"
    assert (result.status, result.held_amount) == ("released", 0)


async def test_cancel_never_releases_and_gives_the_money_back(harness: Harness) -> None:
    handle, hold_id, _ = await harness.start()

    await handle.signal(EscrowHoldWorkflow.cancel, HoldSignal(by="ops-1"))
    result = await handle.result()

    assert harness.stub.releases == []
    [(give_back, _)] = harness.stub.give_backs
    assert give_back.cancel and give_back.key.startswith(f"hold-{hold_id}-cancel-")
    assert (result.status, result.held_amount) == ("cancelled", 0)
    hold = harness.stub.holds[hold_id]
    assert (hold.returned, hold.released) == (AMOUNT, 0)


async def test_refund_to_payer_returns_what_is_held(harness: Harness) -> None:
    handle, hold_id, _ = await harness.start()

    await handle.signal(EscrowHoldWorkflow.refund_to_payer, HoldSignal())
    result = await handle.result()

    [(give_back, _)] = harness.stub.give_backs
    assert not give_back.cancel
    assert result.status == "refunded" and harness.stub.releases == []
    assert harness.stub.holds[hold_id].returned == AMOUNT


async def test_extend_releases_at_the_new_date_not_the_old(harness: Harness) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))
    later = release_at + timedelta(days=15)

    await harness.env.sleep(timedelta(days=10))  # the wait for the old date is under way
    await handle.signal(EscrowHoldWorkflow.extend, ExtendHold(release_at=later))
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert later <= released_at < later + PROMPTLY
    assert (result.status, result.release_at) == ("released", later)


async def test_an_earlier_extension_is_refused_and_the_hold_keeps_its_date(
    harness: Harness,
) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))

    await handle.signal(
        EscrowHoldWorkflow.extend, ExtendHold(release_at=release_at - timedelta(days=10))
    )
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert release_at <= released_at < release_at + PROMPTLY
    assert result.status == "released"


async def test_a_dispute_blocks_the_release_past_the_date_until_resolved(
    harness: Harness,
) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))

    await handle.signal(EscrowHoldWorkflow.dispute, DisputeHold(reason="item not delivered"))
    await harness.env.sleep(timedelta(days=40))
    assert harness.stub.releases == []
    blocked = await handle.query(EscrowHoldWorkflow.status)
    assert (blocked.status, blocked.disputed, blocked.held_amount) == ("active", True, AMOUNT)

    resolved_at = await harness.env.get_current_time()
    await handle.signal(EscrowHoldWorkflow.resolve, HoldSignal(by="ops-1"))
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert released_at >= resolved_at > release_at + timedelta(days=9)
    assert (result.status, result.disputed) == ("released", False)


async def test_release_now_while_disputed_is_refused_and_the_hold_waits(
    harness: Harness,
) -> None:
    handle, hold_id, _ = await harness.start(timedelta(days=30))

    await handle.signal(EscrowHoldWorkflow.dispute, DisputeHold(reason="chargeback"))
    await handle.signal(EscrowHoldWorkflow.release_now, HoldSignal())
    await harness.env.sleep(timedelta(days=31))
    status = await handle.query(EscrowHoldWorkflow.status)
    assert (status.status, status.held_amount) == ("active", AMOUNT)
    assert len(harness.stub.releases) == 1  # tried once, refused

    await handle.signal(EscrowHoldWorkflow.resolve, HoldSignal())
    result = await handle.result()

    assert result.status == "released"
    assert harness.stub.holds[hold_id].released == AMOUNT


async def test_two_approvers_are_needed_and_the_same_one_twice_is_not_enough(
    harness: Harness,
) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30), required_approvals=2)

    await handle.signal(EscrowHoldWorkflow.approve, ApproveHold(approver="alice"))
    await handle.signal(EscrowHoldWorkflow.approve, ApproveHold(approver="alice"))
    await harness.env.sleep(timedelta(days=35))
    assert harness.stub.releases == []
    waiting = await handle.query(EscrowHoldWorkflow.status)
    assert (waiting.status, waiting.approvals) == ("active", ["alice"])

    second_at = await harness.env.get_current_time()
    await handle.signal(EscrowHoldWorkflow.approve, ApproveHold(approver="bob"))
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert released_at >= second_at > release_at
    assert (result.status, result.approvals) == ("released", ["alice", "bob"])


async def test_approvals_before_the_date_release_at_the_date(harness: Harness) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30), required_approvals=2)

    for approver in ("alice", "bob"):
        await handle.signal(EscrowHoldWorkflow.approve, ApproveHold(approver=approver))
    result = await handle.result()

    [released_at] = harness.stub.release_times(hold_id)
    assert release_at <= released_at < release_at + PROMPTLY
    assert result.status == "released"


async def test_a_partial_release_leaves_the_rest_for_the_date(harness: Harness) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))

    await handle.signal(EscrowHoldWorkflow.release_partial, ReleasePartial(amount=2_500))
    await harness.env.sleep(timedelta(days=10))
    partial = await handle.query(EscrowHoldWorkflow.status)
    assert (partial.status, partial.held_amount) == ("partially_released", AMOUNT - 2_500)

    result = await handle.result()

    (first, first_at), (rest, rest_at) = harness.stub.releases
    assert first.amount == 2_500 and first_at < release_at
    assert rest.amount is None and release_at <= rest_at < release_at + PROMPTLY
    assert first.key != rest.key
    assert (result.status, result.held_amount) == ("released", 0)
    assert harness.stub.holds[hold_id].released == AMOUNT


async def test_a_partial_release_above_what_is_held_is_refused_not_fatal(
    harness: Harness,
) -> None:
    handle, hold_id, release_at = await harness.start(timedelta(days=30))

    await handle.signal(EscrowHoldWorkflow.release_partial, ReleasePartial(amount=AMOUNT + 1))
    await harness.env.sleep(timedelta(days=1))
    still = await handle.query(EscrowHoldWorkflow.status)
    assert (still.status, still.held_amount) == ("active", AMOUNT)

    result = await handle.result()

    (too_much, _), (rest, rest_at) = harness.stub.releases
    assert too_much.amount == AMOUNT + 1
    assert rest.amount is None and release_at <= rest_at < release_at + PROMPTLY
    assert (result.status, harness.stub.holds[hold_id].released) == ("released", AMOUNT)

"""Record a history of each workflow for the replay tests: ``python -m tests.replay.record``.

Run it when a workflow is added; never to make a changed workflow pass (that is what
``workflow.patched`` is for). Histories are recorded on the time-skipping server with
name-matched stub activities. A history already recorded is kept as it is: the point is
to replay what older code wrote, so only the missing files are written.
"""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowContinuedAsNewError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.binaries import find
from integrations.temporal import add_search_attributes
from tests.replay.record_operations import record_operations
from tests.replay.record_payments import record_payments
from tests.replay.record_reconciliation import record_reconciliation
from tests.replay.record_settlement_windows import record_settlement_windows
from tests.replay.record_subscriptions import record_subscriptions
from tests.replay.record_transfers import record_transfers
from tests.replay.record_webhooks import record_webhooks
from workflows.anchoring import AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.escrow import EscrowHoldWorkflow
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.markets import MarketResolutionWorkflow
from workflows.payouts import PayoutScheduleWorkflow
from workflows.search_attributes import ALL
from workflows.stripe_events import StripeEventDeliveryWorkflow
from workflows.tickets import TicketWorkflow
from workflows.types import (
    AnchorRunInput,
    ApproveHold,
    BatchInput,
    BatchRef,
    CancelTicket,
    CheckBatchInput,
    CheckBatchResult,
    ConfirmRunInput,
    CreateBatchInput,
    DeadLetterStripeEventInput,
    DeliverStripeEventInput,
    DisputeHold,
    DisputeMarket,
    EscrowApproveInput,
    EscrowDisputeInput,
    EscrowExtendInput,
    EscrowGiveBackInput,
    EscrowHoldInput,
    EscrowHoldState,
    EscrowLoadInput,
    EscrowReleaseInput,
    EscrowResolveInput,
    ExtendHold,
    FailBatchInput,
    HoldSignal,
    MarketLoadInput,
    MarketReasonInput,
    MarketResolutionInput,
    MarketSignal,
    MarketStartInput,
    MarketState,
    MarketStepInput,
    PayoutCancelInput,
    PayoutCompleteInput,
    PayoutFailInput,
    PayOutInput,
    PayoutLoadInput,
    PayOutResult,
    PayoutScheduleInput,
    PayoutStartRunInput,
    PayoutState,
    PurgeInput,
    PurgeResult,
    ReleasePartial,
    ResolveMarket,
    RollbackMarket,
    StripeEventDeliveryInput,
    StripeEventState,
    SubmitBatchResult,
    SubmittedBatches,
    TicketActivityInput,
    TicketActivityResult,
    TicketInput,
    TriggerPayout,
)

HISTORIES = Path(__file__).parent / "histories"


@activity.defn(name="purge_expired_idempotency_keys")
async def purge(_: PurgeInput) -> PurgeResult:
    return PurgeResult(deleted=3)


@activity.defn(name="expire_ticket")
async def expire_ticket(_: TicketActivityInput) -> TicketActivityResult:
    return TicketActivityResult(status="EXPIRED")


@activity.defn(name="cancel_ticket")
async def cancel_ticket(_: TicketActivityInput) -> TicketActivityResult:
    return TicketActivityResult(status="CANCELLED")


class AnchoringStubs:
    """The anchoring steps, scripted: batch 1 is submitted on the second attempt (the chain
    is away once) and confirmed on the second look; batch 2 is refused by the chain; of the
    submitted batches 1 and 3, batch 3 is not yet confirmed."""

    def __init__(self) -> None:
        self.batches = [
            BatchRef(batch_id=1, leaf_count=5),
            BatchRef(),
            BatchRef(batch_id=2, leaf_count=3),
        ]
        self.looks: dict[int, int] = {}

    @activity.defn(name="create_anchor_batch")
    async def create_anchor_batch(self, _: CreateBatchInput) -> BatchRef:
        return self.batches.pop(0) if self.batches else BatchRef()

    @activity.defn(name="fail_anchor_batch")
    async def fail_anchor_batch(self, _: FailBatchInput) -> None:
        return None

    @activity.defn(name="list_submitted_batches")
    async def list_submitted_batches(self, _: BatchRef) -> SubmittedBatches:
        return SubmittedBatches(batch_ids=[1, 3])

    @activity.defn(name="submit_anchor_batch")
    async def submit_anchor_batch(self, request: BatchInput) -> SubmitBatchResult:
        if request.batch_id == 2:
            raise ApplicationError(
                "the anchor transaction of batch 2 reverted",
                {"code": "contract_revert"},
                type="ChainRefused",
                non_retryable=True,
            )
        if activity.info().attempt == 1:
            raise RuntimeError("connection refused by the RPC node")
        return SubmitBatchResult(tx_hash=f"0x{request.batch_id:064x}")

    @activity.defn(name="check_anchor_batch")
    async def check_anchor_batch(self, request: CheckBatchInput) -> CheckBatchResult:
        looks = self.looks[request.batch_id] = self.looks.get(request.batch_id, 0) + 1
        if request.batch_id != 1 or looks < 2:
            return CheckBatchResult(status="SUBMITTED")
        return CheckBatchResult(
            status="CONFIRMED", confirmations=request.confirmations, block_number=42
        )


@dataclass
class StubHold:
    release_at: datetime
    required_approvals: int = 0
    amount: int = 10_000
    released: int = 0
    returned: int = 0
    status: str = "active"
    disputed: bool = False
    approvals: list[str] = field(default_factory=list)

    @property
    def held(self) -> int:
        return self.amount - self.released - self.returned

    def state(self, moved: int = 0) -> EscrowHoldState:
        return EscrowHoldState(
            status=self.status,
            held_amount=self.held,
            currency="USD",
            release_at=self.release_at,
            payer_id="payer-recorded",
            disputed=self.disputed,
            required_approvals=self.required_approvals,
            approvals=list(self.approvals),
            moved=moved,
        )


class EscrowStubs:
    """Holds kept in memory, refusing what ``services.escrow`` refuses (movement keys are
    not kept: the recorded scenarios never retry a movement)."""

    def __init__(self) -> None:
        self.holds: dict[uuid.UUID, StubHold] = {}

    @activity.defn(name="escrow_load")
    async def load(self, request: EscrowLoadInput) -> EscrowHoldState:
        return self.holds[request.hold_id].state()

    @activity.defn(name="escrow_release")
    async def release(self, request: EscrowReleaseInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        if hold.disputed or len(hold.approvals) < hold.required_approvals:
            raise ApplicationError(
                "disputed or short of approvals", type="Conflict", non_retryable=True
            )
        moved = hold.held if request.amount is None else request.amount
        if not 0 < moved <= hold.held:
            raise ApplicationError(
                f"a release moves 1 to {hold.held}", type="ValidationError", non_retryable=True
            )
        hold.released += moved
        hold.status = "released" if hold.held == 0 else "partially_released"
        return hold.state(moved)

    @activity.defn(name="escrow_give_back")
    async def give_back(self, request: EscrowGiveBackInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        moved = hold.held
        hold.returned += moved
        hold.status = "cancelled" if request.cancel else "refunded"
        return hold.state(moved)

    @activity.defn(name="escrow_extend")
    async def extend(self, request: EscrowExtendInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.release_at = request.release_at
        return hold.state()

    @activity.defn(name="escrow_dispute")
    async def dispute(self, request: EscrowDisputeInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.disputed = True
        return hold.state()

    @activity.defn(name="escrow_resolve")
    async def resolve(self, request: EscrowResolveInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        hold.disputed = False
        return hold.state()

    @activity.defn(name="escrow_approve")
    async def approve(self, request: EscrowApproveInput) -> EscrowHoldState:
        hold = self.holds[request.hold_id]
        if request.approver not in hold.approvals:
            hold.approvals.append(request.approver)
        return hold.state()


class PayoutStubs:
    """Schedules kept in memory. Stripe is away on a run's first attempt; a destination of
    ``acct_declined`` is refused on run 0 and paid on the next run."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, PayoutState] = {}
        self.destinations: dict[uuid.UUID, str] = {}

    @activity.defn(name="payout_load")
    async def load(self, request: PayoutLoadInput) -> PayoutState:
        return self.rows[request.schedule_id]

    @activity.defn(name="payout_start_run")
    async def start_run(self, request: PayoutStartRunInput) -> PayoutState:
        row = self.rows[request.schedule_id]
        if row.status == "failed":
            row.run_number += 1
            row.retry_count = 0
        row.status, row.last_error = "processing", None
        return row

    @activity.defn(name="pay_out")
    async def pay_out(self, request: PayOutInput) -> PayOutResult:
        row = self.rows[request.schedule_id]
        declined = self.destinations[request.schedule_id] == "acct_declined"
        if declined and row.run_number == 0:
            row.retry_count += 1
            raise ApplicationError(
                "the account cannot receive transfers", type="CardDeclined", non_retryable=True
            )
        if not declined and activity.info().attempt == 1:
            row.retry_count += 1
            raise ApplicationError("Stripe answered 503", type="ProviderError")
        return PayOutResult(transfer_id=f"tr_recorded_{row.run_number}")

    @activity.defn(name="payout_complete")
    async def complete(self, request: PayoutCompleteInput) -> PayoutState:
        row = self.rows[request.schedule_id]
        row.status = "completed"
        return row

    @activity.defn(name="payout_fail")
    async def fail(self, request: PayoutFailInput) -> PayoutState:
        row = self.rows[request.schedule_id]
        row.status, row.last_error = "failed", request.error
        return row

    @activity.defn(name="payout_cancel")
    async def cancel(self, request: PayoutCancelInput) -> PayoutState:
        row = self.rows[request.schedule_id]
        row.status = "cancelled"
        return row


async def save(handle: WorkflowHandle[Any, Any], name: str) -> None:
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{name}.json"
    if path.exists():
        print(f"kept {path.name}")
        return
    history = await handle.fetch_history()
    path.write_text(history.to_json())
    print(f"recorded {path.name}")


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await add_search_attributes(env.client, "default", ALL)
    try:
        queue = f"record-{uuid.uuid4()}"
        chain_queue = f"record-chain-{uuid.uuid4()}"
        stripe_queue = f"record-stripe-{uuid.uuid4()}"
        anchoring = AnchoringStubs()
        holds = EscrowStubs()
        schedules = PayoutStubs()
        async with (
            Worker(
                env.client,
                task_queue=queue,
                workflows=[
                    PurgeExpiredIdempotencyKeysWorkflow,
                    TicketWorkflow,
                    AnchorTicketsWorkflow,
                    ConfirmAnchorBatchesWorkflow,
                    EscrowHoldWorkflow,
                    PayoutScheduleWorkflow,
                ],
                activities=[
                    purge,
                    expire_ticket,
                    cancel_ticket,
                    anchoring.create_anchor_batch,
                    anchoring.fail_anchor_batch,
                    anchoring.list_submitted_batches,
                    holds.load,
                    holds.release,
                    holds.give_back,
                    holds.extend,
                    holds.dispute,
                    holds.resolve,
                    holds.approve,
                    schedules.load,
                    schedules.start_run,
                    schedules.complete,
                    schedules.fail,
                    schedules.cancel,
                ],
            ),
            Worker(env.client, task_queue=stripe_queue, activities=[schedules.pay_out]),
            Worker(
                env.client,
                task_queue=chain_queue,
                activities=[anchoring.submit_anchor_batch, anchoring.check_anchor_batch],
                max_concurrent_activities=1,
            ),
        ):
            purge_run = await env.client.start_workflow(
                PurgeExpiredIdempotencyKeysWorkflow.run,
                PurgeInput(),
                id="purge-recorded",
                task_queue=queue,
            )
            await purge_run.result()
            await save(purge_run, "purge_expired_idempotency_keys")
            now = await env.get_current_time()
            for name, cancel in (("ticket_expired", False), ("ticket_cancelled", True)):
                ticket = await env.client.start_workflow(
                    TicketWorkflow.run,
                    TicketInput(
                        ticket_id=uuid.uuid4(),
                        booking_id="bk-recorded",
                        driver_id="drv-recorded",
                        valid_until=now + timedelta(hours=1),
                    ),
                    id=f"ticket-{name}",
                    task_queue=queue,
                )
                if cancel:
                    await ticket.signal(TicketWorkflow.cancel, CancelTicket(reason="recorded"))
                await ticket.result()
                await save(ticket, name)
            # Batch 1: a retried submission, a poll, confirmed; then nothing waits.
            # Then batch 2: refused by the chain, FAILED.
            for name in ("anchor_tickets_confirmed", "anchor_tickets_refused"):
                anchor_run = await env.client.start_workflow(
                    AnchorTicketsWorkflow.run,
                    AnchorRunInput(
                        confirmations=2,
                        poll_seconds=5,
                        confirm_timeout_seconds=60,
                        chain_task_queue=chain_queue,
                    ),
                    id=f"anchor-run-{name}",
                    task_queue=queue,
                )
                await anchor_run.result()
                await save(anchor_run, name)
            confirm_run = await env.client.start_workflow(
                ConfirmAnchorBatchesWorkflow.run,
                ConfirmRunInput(confirmations=2, chain_task_queue=chain_queue),
                id="anchor-confirmations-recorded",
                task_queue=queue,
            )
            await confirm_run.result()
            await save(confirm_run, "anchor_confirmations")
            await record_escrow(env, queue, holds)
            await record_payouts(env, queue, stripe_queue, schedules)
            await record_stripe_events(env)
            await record_markets(env)
            await record_payments(env, save)
            await record_subscriptions(env, save)
            await record_webhooks(env, save)
            await record_transfers(env, save)
            await record_settlement_windows(env, save)
            await record_reconciliation(env, save)
            await record_operations(env, save)
    finally:
        await env.shutdown()


async def record_escrow(env: WorkflowEnvironment, queue: str, holds: EscrowStubs) -> None:
    """A hold approved, extended, partly released, refused a too large release, disputed past
    its date, resolved and released; another cancelled."""
    for name in ("escrow_hold_released", "escrow_hold_cancelled"):
        hold_id = uuid.uuid4()
        release_at = (await env.get_current_time()) + timedelta(days=30)
        holds.holds[hold_id] = StubHold(release_at, required_approvals=1)
        handle = await env.client.start_workflow(
            EscrowHoldWorkflow.run,
            EscrowHoldInput(hold_id=hold_id, release_at=release_at),
            id=f"escrow-hold-{name}",
            task_queue=queue,
        )
        if name == "escrow_hold_cancelled":
            await handle.signal(EscrowHoldWorkflow.cancel, HoldSignal(by="recorded"))
        else:
            await env.sleep(timedelta(days=1))  # the extension re-arms a running timer
            await handle.signal(EscrowHoldWorkflow.approve, ApproveHold(approver="recorded"))
            await handle.signal(
                EscrowHoldWorkflow.extend, ExtendHold(release_at=release_at + timedelta(days=5))
            )
            await handle.signal(EscrowHoldWorkflow.release_partial, ReleasePartial(amount=2_000))
            await handle.signal(EscrowHoldWorkflow.release_partial, ReleasePartial(amount=99_999))
            await handle.signal(EscrowHoldWorkflow.dispute, DisputeHold(reason="recorded"))
            await env.sleep(timedelta(days=40))
            await handle.signal(EscrowHoldWorkflow.resolve, HoldSignal(by="recorded"))
        await handle.result()
        await save(handle, name)


async def record_payouts(
    env: WorkflowEnvironment, queue: str, stripe_queue: str, schedules: PayoutStubs
) -> None:
    """A payout retried once then paid at its date; another declined, then triggered and
    paid on its second run."""
    for name, destination in (
        ("payout_schedule_completed", "acct_recorded"),
        ("payout_schedule_failed_then_triggered", "acct_declined"),
    ):
        schedule_id = uuid.uuid4()
        schedules.rows[schedule_id] = PayoutState(status="pending")
        schedules.destinations[schedule_id] = destination
        handle = await env.client.start_workflow(
            PayoutScheduleWorkflow.run,
            PayoutScheduleInput(
                schedule_id=schedule_id,
                scheduled_for=(await env.get_current_time()) + timedelta(days=7),
                trigger_event="milestone_reached",
                backoff_seconds=30,
                stripe_task_queue=stripe_queue,
            ),
            id=f"payout-schedule-{name}",
            task_queue=queue,
        )
        if destination == "acct_declined":
            await env.sleep(timedelta(days=8))
            await handle.signal(PayoutScheduleWorkflow.trigger, TriggerPayout(by="recorded"))
        await handle.result()
        await save(handle, name)


@activity.defn(name="deliver_stripe_event")
async def deliver_stripe_event(request: DeliverStripeEventInput) -> StripeEventState:
    """``evt_recorded_delivered`` finds its payment's workflow on the second attempt;
    ``evt_recorded_dead`` never does."""
    if request.event_id == "evt_recorded_dead" or activity.info().attempt == 1:
        raise ApplicationError("workflow payment-recorded has not started", type="TargetNotReady")
    return StripeEventState(status="processed", attempts=1, outcome="signalled payment-recorded")


@activity.defn(name="dead_letter_stripe_event")
async def dead_letter_stripe_event(request: DeadLetterStripeEventInput) -> StripeEventState:
    return StripeEventState(status="dead", attempts=3, last_error=request.error)


async def record_stripe_events(env: WorkflowEnvironment) -> None:
    """An event delivered on its second attempt; another dead-lettered after three."""
    queue = f"record-stripe-events-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StripeEventDeliveryWorkflow],
        activities=[deliver_stripe_event, dead_letter_stripe_event],
    ):
        for name, event_id in (
            ("stripe_event_delivered", "evt_recorded_delivered"),
            ("stripe_event_dead_lettered", "evt_recorded_dead"),
        ):
            handle = await env.client.start_workflow(
                StripeEventDeliveryWorkflow.run,
                StripeEventDeliveryInput(event_id=event_id, max_attempts=3),
                id=f"stripe-event-{event_id}-0",
                task_queue=queue,
            )
            await handle.result()
            await save(handle, name)


@dataclass
class StubMarket:
    status: str = "open"
    resolution_id: uuid.UUID | None = None
    resolution_status: str | None = None
    winning_option_id: uuid.UUID | None = None
    # The next distribution is refused for good (the saga compensates it).
    refuse_distribution: bool = False

    def state(self) -> MarketState:
        paid = 1_000 if self.resolution_status in ("completed", "disputed") else 0
        return MarketState(
            status=self.status,
            resolution_id=self.resolution_id,
            resolution_status=self.resolution_status,
            winning_option_id=self.winning_option_id,
            pool=paid,
            paid_out=paid,
        )


class MarketStubs:
    """Markets kept in memory, refusing what ``services.markets`` refuses; a distribution's
    first attempt finds the database away."""

    def __init__(self) -> None:
        self.markets: dict[uuid.UUID, StubMarket] = {}
        self.of_resolution: dict[uuid.UUID, StubMarket] = {}

    @activity.defn(name="market_load")
    async def load(self, request: MarketLoadInput) -> MarketState:
        return self.markets[request.market_id].state()

    @activity.defn(name="market_start_resolution")
    async def start_resolution(self, request: MarketStartInput) -> MarketState:
        market = self.markets[request.market_id]
        if market.status not in ("open", "rolled_back"):
            raise ApplicationError("not resolvable", type="Conflict", non_retryable=True)
        market.resolution_id = uuid.uuid4()
        self.of_resolution[market.resolution_id] = market
        market.status, market.resolution_status = "resolving", "distributing"
        market.winning_option_id = request.option_id
        return market.state()

    @activity.defn(name="market_distribute")
    async def distribute(self, request: MarketStepInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        if market.refuse_distribution:
            market.refuse_distribution = False
            raise ApplicationError("refused", type="ValidationError", non_retryable=True)
        if activity.info().attempt == 1:
            raise RuntimeError("the database is away")
        market.status, market.resolution_status = "resolved", "completed"
        return market.state()

    @activity.defn(name="market_abandon_resolution")
    async def abandon(self, request: MarketReasonInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        market.status, market.resolution_status = "open", "failed"
        return market.state()

    @activity.defn(name="market_dispute")
    async def dispute(self, request: MarketReasonInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        market.status = market.resolution_status = "disputed"
        return market.state()

    @activity.defn(name="market_uphold")
    async def uphold(self, request: MarketStepInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        market.status, market.resolution_status = "resolved", "completed"
        return market.state()

    @activity.defn(name="market_rollback")
    async def rollback(self, request: MarketReasonInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        market.status = market.resolution_status = "rolled_back"
        return market.state()

    @activity.defn(name="market_settle")
    async def settle(self, request: MarketStepInput) -> MarketState:
        market = self.of_resolution[request.resolution_id]
        market.status = "settled"
        return market.state()


async def record_markets(env: WorkflowEnvironment) -> None:
    """A resolution refused for good and compensated, resolved again (a retried
    distribution), resolved a third time (refused), disputed, upheld and settled; another
    resolved, disputed and rolled back (its run continues as new)."""
    queue = f"record-markets-{uuid.uuid4()}"
    stubs = MarketStubs()
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[MarketResolutionWorkflow],
        activities=[
            stubs.load,
            stubs.start_resolution,
            stubs.distribute,
            stubs.abandon,
            stubs.dispute,
            stubs.uphold,
            stubs.rollback,
            stubs.settle,
        ],
    ):
        for name in ("market_resolution_settled", "market_resolution_rolled_back"):
            market_id, option_id = uuid.uuid4(), uuid.uuid4()
            settled = name == "market_resolution_settled"
            stubs.markets[market_id] = StubMarket(refuse_distribution=settled)
            resolve = ResolveMarket(option_id=option_id, by="recorded")
            handle = await env.client.start_workflow(
                MarketResolutionWorkflow.run,
                MarketResolutionInput(market_id=market_id, dispute_window_seconds=3600),
                id=f"market-resolution-{name}",
                task_queue=queue,
                start_signal="resolve",
                start_signal_args=[resolve],
            )
            if settled:
                await handle.signal(MarketResolutionWorkflow.resolve, resolve)
                await handle.signal(MarketResolutionWorkflow.resolve, resolve)
            await handle.signal(MarketResolutionWorkflow.dispute, DisputeMarket(reason="recorded"))
            if settled:
                await handle.signal(MarketResolutionWorkflow.uphold, MarketSignal(by="recorded"))
                await handle.result()
            else:
                await handle.signal(
                    MarketResolutionWorkflow.rollback, RollbackMarket(reason="recorded")
                )
                with contextlib.suppress(WorkflowContinuedAsNewError):
                    await handle.result(follow_runs=False)
            # A signal-with-start handle names no run: save the first, not the latest.
            first = env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
            await save(first, name)


if __name__ == "__main__":
    asyncio.run(record())

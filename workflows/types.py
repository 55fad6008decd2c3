"""Inputs and outputs of workflows and activities: one model each, so fields can be added."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


class PurgeInput(BaseModel):
    """Empty today; a model so a later field (e.g. a batch size) stays compatible."""


class PurgeResult(BaseModel):
    deleted: int


class TicketInput(BaseModel):
    ticket_id: UUID
    booking_id: str
    driver_id: str
    valid_until: datetime


class TicketResult(BaseModel):
    ticket_id: UUID
    status: str


class CancelTicket(BaseModel):
    """Argument of the ``cancel`` signal an admin sends from the Temporal UI."""

    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class TicketStatusChanged(BaseModel):
    """The API changed the row (used, cancelled): the workflow stops waiting."""

    status: str


class TicketActivityInput(BaseModel):
    ticket_id: UUID
    reason: str | None = None
    actor: str = "system"


class TicketActivityResult(BaseModel):
    status: str


class AnchorRunInput(BaseModel):
    """Argument of the anchoring Schedule and of ``tollgate anchors run`` (from settings)."""

    max_leaves: int = 1000
    confirmations: int = 1
    poll_seconds: int = 5
    confirm_timeout_seconds: int = 1800
    chain_task_queue: str = "tollgate-chain"
    max_batches: int = 50


class AnchoredBatch(BaseModel):
    batch_id: int
    leaf_count: int
    status: str
    tx_hash: str | None = None
    error: str | None = None


class AnchorRunResult(BaseModel):
    batches: list[AnchoredBatch] = []
    current_batch_id: int | None = None


class CreateBatchInput(BaseModel):
    max_leaves: int


class BatchRef(BaseModel):
    """The batch a run works on; ``batch_id`` None when nothing is waiting."""

    batch_id: int | None = None
    leaf_count: int = 0


class BatchInput(BaseModel):
    batch_id: int


class SubmitBatchResult(BaseModel):
    tx_hash: str


class CheckBatchInput(BaseModel):
    batch_id: int
    confirmations: int


class CheckBatchResult(BaseModel):
    status: str
    confirmations: int = 0
    block_number: int | None = None
    error: str | None = None


class FailBatchInput(BaseModel):
    batch_id: int
    error: str


class ConfirmRunInput(BaseModel):
    confirmations: int = 1
    chain_task_queue: str = "tollgate-chain"


class SubmittedBatches(BaseModel):
    batch_ids: list[int]


class ConfirmRunResult(BaseModel):
    checked: int = Field(description="Batches whose transaction was looked at")
    confirmed: int


class EscrowHoldInput(BaseModel):
    """``escrow-hold-{id}``: what the workflow needs that does not change."""

    hold_id: UUID
    release_at: datetime


class HoldSignal(BaseModel):
    """Argument of ``release_now``, ``refund_to_payer``, ``cancel`` and ``resolve``: who sent it
    (an admin in the Temporal UI, or the API on behalf of a caller)."""

    by: str = "temporal-ui"


class ReleasePartial(BaseModel):
    amount: int
    by: str = "temporal-ui"


class ExtendHold(BaseModel):
    release_at: datetime
    by: str = "temporal-ui"


class DisputeHold(BaseModel):
    reason: str
    by: str = "temporal-ui"


class ApproveHold(BaseModel):
    approver: str


class EscrowHoldStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    hold_id: UUID
    status: str
    release_at: datetime
    held_amount: int
    disputed: bool = False
    approvals: list[str] = []


class PayoutScheduleInput(BaseModel):
    """``payout-schedule-{id}``."""

    schedule_id: UUID
    scheduled_for: datetime
    trigger_event: str
    max_attempts: int = 3
    backoff_seconds: int = 60
    stripe_task_queue: str = "tollgate-stripe"


class TriggerPayout(BaseModel):
    """Argument of ``trigger``: the event that happened (``manual`` always pays)."""

    event: str = "manual"
    by: str = "temporal-ui"


class CancelPayout(BaseModel):
    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class PayoutScheduleStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    schedule_id: UUID
    status: str
    scheduled_for: datetime
    retry_count: int = 0
    last_error: str | None = None
    stripe_transfer_id: str | None = None


class EscrowHoldState(BaseModel):
    """Output of every ``escrow_*`` activity: the row as the step left it."""

    status: str
    held_amount: int
    currency: str
    release_at: datetime
    payer_id: str
    disputed: bool = False
    required_approvals: int = 0
    approvals: list[str] = []
    moved: int = Field(0, description="What this step released or gave back")


class EscrowLoadInput(BaseModel):
    hold_id: UUID


class EscrowReleaseInput(BaseModel):
    """``key`` comes from the workflow, so a retried activity finds its movement."""

    hold_id: UUID
    key: str
    actor: str
    amount: int | None = Field(None, description="None: everything still held")


class EscrowGiveBackInput(BaseModel):
    hold_id: UUID
    key: str
    actor: str
    cancel: bool = Field(False, description="A cancellation rather than a refund")


class EscrowExtendInput(BaseModel):
    hold_id: UUID
    release_at: datetime
    actor: str


class EscrowDisputeInput(BaseModel):
    hold_id: UUID
    reason: str
    actor: str


class EscrowResolveInput(BaseModel):
    hold_id: UUID
    actor: str


class EscrowApproveInput(BaseModel):
    hold_id: UUID
    approver: str
    actor: str


class PayoutState(BaseModel):
    """Output of every ``payout_*`` database activity: the row as the step left it."""

    status: str
    retry_count: int = 0
    last_error: str | None = None
    run_number: int = 0


class PayoutLoadInput(BaseModel):
    schedule_id: UUID


class PayoutStartRunInput(BaseModel):
    schedule_id: UUID
    event: str
    actor: str


class PayoutCompleteInput(BaseModel):
    schedule_id: UUID
    transfer_id: str
    actor: str


class PayoutFailInput(BaseModel):
    schedule_id: UUID
    error: str
    actor: str
    # A refusal (Stripe stored it under the run's key) rather than retries running out.
    final: bool = False


class PayoutCancelInput(BaseModel):
    schedule_id: UUID
    reason: str
    actor: str


class PayOutInput(BaseModel):
    schedule_id: UUID


class PayOutResult(BaseModel):
    transfer_id: str


class ReschedulePayout(BaseModel):
    """Argument of ``reschedule``: the schedule's new date (the row already has it)."""

    scheduled_for: datetime
    by: str = "temporal-ui"


class RecoveryInput(BaseModel):
    task_queue: str = "tollgate"
    stripe_task_queue: str = "tollgate-stripe"


class RecoveryResult(BaseModel):
    checked: int = 0
    restarted_holds: int = 0
    restarted_payouts: int = 0

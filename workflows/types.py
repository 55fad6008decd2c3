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
    # For a subscription's restarted workflow, as the API starts it.
    subscription_retry_days: list[int] = Field(default_factory=lambda: [1, 3, 5, 7])
    subscription_dunning_outcome: str = "unpaid"
    # For a transfer batch's restarted workflow, as the API starts it.
    chain_task_queue: str = "tollgate-chain"
    transfer_concurrency: int = 20
    transfer_max_attempts: int = 8
    transfer_backoff_seconds: int = 2
    transfer_max_backoff_seconds: int = 300
    chain_poll_seconds: int = 5
    # For a reconciliation run's restarted workflow.
    reconciliation_margin_seconds: int = 3600


class RecoveryResult(BaseModel):
    checked: int = 0
    restarted_holds: int = 0
    restarted_payouts: int = 0
    restarted_subscriptions: int = 0
    restarted_transfer_batches: int = 0
    restarted_settlement_windows: int = 0
    restarted_reconciliations: int = 0


# Payments, refunds and Stripe events


class StripeEventSignal(BaseModel):
    """Argument of ``stripe_event``: a Stripe webhook event delivered to the payment or refund
    it concerns (stored first, once per event id)."""

    event_id: str
    type: str
    object_id: str | None = None
    status: str | None = Field(None, description="The Stripe object's status, when it has one")


class PaymentInput(BaseModel):
    """``payment-{id}``: what does not change, from the row and the settings at creation."""

    payment_id: UUID
    capture_delay_seconds: int | None = Field(
        None, description="Capture by itself this long after authorizing; None: by API only"
    )
    authorization_hours: int = 168
    review_timeout_hours: int = 72
    stripe_task_queue: str = "tollgate-stripe"


class CapturePayment(BaseModel):
    """Argument of ``capture``."""

    amount: int | None = Field(None, description="Part of the authorization; default: all")
    by: str = "temporal-ui"


class ClosePayment(BaseModel):
    """Argument of ``cancel`` and ``fail``."""

    reason: str = "by an operator"
    by: str = "temporal-ui"


class ReviewPayment(BaseModel):
    """Argument of ``approve_review`` and ``reject_review``."""

    notes: str | None = None
    by: str = "temporal-ui"


class PaymentState(BaseModel):
    """Output of every ``payment_*`` database activity: the row as the step left it."""

    status: str
    amount: int
    amount_authorized: int = 0
    amount_captured: int = 0
    intent_id: str | None = None
    charge_id: str | None = None
    authorization_expires_at: datetime | None = None
    risk_level: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None


class PaymentStepInput(BaseModel):
    payment_id: UUID
    actor: str


class PaymentAuthorizedInput(BaseModel):
    payment_id: UUID
    intent_id: str
    charge_id: str | None
    amount: int
    authorized_at: datetime
    expires_at: datetime
    actor: str


class PaymentReviewInput(BaseModel):
    payment_id: UUID
    decision: str
    notes: str | None
    reviewer: str


class PaymentCloseInput(BaseModel):
    payment_id: UUID
    status: str
    reason: str
    actor: str
    failure_code: str | None = None
    decline_code: str | None = None
    intent_id: str | None = None


class PaymentCompleteInput(BaseModel):
    payment_id: UUID
    amount_captured: int
    charge_id: str | None
    actor: str


class StripeIntentInput(BaseModel):
    """Input of the Stripe steps of a payment: authorize, capture, cancel."""

    payment_id: UUID
    amount: int | None = None
    reason: str | None = None


class StripeIntentResult(BaseModel):
    intent_id: str | None
    status: str
    charge_id: str | None = None
    amount_capturable: int = 0
    amount_received: int = 0
    # A declined card is an outcome of the authorization, not an error to retry.
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None


class PaymentStatusView(BaseModel):
    """The ``status`` query and the workflow's result."""

    payment_id: UUID
    status: str
    amount: int
    amount_authorized: int = 0
    amount_captured: int = 0
    authorization_expires_at: datetime | None = None
    capture_at: datetime | None = None
    risk_level: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    stripe_events: list[str] = []


class RefundInput(BaseModel):
    """``refund-{id}``."""

    refund_id: UUID
    stripe_task_queue: str = "tollgate-stripe"


class ApproveRefund(BaseModel):
    by: str = "temporal-ui"


class RejectRefund(BaseModel):
    reason: str = "rejected by an operator"
    by: str = "temporal-ui"


class RefundState(BaseModel):
    """Output of every ``refund_*`` database activity."""

    status: str
    amount: int
    stripe_refund_id: str | None = None
    failure_reason: str | None = None


class RefundStepInput(BaseModel):
    refund_id: UUID
    actor: str


class RefundRejectInput(BaseModel):
    refund_id: UUID
    reason: str
    actor: str


class RefundFailInput(BaseModel):
    refund_id: UUID
    reason: str
    code: str | None
    actor: str


class RefundCompleteInput(BaseModel):
    refund_id: UUID
    stripe_refund_id: str
    actor: str


class StripeRefundInput(BaseModel):
    refund_id: UUID


class StripeRefundResult(BaseModel):
    stripe_refund_id: str | None
    status: str
    failure_code: str | None = None
    failure_reason: str | None = None


class RefundStatusView(BaseModel):
    """The ``status`` query and the workflow's result."""

    refund_id: UUID
    status: str
    amount: int
    stripe_refund_id: str | None = None
    failure_reason: str | None = None
    stripe_events: list[str] = []


# Stripe event delivery


class StripeEventDeliveryInput(BaseModel):
    """``stripe-event-{event_id}-{delivery}``: one delivery of a stored event, with its retry
    policy (from settings: workflows never read them)."""

    event_id: str
    delivery: int = 0
    max_attempts: int = 8
    initial_interval_seconds: int = 5
    maximum_interval_seconds: int = 600


class StripeEventDeliveryStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    event_id: str
    delivery: int
    status: str
    outcome: str | None = None
    last_error: str | None = None


class DeliverStripeEventInput(BaseModel):
    event_id: str
    delivery: int


class DeadLetterStripeEventInput(BaseModel):
    """``delivery`` guards against a late retry dead-lettering a newer delivery."""

    event_id: str
    delivery: int
    error: str


class StripeEventState(BaseModel):
    """Output of every Stripe event activity: the row as the step left it."""

    status: str
    attempts: int = 0
    delivery: int = 0
    outcome: str | None = None
    last_error: str | None = None


# Prediction markets


class MarketResolutionInput(BaseModel):
    """``market-resolution-{id}``: what the workflow needs that does not change."""

    market_id: UUID
    dispute_window_seconds: int = Field(
        259_200, description="How long a completed distribution may be disputed"
    )


class ResolveMarket(BaseModel):
    """Argument of ``resolve``: the winning option."""

    option_id: UUID
    by: str = "temporal-ui"


class DisputeMarket(BaseModel):
    reason: str
    by: str = "temporal-ui"


class RollbackMarket(BaseModel):
    reason: str
    by: str = "temporal-ui"


class MarketSignal(BaseModel):
    """Argument of ``uphold``: who sent it."""

    by: str = "temporal-ui"


class MarketState(BaseModel):
    """Output of every ``market_*`` activity: the market and its latest resolution as the step
    left them."""

    status: str
    resolution_id: UUID | None = None
    resolution_status: str | None = None
    winning_option_id: UUID | None = None
    pool: int = 0
    paid_out: int = 0
    error: str | None = None


class MarketLoadInput(BaseModel):
    market_id: UUID


class MarketStartInput(BaseModel):
    """``key`` comes from the workflow, so a retried start finds its resolution."""

    market_id: UUID
    option_id: UUID
    key: str
    actor: str


class MarketStepInput(BaseModel):
    """A step on one resolution (distribute, uphold, settle)."""

    resolution_id: UUID
    actor: str


class MarketReasonInput(BaseModel):
    """A step on one resolution that carries a reason (dispute, rollback, abandon)."""

    resolution_id: UUID
    reason: str
    actor: str


class MarketResolutionStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    market_id: UUID
    status: str
    resolution_id: UUID | None = None
    resolution_status: str | None = None
    winning_option_id: UUID | None = None
    pool: int = 0
    paid_out: int = 0
    last_error: str | None = None


# Subscriptions and invoices


class SubscriptionInput(BaseModel):
    """``subscription-{id}``: one billing period per run (continue-as-new each period); the
    dunning settings come from the settings when the subscription was created."""

    subscription_id: UUID
    retry_days: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 7],
        description="Retries of a failed charge, in days after the first failure",
    )
    dunning_outcome: str = Field("unpaid", description="After the last retry: unpaid or canceled")
    stripe_task_queue: str = "tollgate-stripe"
    periods_run: int = Field(0, description="Runs before this one (continue-as-new count)")


class PauseSubscription(BaseModel):
    """Argument of ``pause``: no invoices while paused."""

    reason: str = "by an operator"
    by: str = "temporal-ui"


class ResumeSubscription(BaseModel):
    by: str = "temporal-ui"


class CancelSubscription(BaseModel):
    """Argument of ``cancel``: now, or at the end of the current period."""

    at_period_end: bool = False
    reason: str = "by an operator"
    by: str = "temporal-ui"


class ChangePlan(BaseModel):
    """Argument of ``change_plan``: the new plan; the difference is prorated."""

    plan_id: UUID
    by: str = "temporal-ui"


class RenewSubscription(BaseModel):
    """Argument of ``renew_now``: a new period starts now and is billed at once."""

    by: str = "temporal-ui"


class RetryPayment(BaseModel):
    """Argument of ``retry_payment``: charge the overdue invoice now (a new payment method,
    a bulk retry, or an operator)."""

    reason: str = "by an operator"
    by: str = "temporal-ui"


class InvoiceChanged(BaseModel):
    """Argument of ``invoice_changed``: an invoice was finalized or paid out of band, so the
    workflow reloads what it has to collect."""

    invoice_id: UUID
    by: str = "temporal-ui"


class InvoiceState(BaseModel):
    invoice_id: UUID
    number: str | None
    status: str
    total: int
    attempt_count: int
    next_payment_attempt: datetime | None = None


class SubscriptionState(BaseModel):
    """Output of every ``subscription_*`` database activity: the row as the step left it,
    whether the current period has its invoice, and the invoice to collect next."""

    status: str
    plan_id: UUID
    current_period_start: datetime
    current_period_end: datetime
    period_index: int
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    period_billed: bool = False
    open_invoice: InvoiceState | None = None


class SubscriptionStepInput(BaseModel):
    subscription_id: UUID
    at: datetime
    actor: str


class SubscriptionCancelInput(BaseModel):
    subscription_id: UUID
    at: datetime
    at_period_end: bool
    reason: str
    actor: str


class SubscriptionPauseInput(BaseModel):
    subscription_id: UUID
    at: datetime
    reason: str
    actor: str


class SubscriptionChangePlanInput(BaseModel):
    subscription_id: UUID
    plan_id: UUID
    at: datetime
    actor: str


class DunningExhaustedInput(BaseModel):
    subscription_id: UUID
    outcome: str
    at: datetime
    actor: str


class InvoiceAttemptInput(BaseModel):
    invoice_id: UUID
    trigger: str
    at: datetime
    actor: str


class InvoiceAttempt(BaseModel):
    """A charge to make (``attempt_id``), or none: the invoice is no longer open, or there is
    no payment method (then ``failure_code``)."""

    invoice: InvoiceState
    attempt_id: UUID | None = None
    attempt_number: int = 0
    has_payment_method: bool = True


class ChargeInvoiceInput(BaseModel):
    attempt_id: UUID


class ChargeInvoiceResult(BaseModel):
    """A declined card is an outcome of the charge, not an error to retry."""

    status: str = Field(description="succeeded, declined or incomplete")
    intent_id: str | None = None
    charge_id: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = None


class InvoiceAttemptOutcome(BaseModel):
    attempt_id: UUID
    charge: ChargeInvoiceResult
    retry_days: list[int]
    at: datetime
    actor: str


class SubscriptionStatusView(BaseModel):
    """The ``status`` query and the workflow's result."""

    subscription_id: UUID
    status: str | None = Field(None, description="None until the first step has run")
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    period_index: int = 0
    periods_run: int = 0
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    open_invoice: InvoiceState | None = None
    pending_operations: list[str] = []


# Transfers and batch payouts


class TransferRunOptions(BaseModel):
    """How transfers are sent (from settings, by the API): by a batch, or by a window."""

    stripe_task_queue: str = "tollgate-stripe"
    chain_task_queue: str = "tollgate-chain"
    concurrency: int = Field(20, description="Items under way at once")
    max_attempts: int = Field(8, description="Attempts of one item's transfer at the rail")
    backoff_seconds: int = Field(2, description="Wait before the second attempt; doubles")
    max_backoff_seconds: int = 300
    chain_poll_seconds: int = 5
    chain_confirm_timeout_seconds: int = 1800


class TransferBatchInput(TransferRunOptions):
    """``transfer-batch-{id}``: how the batch's items are run."""

    batch_id: UUID
    # Carried over continue-as-new: a retry asked for while the last run drained.
    retry_requested: bool = False


class RetryFailedTransfers(BaseModel):
    """Argument of ``retry_failed``: the failed items go again (new attempts)."""

    by: str = "temporal-ui"


class CancelTransferBatch(BaseModel):
    """Argument of ``cancel``: items not started are cancelled; those under way finish."""

    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class TransferBatchState(BaseModel):
    """The batch's row: its status and counts (``pending``: items not final yet)."""

    status: str
    total: int = 0
    pending: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    run_count: int = 1


class TransferBatchStepInput(BaseModel):
    batch_id: UUID
    actor: str
    retry_failed: bool = Field(False, description="Put failed items back to pending first")


class TransferItemRef(BaseModel):
    transfer_id: UUID
    rail: str
    status: str


class TransferBatchItems(BaseModel):
    """Output of ``transfer_batch_begin``: the batch, and the items this run executes."""

    state: TransferBatchState
    items: list[TransferItemRef] = []


class TransferStepInput(BaseModel):
    transfer_id: UUID
    actor: str


class TransferStarted(BaseModel):
    """Output of ``transfer_start``: what the chain rail needs to send it (``amount`` in
    base units of the chain's token)."""

    status: str
    destination: str
    amount: int
    external_id: str | None = None


class TransferSendInput(BaseModel):
    transfer_id: UUID


class TransferSendResult(BaseModel):
    external_id: str


class TransferSucceedInput(BaseModel):
    transfer_id: UUID
    external_id: str
    actor: str


class TransferFailInput(BaseModel):
    transfer_id: UUID
    error: str
    actor: str
    # The rail refused it (rather than retries running out): a retry takes a new key.
    final: bool = False


class TransferStepResult(BaseModel):
    """Output of ``transfer_succeed`` and ``transfer_fail``: the item and its batch."""

    status: str
    batch: TransferBatchState | None = None


class TransferBatchStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    batch_id: UUID
    status: str
    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    percent_done: float
    cancel_requested: bool = False


class WindowSettled(BaseModel):
    """Argument of a batch's ``window_settled``: a settlement window sent some of its items."""

    rail: str
    run_id: UUID


# Settlement windows


class SettleNow(BaseModel):
    """Argument of ``settle_now``: send every queued transfer of the rail now."""

    by: str = "temporal-ui"
    reason: str = "settled early by an operator"


class TransfersQueued(BaseModel):
    """Argument of ``enqueue``: transfers were queued for the window at ``window_at``."""

    window_at: datetime
    count: int = 1


class SettlementWindowResult(BaseModel):
    """A settled window: its record and the batches to tell."""

    run_id: UUID
    window_at: datetime
    trigger: str
    total: int
    succeeded: int
    failed: int
    batch_ids: list[UUID] = []


class SettlementWindowInput(TransferRunOptions):
    """``settlement-window-{rail}``: one run per window (continue-as-new after each)."""

    rail: str
    # Carried over continue-as-new: asked while the last window was settling.
    settle_now: SettleNow | None = None
    earliest_signalled: datetime | None = None
    last: SettlementWindowResult | None = None


class SettlementWindowStepInput(BaseModel):
    rail: str
    # None: every queued transfer (settle now), else those due by this window.
    up_to: datetime | None = None


class SettlementWindowPlan(BaseModel):
    """Output of ``settlement_window_plan``: the earliest window a queued transfer waits for."""

    next_window_at: datetime | None = None
    queued: int = 0


class SettlementWindowItems(BaseModel):
    """Output of ``settlement_window_release``: what this window sends."""

    items: list[TransferItemRef] = []


class SettlementWindowRecordInput(BaseModel):
    rail: str
    window_at: datetime
    trigger: str
    requested_by: str
    transfer_ids: list[UUID]
    started_at: datetime
    actor: str


class SettlementWindowStatus(BaseModel):
    """The ``status`` query."""

    rail: str
    next_window_at: datetime | None
    settling: int
    settle_now_requested: bool
    last: SettlementWindowResult | None = None


# Outbound webhooks


class WebhookDeliveryInput(BaseModel):
    """``webhook-delivery-{delivery_id}``: one delivery, with its endpoint's retry schedule
    (read when the workflow starts) and the limits the settings give (workflows never read
    them)."""

    delivery_id: UUID
    event_id: int = Field(0, description="The outbox event: ordered deliveries go in its order")
    retry_schedule_seconds: list[int] = Field(
        # The default of ``TOLLGATE_WEBHOOK_RETRY_SCHEDULE_SECONDS``; this module imports no
        # domain code, which the workflow sandbox would load (``domain.webhooks`` uses
        # ``secrets``).
        default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Waits before the 2nd, 3rd, ... attempt; after the last, a dead letter",
    )
    timeout_seconds: int = 10
    max_retry_after_seconds: int = Field(86_400, description="Longest Retry-After honoured")
    disable_after_days: int = Field(5, description="An endpoint failing this long is disabled")


class WebhookSendInput(BaseModel):
    delivery_id: UUID
    attempt: int
    timeout_seconds: int = 10


class WebhookSendResult(BaseModel):
    """One HTTP attempt as the sender saw it; ``skipped`` says why nothing was sent (the
    delivery is closed, or its endpoint disabled)."""

    skipped: str | None = None
    status_code: int | None = None
    retry_after_seconds: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    duration_ms: int = 0
    started_at: datetime | None = None


class WebhookRecordInput(BaseModel):
    """``retry_at`` is the next attempt's time, None when the schedule is spent."""

    delivery_id: UUID
    attempt: int
    result: WebhookSendResult
    retry_at: datetime | None = None
    at: datetime
    disable_after_days: int = 5


class WebhookCancelInput(BaseModel):
    delivery_id: UUID
    reason: str
    by: str = "webhook-delivery"


class WebhookDeliveryState(BaseModel):
    """Output of the delivery's database steps: the row as the step left it."""

    status: str
    attempt_count: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None


class RetryWebhookDelivery(BaseModel):
    """Argument of ``retry_now``: attempt at once instead of waiting out the interval."""

    by: str = "temporal-ui"


class CancelWebhookDelivery(BaseModel):
    """Argument of ``cancel``."""

    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class WebhookDeliveryStatus(BaseModel):
    """The ``status`` query and the workflow's result."""

    delivery_id: UUID
    status: str
    attempts: int = 0
    attempted_at: list[datetime] = Field(
        default_factory=list, description="Workflow time of each attempt"
    )
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None


class WebhookSequenceInput(BaseModel):
    """``webhook-ordered-{endpoint_id}-{entity_type}-{entity_id}``: the deliveries of one
    entity's events to an endpoint that wants them in order, one at a time."""

    endpoint_id: UUID
    entity_type: str
    entity_id: str
    queue: list[WebhookDeliveryInput] = Field(
        default_factory=list, description="Carried over when the run continues as new"
    )
    delivered: int = 0


class WebhookSequenceStatus(BaseModel):
    endpoint_id: UUID
    entity_type: str
    entity_id: str
    current: UUID | None = None
    queued: list[UUID] = []
    delivered: int = 0


class WebhookDispatchInput(BaseModel):
    """Argument of the dispatcher's Schedule: a run dispatches every ``interval_seconds``
    for ``run_seconds``; the next run follows it."""

    task_queue: str = "tollgate"
    interval_seconds: float = 2.0
    run_seconds: int = 60
    batch_size: int = 200
    timeout_seconds: int = 10
    max_retry_after_seconds: int = 86_400
    disable_after_days: int = 5


class WebhookDispatchResult(BaseModel):
    """Events dispatched, deliveries created and workflows started; ``more`` when a batch
    was full (the run goes on without waiting)."""

    events: int = 0
    deliveries: int = 0
    started: int = 0
    more: bool = False


class WebhookPurgeInput(BaseModel):
    retention_days: int = 90


# Chain token rail


class TokenTransferInput(BaseModel):
    """One transfer of the chain rail's ERC-20 from the platform's sender to ``destination``.

    ``transfer_id`` is the idempotency: the sender signs one transaction per transfer id
    (purpose ``transfer-{transfer_id}``), ever. ``amount`` is in the token's base units
    (6 decimals: the minor units of ``USDC``).
    """

    transfer_id: UUID
    destination: str
    amount: int


class TokenTransferResult(BaseModel):
    """Where a token transfer stands on chain.

    ``status``: ``PENDING`` (broadcast, not mined yet), ``MINED`` (succeeded, fewer than the
    required confirmations so far), ``CONFIRMED`` (at depth, and its ``Transfer`` event is
    the requested one: final), ``REVERTED`` (mined and failed: nothing moved, final; the
    transfer id cannot be sent again) or ``MISMATCH`` (mined, but its ``Transfer`` event is
    not the requested amount to the requested destination: final, for an operator).
    ``amount`` and ``destination`` are those of the mined ``Transfer`` event, when there is one.
    """

    status: str
    tx_hash: str | None = None
    block: int | None = None
    confirmations: int = 0
    amount: int | None = None
    destination: str | None = None
    error: str | None = None


# Liquidity


class LiquidityCheckInput(BaseModel):
    """Argument of the ``liquidity-check`` Schedule (from settings): the rails to check,
    the volume window, the runway alert threshold and the providers' task queues."""

    rails: list[str] = Field(default_factory=lambda: ["stripe", "chain"])
    window_days: int = 7
    alert_days: float = 2.0
    stripe_task_queue: str = "tollgate-stripe"
    chain_task_queue: str = "tollgate-chain"


class ProviderBalanceInput(BaseModel):
    """Empty today; a model so a later field stays compatible."""


class ProviderFunds(BaseModel):
    """A provider's balance of one currency, in its minor units."""

    currency: str
    available: int
    pending: int = 0


class ProviderBalance(BaseModel):
    """The balances a rail's provider reported (Stripe: per currency; the chain: its token
    float in ``USDC`` minor units)."""

    rail: str
    funds: list[ProviderFunds] = Field(default_factory=list)


class LiquidityEvaluateInput(BaseModel):
    """The balances read (rails whose provider did not answer are left out)."""

    balances: list[ProviderBalance] = Field(default_factory=list)
    window_days: int = 7
    alert_days: float = 2.0


class LiquidityPosition(BaseModel):
    rail: str
    currency: str
    available: int
    pending: int = 0
    committed: int
    free: int
    daily_volume: int
    runway_days: float | None = None
    low: bool = False


class LiquidityAlert(BaseModel):
    """An event the check recorded: ``liquidity.runway_low`` or ``.runway_recovered``."""

    event_type: str
    rail: str
    currency: str


class LiquidityCheckResult(BaseModel):
    """The check's result and its ``status`` query. ``unavailable``: rails whose balance
    could not be read (with why), left out of this check."""

    status: str = "running"
    as_of: datetime | None = None
    positions: list[LiquidityPosition] = Field(default_factory=list)
    alerts: list[LiquidityAlert] = Field(default_factory=list)
    unavailable: dict[str, str] = Field(default_factory=dict)


# Reconciliation


class ReconciliationInput(BaseModel):
    """``reconciliation-{run_id}``, the run the API created; or a run of the daily Schedule
    (``run_id`` unset), which creates its run for the period given or, by default, the
    previous UTC day. ``margin_seconds`` widens the period on both sides when records are
    read (a pair split across an edge still matches); the Stripe step runs on
    ``stripe_task_queue``, the others on the workflow's queue."""

    run_id: UUID | None = None
    trigger: str = "schedule"
    period_start: datetime | None = None
    period_end: datetime | None = None
    sources: list[str] = Field(default_factory=lambda: ["stripe", "chain"])
    stripe_task_queue: str = "tollgate-stripe"
    margin_seconds: int = 3600
    actor: str = "reconciliation"


class ReconciliationBeginInput(BaseModel):
    """``run_id`` of a run the API created, or the period and sources of one to create for
    ``workflow_id`` (found again if it exists)."""

    run_id: UUID | None = None
    workflow_id: str
    trigger: str = "schedule"
    period_start: datetime | None = None
    period_end: datetime | None = None
    sources: list[str] = []
    actor: str = "reconciliation"


class ReconciliationRunRef(BaseModel):
    run_id: UUID
    status: str
    sources: list[str]


class ReconcileSourceInput(BaseModel):
    run_id: UUID
    source: str
    margin_seconds: int = 3600


class ReconcileSourceResult(BaseModel):
    """One source's counts, as stored on the run (its records stay in the activity)."""

    source: str
    ledger_count: int = 0
    external_count: int = 0
    matched_count: int = 0
    discrepancy_count: int = 0


class ReconciliationFinishInput(BaseModel):
    """Complete the run, or with ``error`` fail it."""

    run_id: UUID
    actor: str = "reconciliation"
    error: str | None = None


class ReconciliationResult(BaseModel):
    """The run as it ended: ``match_rate`` a percentage (as a decimal string)."""

    run_id: UUID
    status: str
    ledger_count: int = 0
    external_count: int = 0
    matched_count: int = 0
    discrepancy_count: int = 0
    match_rate: str | None = None
    error: str | None = None


class ReconciliationStatus(BaseModel):
    """Answer of the reconciliation workflow's ``status`` query: the run (once begun), where
    it is, and the counts of each source done so far."""

    run_id: UUID | None = None
    status: str = "starting"
    sources: dict[str, ReconcileSourceResult] = Field(default_factory=dict)
    result: ReconciliationResult | None = None

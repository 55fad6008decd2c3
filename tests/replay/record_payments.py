"""Recorded histories of the payment and refund workflows, with name-matched stub activities
that keep each row as the services do (called by ``tests.replay.record``)."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.payments import PaymentWorkflow
from workflows.refunds import RefundWorkflow
from workflows.types import (
    ApproveRefund,
    CapturePayment,
    PaymentAuthorizedInput,
    PaymentCloseInput,
    PaymentCompleteInput,
    PaymentInput,
    PaymentReviewInput,
    PaymentState,
    PaymentStepInput,
    RefundCompleteInput,
    RefundFailInput,
    RefundInput,
    RefundRejectInput,
    RefundState,
    RefundStepInput,
    RejectRefund,
    ReviewPayment,
    StripeEventSignal,
    StripeIntentInput,
    StripeIntentResult,
    StripeRefundInput,
    StripeRefundResult,
)

AMOUNT = 5_000
Save = Callable[[WorkflowHandle[Any, Any], str], Awaitable[None]]


@dataclass
class PaymentStubs:
    rows: dict[uuid.UUID, PaymentState] = field(default_factory=dict)
    risk: dict[uuid.UUID, str] = field(default_factory=dict)
    declined: set[uuid.UUID] = field(default_factory=set)
    refunds: dict[uuid.UUID, RefundState] = field(default_factory=dict)

    def _set(self, payment_id: uuid.UUID, **changes: object) -> PaymentState:
        self.rows[payment_id] = self.rows[payment_id].model_copy(update=changes)
        return self.rows[payment_id]

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="payment_load")
        async def load(request: PaymentStepInput) -> PaymentState:
            return self.rows[request.payment_id]

        @activity.defn(name="payment_check_fraud")
        async def check_fraud(request: PaymentStepInput) -> PaymentState:
            level = self.risk[request.payment_id]
            status = "in_review" if level == "MEDIUM" else "pending"
            return self._set(request.payment_id, status=status, risk_level=level)

        @activity.defn(name="payment_review")
        async def review(request: PaymentReviewInput) -> PaymentState:
            status = "pending" if request.decision == "approve" else "failed"
            return self._set(request.payment_id, status=status)

        @activity.defn(name="payment_start_authorizing")
        async def start_authorizing(request: PaymentStepInput) -> PaymentState:
            return self._set(request.payment_id, status="authorizing")

        @activity.defn(name="payment_authorized")
        async def authorized(request: PaymentAuthorizedInput) -> PaymentState:
            return self._set(
                request.payment_id,
                status="authorized",
                amount_authorized=request.amount,
                intent_id=request.intent_id,
                authorization_expires_at=request.expires_at,
            )

        @activity.defn(name="payment_start_capture")
        async def start_capture(request: PaymentStepInput) -> PaymentState:
            return self._set(request.payment_id, status="capturing")

        @activity.defn(name="payment_complete")
        async def complete(request: PaymentCompleteInput) -> PaymentState:
            return self._set(
                request.payment_id, status="completed", amount_captured=request.amount_captured
            )

        @activity.defn(name="payment_close")
        async def close(request: PaymentCloseInput) -> PaymentState:
            return self._set(
                request.payment_id,
                status=request.status,
                failure_code=request.failure_code,
                decline_code=request.decline_code,
            )

        @activity.defn(name="stripe_authorize_payment")
        async def authorize(request: StripeIntentInput) -> StripeIntentResult:
            if request.payment_id in self.declined:
                return StripeIntentResult(
                    intent_id="pi_recorded_declined",
                    status="declined",
                    failure_code="card_declined",
                    decline_code="insufficient_funds",
                    failure_message="Your card has insufficient funds.",
                )
            return StripeIntentResult(
                intent_id=f"pi_{request.payment_id.hex[:12]}",
                status="requires_capture",
                charge_id="ch_recorded",
                amount_capturable=AMOUNT,
            )

        @activity.defn(name="stripe_capture_payment")
        async def capture(request: StripeIntentInput) -> StripeIntentResult:
            return StripeIntentResult(
                intent_id=f"pi_{request.payment_id.hex[:12]}",
                status="succeeded",
                charge_id="ch_recorded",
                amount_received=request.amount or AMOUNT,
            )

        @activity.defn(name="stripe_cancel_payment")
        async def cancel(request: StripeIntentInput) -> StripeIntentResult:
            return StripeIntentResult(
                intent_id=f"pi_{request.payment_id.hex[:12]}", status="canceled"
            )

        @activity.defn(name="refund_load")
        async def refund_load(request: RefundStepInput) -> RefundState:
            return self.refunds[request.refund_id]

        def refund_set(refund_id: uuid.UUID, **changes: object) -> RefundState:
            self.refunds[refund_id] = self.refunds[refund_id].model_copy(update=changes)
            return self.refunds[refund_id]

        @activity.defn(name="refund_approve")
        async def refund_approve(request: RefundStepInput) -> RefundState:
            return refund_set(request.refund_id, status="processing")

        @activity.defn(name="refund_reject")
        async def refund_reject(request: RefundRejectInput) -> RefundState:
            return refund_set(request.refund_id, status="rejected", failure_reason=request.reason)

        @activity.defn(name="refund_complete")
        async def refund_complete(request: RefundCompleteInput) -> RefundState:
            return refund_set(
                request.refund_id, status="completed", stripe_refund_id=request.stripe_refund_id
            )

        @activity.defn(name="refund_fail")
        async def refund_fail(request: RefundFailInput) -> RefundState:
            return refund_set(request.refund_id, status="failed", failure_reason=request.reason)

        @activity.defn(name="stripe_refund")
        async def stripe_refund(request: StripeRefundInput) -> StripeRefundResult:
            return StripeRefundResult(stripe_refund_id="re_recorded", status="succeeded")

        return [
            load,
            check_fraud,
            review,
            start_authorizing,
            authorized,
            start_capture,
            complete,
            close,
            authorize,
            capture,
            cancel,
            refund_load,
            refund_approve,
            refund_reject,
            refund_complete,
            refund_fail,
            stripe_refund,
        ]


async def record_payments(env: WorkflowEnvironment, save: Save) -> None:
    """A MEDIUM-risk payment approved, told of a Stripe event twice, partly captured; a
    payment voided after seven days; a declined one; a refund approved; one rejected."""
    stubs = PaymentStubs()
    queue = f"record-payments-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[PaymentWorkflow, RefundWorkflow],
        activities=stubs.activities(),
    ):
        for name, risk in (
            ("payment_reviewed_then_captured", "MEDIUM"),
            ("payment_voided", "LOW"),
            ("payment_declined", "LOW"),
        ):
            payment_id = uuid.uuid4()
            stubs.rows[payment_id] = PaymentState(status="pending", amount=AMOUNT)
            stubs.risk[payment_id] = risk
            if name == "payment_declined":
                stubs.declined.add(payment_id)
            handle = await env.client.start_workflow(
                PaymentWorkflow.run,
                PaymentInput(payment_id=payment_id, stripe_task_queue=queue),
                id=f"payment-{name}",
                task_queue=queue,
            )
            if name == "payment_reviewed_then_captured":
                await env.sleep(timedelta(hours=1))
                await handle.signal(PaymentWorkflow.approve_review, ReviewPayment(notes="ok"))
                await env.sleep(timedelta(hours=1))
                event = StripeEventSignal(
                    event_id="evt_recorded", type="payment_intent.amount_capturable_updated"
                )
                await handle.signal(PaymentWorkflow.stripe_event, event)
                await handle.signal(PaymentWorkflow.stripe_event, event)
                await handle.signal(PaymentWorkflow.capture, CapturePayment(amount=3_000))
            await handle.result()
            await save(handle, name)
        for name in ("refund_approved", "refund_rejected"):
            refund_id = uuid.uuid4()
            stubs.refunds[refund_id] = RefundState(status="pending_approval", amount=AMOUNT)
            refund = await env.client.start_workflow(
                RefundWorkflow.run,
                RefundInput(refund_id=refund_id, stripe_task_queue=queue),
                id=f"refund-{name}",
                task_queue=queue,
            )
            await env.sleep(timedelta(days=2))
            if name == "refund_approved":
                await refund.signal(RefundWorkflow.approve, ApproveRefund(by="recorded"))
            else:
                await refund.signal(RefundWorkflow.reject, RejectRefund(by="recorded"))
            await refund.result()
            await save(refund, name)

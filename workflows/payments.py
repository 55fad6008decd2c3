"""A payment's life: fraud check, a review when the risk is MEDIUM, authorization at Stripe
(manual capture), then capture by API, by itself after a delay, or the authorization voided
when it is not captured in time. Cancel and fail end it before capture."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.stripe_options import DATABASE, STRIPE
from workflows.types import (
    CapturePayment,
    ClosePayment,
    PaymentAuthorizedInput,
    PaymentCloseInput,
    PaymentCompleteInput,
    PaymentInput,
    PaymentReviewInput,
    PaymentState,
    PaymentStatusView,
    PaymentStepInput,
    ReviewPayment,
    StripeEventSignal,
    StripeIntentInput,
    StripeIntentResult,
)

with workflow.unsafe.imports_passed_through():
    from activities.payments import PaymentActivities, StripePaymentActivities

FINAL = frozenset({"completed", "failed", "cancelled", "voided"})
ACTOR = "payment-workflow"

PaymentStep = Callable[[PaymentActivities, Any], Awaitable[PaymentState]]


@workflow.defn(name="Payment")
class PaymentWorkflow:
    """``payment-{id}``. The row is the record; this process owns the review wait, the
    capture and expiry timers, and the Stripe calls. Ends completed, failed, cancelled or
    voided."""

    @workflow.init
    def __init__(self, payment: PaymentInput) -> None:
        self._input = payment
        self._state = PaymentState(status="pending", amount=0)
        self._capture: CapturePayment | None = None
        self._close: tuple[str, ClosePayment] | None = None
        self._review: tuple[str, ReviewPayment] | None = None
        self._capture_at: datetime | None = None
        self._intent_cancelled = False
        self._intent_captured = False
        self._events: list[str] = []
        self._seen: set[str] = set()

    @workflow.run
    async def run(self, payment: PaymentInput) -> PaymentStatusView:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(payment.payment_id)),
                sa.ENTITY_TYPE.value_set("payment"),
            ]
        )
        self._apply(await self._activity(PaymentActivities.load, self._step_input()))
        if self._state.status == "pending":
            self._apply(await self._activity(PaymentActivities.check_fraud, self._step_input()))
        while self._state.status not in FINAL:
            status = self._state.status
            if self._close is not None and status in ("pending", "in_review"):
                await self._end(*self._close)
            elif status == "in_review":
                await self._await_review()
            elif status in ("pending", "authorizing"):
                await self._authorize()
            elif status == "authorized":
                await self._await_capture()
            else:  # capturing: a capture an earlier process left under way
                await self._capture_now()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    def _step_input(self) -> PaymentStepInput:
        return PaymentStepInput(payment_id=self._input.payment_id, actor=ACTOR)

    async def _activity(self, activity: PaymentStep, request: BaseModel) -> PaymentState:
        return await workflow.execute_activity_method(activity, request, **DATABASE)

    async def _stripe(self, activity: Any, request: StripeIntentInput) -> StripeIntentResult:
        result: StripeIntentResult = await workflow.execute_activity_method(
            activity, request, task_queue=self._input.stripe_task_queue, **STRIPE
        )
        return result

    async def _await_review(self) -> None:
        """MEDIUM risk: a reviewer approves or rejects; no decision in time fails it."""
        try:
            await workflow.wait_condition(
                lambda: self._review is not None or self._close is not None,
                timeout=timedelta(hours=self._input.review_timeout_hours),
            )
        except TimeoutError:
            await self._close_step(
                "failed",
                f"no review decision within {self._input.review_timeout_hours} h",
                failure_code="review_timeout",
            )
            return
        if self._review is None:
            return  # a cancel or fail: the loop ends the payment
        decision, request = self._review
        self._review = None
        self._apply(
            await self._activity(
                PaymentActivities.review,
                PaymentReviewInput(
                    payment_id=self._input.payment_id,
                    decision=decision,
                    notes=request.notes,
                    reviewer=request.by,
                ),
            )
        )

    async def _authorize(self) -> None:
        self._apply(await self._activity(PaymentActivities.start_authorizing, self._step_input()))
        result = await self._stripe(
            StripePaymentActivities.authorize, StripeIntentInput(payment_id=self._input.payment_id)
        )
        if result.status == "declined":
            await self._close_step(
                "failed",
                result.failure_message or "the card was declined",
                failure_code=result.failure_code,
                decline_code=result.decline_code,
                intent_id=result.intent_id,
            )
            return
        if result.status != "requires_capture" or result.intent_id is None:
            # e.g. requires_action (3-D Secure): an off-session payment cannot complete it.
            await self._stripe(
                StripePaymentActivities.cancel,
                StripeIntentInput(payment_id=self._input.payment_id, reason="abandoned"),
            )
            await self._close_step(
                "failed",
                f"the authorization ended {result.status}",
                failure_code="authorization_incomplete",
                intent_id=result.intent_id,
            )
            return
        now = workflow.now()
        self._apply(
            await self._activity(
                PaymentActivities.authorized,
                PaymentAuthorizedInput(
                    payment_id=self._input.payment_id,
                    intent_id=result.intent_id,
                    charge_id=result.charge_id,
                    amount=result.amount_capturable,
                    authorized_at=now,
                    expires_at=now + timedelta(hours=self._input.authorization_hours),
                    actor=ACTOR,
                ),
            )
        )
        if self._input.capture_delay_seconds is not None:
            self._capture_at = now + timedelta(seconds=self._input.capture_delay_seconds)

    async def _await_capture(self) -> None:
        """Waits for a capture, a cancel, Stripe's word, the automatic capture or the expiry."""
        expires_at = self._state.authorization_expires_at or (
            workflow.now() + timedelta(hours=self._input.authorization_hours)
        )
        deadline = min(expires_at, self._capture_at) if self._capture_at else expires_at
        timeout = deadline - workflow.now()
        if timeout > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._capture is not None
                        or self._close is not None
                        or self._intent_cancelled
                        or self._intent_captured
                    ),
                    timeout=timeout,
                )
            except TimeoutError:
                pass
        if self._close is not None:
            status, request = self._close
            if await self._release_authorization("requested_by_customer"):
                await self._end(status, request)
        elif self._intent_cancelled:
            await self._close_step(
                "voided",
                "the authorization was cancelled at Stripe",
                failure_code="intent_cancelled",
            )
        elif (
            self._capture is not None
            or self._intent_captured
            or (self._capture_at is not None and workflow.now() >= self._capture_at)
        ):
            await self._capture_now()
        elif workflow.now() >= expires_at and await self._release_authorization("abandoned"):
            await self._close_step(
                "voided",
                f"not captured within {self._input.authorization_hours} h",
                failure_code="authorization_expired",
            )

    async def _release_authorization(self, why: str) -> bool:
        """Cancels the intent at Stripe; False when Stripe says it was captured meanwhile (in
        the dashboard): the payment then records that capture instead."""
        try:
            await self._stripe(
                StripePaymentActivities.cancel,
                StripeIntentInput(payment_id=self._input.payment_id, reason=why),
            )
        except ActivityError as refused:
            workflow.logger.warning(
                "payment %s: cancel refused (%s): recording the capture",
                self._input.payment_id,
                reason(refused),
            )
            self._close = None
            self._intent_captured = True
            return False
        return True

    async def _capture_now(self) -> None:
        amount = self._capture.amount if self._capture else None
        self._apply(await self._activity(PaymentActivities.start_capture, self._step_input()))
        try:
            result = await self._stripe(
                StripePaymentActivities.capture,
                StripeIntentInput(payment_id=self._input.payment_id, amount=amount),
            )
        except ActivityError as refused:
            # The authorization is gone (expired or cancelled at Stripe): nothing was taken.
            await self._close_step("voided", reason(refused), failure_code="authorization_gone")
            return
        self._apply(
            await self._activity(
                PaymentActivities.complete,
                PaymentCompleteInput(
                    payment_id=self._input.payment_id,
                    amount_captured=result.amount_received,
                    charge_id=result.charge_id,
                    actor=ACTOR,
                ),
            )
        )

    async def _end(self, status: str, request: ClosePayment) -> None:
        await self._close_step(status, request.reason, actor=request.by)

    async def _close_step(
        self,
        status: str,
        why: str,
        *,
        actor: str = ACTOR,
        failure_code: str | None = None,
        decline_code: str | None = None,
        intent_id: str | None = None,
    ) -> None:
        self._apply(
            await self._activity(
                PaymentActivities.close,
                PaymentCloseInput(
                    payment_id=self._input.payment_id,
                    status=status,
                    reason=why,
                    actor=actor,
                    failure_code=failure_code,
                    decline_code=decline_code,
                    intent_id=intent_id,
                ),
            )
        )

    def _apply(self, state: PaymentState) -> None:
        if state.status != self._state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])
        self._state = state

    @workflow.signal
    def capture(self, request: CapturePayment) -> None:
        """Capture the authorization, all of it or ``amount``; ignored before authorization
        completes (the API refuses it) or when the amount is not within the authorization."""
        authorized = self._state.amount_authorized
        if request.amount is not None and not 0 < request.amount <= authorized:
            workflow.logger.warning(
                "payment %s: capture of %s ignored (authorized %s)",
                self._input.payment_id,
                request.amount,
                authorized,
            )
        elif self._capture is None:
            self._capture = request

    @workflow.signal
    def cancel(self, request: ClosePayment) -> None:
        """Cancel before capture; an authorization is released at Stripe."""
        if self._close is None:
            self._close = ("cancelled", request)

    @workflow.signal
    def fail(self, request: ClosePayment) -> None:
        """Fail before capture, with the reason; an authorization is released at Stripe."""
        if self._close is None:
            self._close = ("failed", request)

    @workflow.signal
    def approve_review(self, request: ReviewPayment) -> None:
        if self._review is None:
            self._review = ("approve", request)

    @workflow.signal
    def reject_review(self, request: ReviewPayment) -> None:
        if self._review is None:
            self._review = ("reject", request)

    @workflow.signal
    def stripe_event(self, event: StripeEventSignal) -> None:
        """Stripe's word on the intent: captured or cancelled outside this workflow (the
        dashboard, or Stripe expiring the authorization) moves the payment along."""
        if event.event_id in self._seen:
            return  # a delivery retried after its signal arrived
        self._seen.add(event.event_id)
        self._events.append(event.type)
        if event.type == "payment_intent.canceled":
            self._intent_cancelled = True
        elif event.type == "payment_intent.succeeded":
            self._intent_captured = True

    @workflow.query
    def status(self) -> PaymentStatusView:
        return PaymentStatusView(
            payment_id=self._input.payment_id,
            status=self._state.status,
            amount=self._state.amount,
            amount_authorized=self._state.amount_authorized,
            amount_captured=self._state.amount_captured,
            authorization_expires_at=self._state.authorization_expires_at,
            capture_at=self._capture_at,
            risk_level=self._state.risk_level,
            failure_code=self._state.failure_code,
            decline_code=self._state.decline_code,
            stripe_events=list(self._events),
        )

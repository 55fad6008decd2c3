"""A refund's life: an approval when it is above the threshold, then the Stripe refund under
the key ``refund-{id}``, completed or failed with Stripe's reason. A refund Stripe reports as
pending waits for Stripe's webhook."""

from temporalio import workflow

from workflows import search_attributes as sa
from workflows.stripe_options import DATABASE, STRIPE
from workflows.types import (
    ApproveRefund,
    RefundCompleteInput,
    RefundFailInput,
    RefundInput,
    RefundRejectInput,
    RefundState,
    RefundStatusView,
    RefundStepInput,
    RejectRefund,
    StripeEventSignal,
    StripeRefundInput,
    StripeRefundResult,
)

with workflow.unsafe.imports_passed_through():
    from activities.refunds import RefundActivities, StripeRefundActivities

FINAL = frozenset({"completed", "failed", "rejected"})
ACTOR = "refund-workflow"
STRIPE_DONE = frozenset({"succeeded", "failed", "canceled"})


@workflow.defn(name="Refund")
class RefundWorkflow:
    """``refund-{id}``: the row is the record, this process waits for the approval and runs
    the Stripe refund."""

    @workflow.init
    def __init__(self, refund: RefundInput) -> None:
        self._input = refund
        self._state = RefundState(status="processing", amount=0)
        self._approve: ApproveRefund | None = None
        self._reject: RejectRefund | None = None
        self._stripe_status: str | None = None
        self._events: list[str] = []
        self._seen: set[str] = set()

    @workflow.run
    async def run(self, refund: RefundInput) -> RefundStatusView:
        workflow.upsert_search_attributes(
            [sa.ENTITY_ID.value_set(str(refund.refund_id)), sa.ENTITY_TYPE.value_set("refund")]
        )
        self._apply(
            await workflow.execute_activity_method(
                RefundActivities.load,
                RefundStepInput(refund_id=refund.refund_id, actor=ACTOR),
                **DATABASE,
            )
        )
        if self._state.status == "pending_approval":
            await workflow.wait_condition(
                lambda: self._approve is not None or self._reject is not None
            )
            if self._reject is not None:
                self._apply(
                    await workflow.execute_activity_method(
                        RefundActivities.reject,
                        RefundRejectInput(
                            refund_id=refund.refund_id,
                            reason=self._reject.reason,
                            actor=self._reject.by,
                        ),
                        **DATABASE,
                    )
                )
            elif self._approve is not None:
                self._apply(
                    await workflow.execute_activity_method(
                        RefundActivities.approve,
                        RefundStepInput(refund_id=refund.refund_id, actor=self._approve.by),
                        **DATABASE,
                    )
                )
        if self._state.status == "processing":
            await self._refund()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _refund(self) -> None:
        result: StripeRefundResult = await workflow.execute_activity_method(
            StripeRefundActivities.refund,
            StripeRefundInput(refund_id=self._input.refund_id),
            task_queue=self._input.stripe_task_queue,
            **STRIPE,
        )
        status = result.status
        if status not in STRIPE_DONE:
            # Pending at Stripe (some payment methods take days): its webhook says how it ended.
            await workflow.wait_condition(lambda: self._stripe_status in STRIPE_DONE)
            status = self._stripe_status or status
        if status == "succeeded" and result.stripe_refund_id is not None:
            self._apply(
                await workflow.execute_activity_method(
                    RefundActivities.complete,
                    RefundCompleteInput(
                        refund_id=self._input.refund_id,
                        stripe_refund_id=result.stripe_refund_id,
                        actor=ACTOR,
                    ),
                    **DATABASE,
                )
            )
            return
        self._apply(
            await workflow.execute_activity_method(
                RefundActivities.fail,
                RefundFailInput(
                    refund_id=self._input.refund_id,
                    reason=result.failure_reason or f"Stripe reported the refund {status}",
                    code=result.failure_code or f"refund_{status}",
                    actor=ACTOR,
                ),
                **DATABASE,
            )
        )

    def _apply(self, state: RefundState) -> None:
        if state.status != self._state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])
        self._state = state

    @workflow.signal
    def approve(self, request: ApproveRefund) -> None:
        """Approve a refund waiting for approval; then it is sent to Stripe."""
        if self._reject is None:
            self._approve = request

    @workflow.signal
    def reject(self, request: RejectRefund) -> None:
        """Refuse a refund waiting for approval: its amount is refundable again."""
        if self._approve is None:
            self._reject = request

    @workflow.signal
    def stripe_event(self, event: StripeEventSignal) -> None:
        if event.event_id in self._seen:
            return  # a delivery retried after its signal arrived
        self._seen.add(event.event_id)
        self._events.append(event.type)
        if event.type.startswith("refund.") and event.status is not None:
            self._stripe_status = event.status

    @workflow.query
    def status(self) -> RefundStatusView:
        return RefundStatusView(
            refund_id=self._input.refund_id,
            status=self._state.status,
            amount=self._state.amount,
            stripe_refund_id=self._state.stripe_refund_id,
            failure_reason=self._state.failure_reason,
            stripe_events=list(self._events),
        )

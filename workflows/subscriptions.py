"""A subscription's life: a trial that converts or cancels, then one run per billing period:
the period's invoice is created, finalized and charged at its start, a failed charge is
retried on the dunning schedule, and at the period's end the workflow continues as new for
the next one, so its history stays small however long the subscription lives."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.stripe_options import DATABASE, STRIPE
from workflows.types import (
    CancelSubscription,
    ChangePlan,
    ChargeInvoiceInput,
    ChargeInvoiceResult,
    DunningExhaustedInput,
    InvoiceAttemptInput,
    InvoiceAttemptOutcome,
    InvoiceChanged,
    InvoiceState,
    PauseSubscription,
    RenewSubscription,
    ResumeSubscription,
    RetryPayment,
    SubscriptionCancelInput,
    SubscriptionChangePlanInput,
    SubscriptionInput,
    SubscriptionPauseInput,
    SubscriptionState,
    SubscriptionStatusView,
    SubscriptionStepInput,
)

with workflow.unsafe.imports_passed_through():
    from activities.subscriptions import StripeSubscriptionActivities, SubscriptionActivities

ACTOR = "subscription-workflow"


@workflow.defn(name="Subscription")
class SubscriptionWorkflow:
    """``subscription-{id}``. The row is the record; this process owns the trial and period
    timers, the charges and the dunning schedule. Operations arrive as signals and are
    applied in order between steps, never in the middle of a charge."""

    @workflow.init
    def __init__(self, subscription: SubscriptionInput) -> None:
        self._input = subscription
        self._state: SubscriptionState | None = None
        self._operations: list[tuple[str, BaseModel]] = []
        self._retry: RetryPayment | None = None
        self._invoices_changed = False
        self._advanced = False

    @workflow.run
    async def run(self, subscription: SubscriptionInput) -> SubscriptionStatusView:
        workflow.upsert_search_attributes(
            [
                sa.ENTITY_ID.value_set(str(subscription.subscription_id)),
                sa.ENTITY_TYPE.value_set("subscription"),
            ]
        )
        state = await self._db(SubscriptionActivities.begin, self._step())
        while True:
            if self._operations:
                await self._operate(*self._operations.pop(0))
                continue
            state = self._current()
            if self._advanced:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._operations:
                    workflow.continue_as_new(
                        self._input.model_copy(update={"periods_run": self._input.periods_run + 1})
                    )
                continue
            status = state.status
            if status == "canceled":
                break
            now = workflow.now()
            if status == "trialing":
                assert state.trial_end is not None
                if now >= state.trial_end:
                    await self._db(SubscriptionActivities.convert_trial, self._step())
                else:
                    await self._wait(state.trial_end)
            elif state.cancel_at_period_end and now >= state.current_period_end:
                await self._cancel_now("canceled at the end of its period", ACTOR)
            elif status == "paused":
                await self._end_period_or_wait(state)
            elif status == "unpaid":
                self._invoices_changed = False
                await self._wait(None, retry=True)
                if self._retry is not None and state.open_invoice is not None:
                    await self._charge(state.open_invoice, self._retry_trigger())
            elif state.open_invoice is not None:
                await self._collect(state.open_invoice)
            elif not state.period_billed:
                self._retry = None
                await self._db(SubscriptionActivities.bill, self._step())
            else:
                self._retry = None
                await self._end_period_or_wait(state)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    def _current(self) -> SubscriptionState:
        assert self._state is not None
        return self._state

    def _step(self) -> SubscriptionStepInput:
        return SubscriptionStepInput(
            subscription_id=self._input.subscription_id, at=workflow.now(), actor=ACTOR
        )

    async def _db(self, activity: Any, request: BaseModel) -> SubscriptionState:
        state: SubscriptionState = await workflow.execute_activity_method(
            activity, request, **DATABASE
        )
        self._apply(state)
        return state

    def _apply(self, state: SubscriptionState) -> None:
        if self._state is None or state.status != self._state.status:
            workflow.upsert_search_attributes([sa.STATUS.value_set(state.status)])
        if (
            self._state is not None
            and state.current_period_start != self._state.current_period_start
            and state.status != "canceled"
        ):
            self._advanced = True  # a new period: this run is done, the next one bills it
        self._state = state

    async def _end_period_or_wait(self, state: SubscriptionState) -> None:
        """At the period's end the next one starts (a paused subscription skips it); the
        run then continues as new."""
        if workflow.now() >= state.current_period_end:
            await self._db(SubscriptionActivities.advance, self._step())
        else:
            await self._wait(state.current_period_end)

    async def _wait(self, deadline: datetime | None, *, retry: bool = False) -> None:
        """Until ``deadline``, an operation, an invoice change, or (``retry``) a retry."""

        def woken() -> bool:
            return (
                bool(self._operations)
                or self._invoices_changed
                or (retry and self._retry is not None)
            )

        if deadline is None:
            await workflow.wait_condition(woken)
        elif deadline > workflow.now():
            try:
                await workflow.wait_condition(woken, timeout=deadline - workflow.now())
            except TimeoutError:
                pass
        if self._invoices_changed:
            self._invoices_changed = False
            await self._db(SubscriptionActivities.load, self._step())

    def _retry_trigger(self) -> str:
        retry, self._retry = self._retry, None
        return f"retry: {retry.reason}" if retry is not None else "dunning"

    async def _collect(self, invoice: InvoiceState) -> None:
        """Charges an open invoice now, or when its next dunning attempt is due."""
        if invoice.attempt_count == 0:
            await self._charge(invoice, "invoice finalized")
        elif self._retry is not None:
            await self._charge(invoice, self._retry_trigger())
        elif invoice.next_payment_attempt is None:
            # The schedule ran out (a crash came between the last attempt and this step).
            await self._exhausted()
        elif workflow.now() >= invoice.next_payment_attempt:
            await self._charge(invoice, "dunning")
        else:
            state = self._current()
            deadline = invoice.next_payment_attempt
            if state.cancel_at_period_end:
                deadline = min(deadline, state.current_period_end)
            await self._wait(deadline, retry=True)

    async def _charge(self, invoice: InvoiceState, trigger: str) -> None:
        started = await workflow.execute_activity_method(
            SubscriptionActivities.start_attempt,
            InvoiceAttemptInput(
                invoice_id=invoice.invoice_id, trigger=trigger[:20], at=workflow.now(), actor=ACTOR
            ),
            **DATABASE,
        )
        if started.attempt_id is None:
            await self._db(SubscriptionActivities.load, self._step())
            return
        if started.has_payment_method:
            charge = await self._stripe_charge(started.attempt_id)
        else:
            charge = ChargeInvoiceResult(
                status="declined",
                failure_code="no_payment_method",
                failure_message="the customer has no payment method to charge",
            )
        state = await self._db(
            SubscriptionActivities.finish_attempt,
            InvoiceAttemptOutcome(
                attempt_id=started.attempt_id,
                charge=charge,
                retry_days=self._input.retry_days,
                at=workflow.now(),
                actor=ACTOR,
            ),
        )
        unpaid = state.open_invoice
        if (
            charge.status != "succeeded"
            and state.status == "past_due"
            and unpaid is not None
            and unpaid.invoice_id == invoice.invoice_id
            and unpaid.next_payment_attempt is None
        ):
            await self._exhausted()

    async def _stripe_charge(self, attempt_id: Any) -> ChargeInvoiceResult:
        try:
            result: ChargeInvoiceResult = await workflow.execute_activity_method(
                StripeSubscriptionActivities.charge_invoice,
                ChargeInvoiceInput(attempt_id=attempt_id),
                task_queue=self._input.stripe_task_queue,
                **STRIPE,
            )
        except ActivityError as refused:
            return ChargeInvoiceResult(
                status="refused", failure_code="charge_refused", failure_message=reason(refused)
            )
        return result

    async def _exhausted(self) -> None:
        await self._db(
            SubscriptionActivities.dunning_exhausted,
            DunningExhaustedInput(
                subscription_id=self._input.subscription_id,
                outcome=self._input.dunning_outcome,
                at=workflow.now(),
                actor=ACTOR,
            ),
        )

    async def _cancel_now(self, why: str, by: str) -> None:
        await self._db(
            SubscriptionActivities.cancel,
            SubscriptionCancelInput(
                subscription_id=self._input.subscription_id,
                at=workflow.now(),
                at_period_end=False,
                reason=why,
                actor=by,
            ),
        )

    async def _operate(self, name: str, request: BaseModel) -> None:
        """Applies one operation; a refusal (say, resuming an active subscription) is
        logged and changes nothing."""
        subscription_id, now = self._input.subscription_id, workflow.now()
        try:
            if isinstance(request, PauseSubscription):
                await self._db(
                    SubscriptionActivities.pause,
                    SubscriptionPauseInput(
                        subscription_id=subscription_id,
                        at=now,
                        reason=request.reason,
                        actor=request.by,
                    ),
                )
            elif isinstance(request, ResumeSubscription):
                await self._db(
                    SubscriptionActivities.resume,
                    SubscriptionStepInput(
                        subscription_id=subscription_id, at=now, actor=request.by
                    ),
                )
            elif isinstance(request, CancelSubscription):
                await self._db(
                    SubscriptionActivities.cancel,
                    SubscriptionCancelInput(
                        subscription_id=subscription_id,
                        at=now,
                        at_period_end=request.at_period_end,
                        reason=request.reason,
                        actor=request.by,
                    ),
                )
            elif isinstance(request, ChangePlan):
                await self._db(
                    SubscriptionActivities.change_plan,
                    SubscriptionChangePlanInput(
                        subscription_id=subscription_id,
                        plan_id=request.plan_id,
                        at=now,
                        actor=request.by,
                    ),
                )
            elif isinstance(request, RenewSubscription):
                await self._db(
                    SubscriptionActivities.renew,
                    SubscriptionStepInput(
                        subscription_id=subscription_id, at=now, actor=request.by
                    ),
                )
        except ActivityError as refused:
            workflow.logger.warning(
                "subscription %s: %s refused: %s", subscription_id, name, reason(refused)
            )

    @workflow.signal
    def pause(self, request: PauseSubscription) -> None:
        """No invoices while paused: periods that end are skipped."""
        self._operations.append(("pause", request))

    @workflow.signal
    def resume(self, request: ResumeSubscription) -> None:
        """Active again; outside a billed period a new one starts and is billed now."""
        self._operations.append(("resume", request))

    @workflow.signal
    def cancel(self, request: CancelSubscription) -> None:
        """Now (what is owed is written off) or at the end of the current period."""
        self._operations.append(("cancel", request))

    @workflow.signal
    def change_plan(self, request: ChangePlan) -> None:
        """Switch plan now; the difference is prorated onto the next invoice."""
        self._operations.append(("change_plan", request))

    @workflow.signal
    def renew_now(self, request: RenewSubscription) -> None:
        """End the current period (or trial) now and bill a new one."""
        self._operations.append(("renew_now", request))

    @workflow.signal
    def retry_payment(self, request: RetryPayment) -> None:
        """Charge the overdue invoice now (a new payment method, or a bulk retry)."""
        self._retry = request

    @workflow.signal
    def invoice_changed(self, request: InvoiceChanged) -> None:
        self._invoices_changed = True

    @workflow.query
    def status(self) -> SubscriptionStatusView:
        view = SubscriptionStatusView(
            subscription_id=self._input.subscription_id,
            periods_run=self._input.periods_run,
            pending_operations=[name for name, _ in self._operations],
        )
        if self._state is None:
            return view
        return view.model_copy(
            update={
                "status": self._state.status,
                "current_period_start": self._state.current_period_start,
                "current_period_end": self._state.current_period_end,
                "period_index": self._state.period_index,
                "trial_end": self._state.trial_end,
                "cancel_at_period_end": self._state.cancel_at_period_end,
                "open_invoice": self._state.open_invoice,
            }
        )

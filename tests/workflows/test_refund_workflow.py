"""The refund workflow on the time-skipping server, with the real activities: a test database
and the Stripe sandbox. A payment is first authorized and captured at the sandbox by its own
workflow; its refunds are then created as the API creates them and run by ``refund-{id}``."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.payments import PaymentActivities, StripePaymentActivities
from activities.refunds import RefundActivities, StripeRefundActivities
from domain.actors import Actor, Role
from domain.errors import Conflict
from domain.fraud import FraudRules
from domain.payments import RefundReason
from integrations import stripe_payments
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction
from models.payments import Payment, Refund
from services import payments, refunds
from tests.fixtures.payments import add_card, new_payment
from tests.fixtures.stripe_sandbox import StripeSandbox
from worker import WORKFLOW_RUNNER
from workflows.payments import PaymentWorkflow
from workflows.refunds import RefundWorkflow
from workflows.types import (
    ApproveRefund,
    CapturePayment,
    PaymentInput,
    RefundInput,
    RefundStatusView,
    RejectRefund,
    StripeRefundInput,
)

ADMIN = Actor("billing-1", Role.BILLING_ADMIN)
THRESHOLD = 5_000  # refunds above this wait for an `approve`
RefundHandle = WorkflowHandle[RefundWorkflow, RefundStatusView]


@dataclass
class Run:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    client: stripe.StripeClient
    sandbox: StripeSandbox
    task_queue: str


@pytest.fixture
async def run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    client = stripe_sandbox.client()
    task_queue = f"refunds-{uuid.uuid4()}"
    payment_steps = PaymentActivities(db, FraudRules())
    stripe_payment_steps = StripePaymentActivities(db, client)
    refund_steps = RefundActivities(db)
    stripe_refund_steps = StripeRefundActivities(db, client)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[PaymentWorkflow, RefundWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            payment_steps.load,
            payment_steps.check_fraud,
            payment_steps.review,
            payment_steps.start_authorizing,
            payment_steps.authorized,
            payment_steps.start_capture,
            payment_steps.complete,
            payment_steps.close,
            stripe_payment_steps.authorize,
            stripe_payment_steps.capture,
            stripe_payment_steps.cancel,
            refund_steps.load,
            refund_steps.approve,
            refund_steps.reject,
            refund_steps.complete,
            refund_steps.fail,
            stripe_refund_steps.refund,
        ],
    ):
        yield Run(time_skipping_env, db, client, stripe_sandbox, task_queue)


async def until(handle: WorkflowHandle[Any, Any], status: str) -> None:
    """Waits, in real time, for the workflow's activities (run for real) to reach ``status``."""
    for _ in range(200):
        view = await handle.query("status", result_type=dict)
        if view["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workflow never reached {status}")


async def completed_payment(run: Run, amount: int = 10_000) -> Payment:
    """A payment authorized and captured at the sandbox by its workflow."""
    method = await add_card(run.db, run.client, f"cust-{uuid.uuid4().hex[:8]}")
    payment = await new_payment(run.db, method, amount)
    handle = await run.env.client.start_workflow(
        PaymentWorkflow.run,
        PaymentInput(payment_id=payment.id, stripe_task_queue=run.task_queue),
        id=f"payment-{payment.id}",
        task_queue=run.task_queue,
    )
    await until(handle, "authorized")
    await handle.signal(PaymentWorkflow.capture, CapturePayment(by="admin-1"))
    result = await handle.result()
    assert (result.status, result.amount_captured) == ("completed", amount)
    async with run.db() as session:
        return await payments.get(session, payment.id)


async def request_refund(run: Run, payment: Payment, amount: int) -> Refund:
    """Created and committed as the API does, before its workflow starts."""
    async with run.db() as session, session.begin():
        return await refunds.create_refund(
            session,
            payment_id=payment.id,
            amount=amount,
            reason=RefundReason.REQUESTED_BY_CUSTOMER,
            actor=ADMIN,
            approval_threshold=THRESHOLD,
        )


async def start(run: Run, refund: Refund) -> RefundHandle:
    return await run.env.client.start_workflow(
        RefundWorkflow.run,
        RefundInput(refund_id=refund.id, stripe_task_queue=run.task_queue),
        id=f"refund-{refund.id}",
        task_queue=run.task_queue,
    )


async def refund_postings(run: Run, refund_id: uuid.UUID) -> dict[str, int]:
    async with run.db() as session:
        rows = await session.execute(
            select(LedgerAccount.code, LedgerPosting.amount)
            .join(LedgerPosting, LedgerPosting.account_id == LedgerAccount.id)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
            .where(LedgerTransaction.external_ref == f"refund-{refund_id}")
        )
        return {code: amount for code, amount in rows}


async def state(run: Run, payment_id: uuid.UUID, refund_id: uuid.UUID) -> tuple[Payment, Refund]:
    async with run.db() as session:
        return await payments.get(session, payment_id), await refunds.get(session, refund_id)


async def test_a_refund_under_the_threshold_completes_at_stripe_once(run: Run) -> None:
    payment = await completed_payment(run)
    refund = await request_refund(run, payment, 3_000)
    assert refund.status == "processing"

    result = await (await start(run, refund)).result()

    assert result.status == "completed"
    assert result.amount == 3_000
    assert result.stripe_refund_id is not None
    stored_payment, stored = await state(run, payment.id, refund.id)
    assert (stored.status, stored.stripe_refund_id) == ("completed", result.stripe_refund_id)
    assert (stored_payment.amount_refunded, stored_payment.amount_refund_pending) == (3_000, 0)
    # One money movement at Stripe under the refund's key, of the refund's amount.
    [moved] = run.sandbox.movements(idempotency_key=f"refund-{refund.id}")
    assert (moved["kind"], moved["object_id"], moved["amount"]) == (
        "refund",
        result.stripe_refund_id,
        3_000,
    )
    assert moved["related"]["charge"] == stored_payment.stripe_charge_id
    at_stripe = await run.client.v1.refunds.retrieve_async(result.stripe_refund_id)
    assert (at_stripe.status, at_stripe.amount) == ("succeeded", 3_000)
    # And once in the ledger: the card payments account gives back what the platform held.
    assert await refund_postings(run, refund.id) == {
        "stripe:card-payments": -3_000,
        "platform:commission": 3_000,
    }


async def test_the_stripe_refund_run_again_does_not_refund_twice(run: Run) -> None:
    payment = await completed_payment(run)
    refund = await request_refund(run, payment, 1_000)
    result = await (await start(run, refund)).result()
    assert result.status == "completed"
    assert payment.stripe_payment_intent_id is not None

    # The Stripe call repeated under the refund's key (an activity retried after a lost
    # answer) replays the first refund instead of making a second.
    replayed = await stripe_payments.refund(
        run.client,
        refund_id=str(refund.id),
        payment_id=str(payment.id),
        intent_id=payment.stripe_payment_intent_id,
        amount=1_000,
        reason="requested_by_customer",
    )
    assert replayed.refund_id == result.stripe_refund_id
    # The activity run again once the refund is completed refuses before calling Stripe.
    steps = StripeRefundActivities(run.db, run.client)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(steps.refund, StripeRefundInput(refund_id=refund.id))
    assert (refused.value.type, refused.value.non_retryable) == ("Conflict", True)
    assert len(run.sandbox.movements(idempotency_key=f"refund-{refund.id}")) == 1
    async with run.db() as session:
        assert (await payments.get(session, payment.id)).amount_refunded == 1_000


async def test_a_refund_above_the_threshold_waits_for_approval(run: Run) -> None:
    payment = await completed_payment(run)
    refund = await request_refund(run, payment, 7_000)
    assert refund.status == "pending_approval"
    handle = await start(run, refund)
    await until(handle, "pending_approval")

    await run.env.sleep(timedelta(days=5))

    assert (await handle.query(RefundWorkflow.status)).status == "pending_approval"
    assert run.sandbox.movements(idempotency_key=f"refund-{refund.id}") == []
    _, waiting = await state(run, payment.id, refund.id)
    assert waiting.status == "pending_approval"

    await handle.signal(RefundWorkflow.approve, ApproveRefund(by="billing-boss"))
    result = await handle.result()

    assert result.status == "completed"
    stored_payment, stored = await state(run, payment.id, refund.id)
    assert (stored.status, stored.approved_by) == ("completed", "billing-boss")
    assert (stored_payment.amount_refunded, stored_payment.amount_refund_pending) == (7_000, 0)
    [moved] = run.sandbox.movements(idempotency_key=f"refund-{refund.id}")
    assert moved["amount"] == 7_000
    assert await refund_postings(run, refund.id) == {
        "stripe:card-payments": -7_000,
        "platform:commission": 7_000,
    }


async def test_a_rejected_refund_ends_rejected_and_its_amount_is_refundable_again(
    run: Run,
) -> None:
    payment = await completed_payment(run)
    refund = await request_refund(run, payment, 10_000)
    handle = await start(run, refund)
    await until(handle, "pending_approval")
    # Nothing else fits while it is reserved.
    with pytest.raises(Conflict) as refused:
        await request_refund(run, payment, 1)
    assert refused.value.code == "refund_exceeds_captured"

    await handle.signal(RefundWorkflow.reject, RejectRefund(reason="no receipt", by="boss"))
    result = await handle.result()

    assert (result.status, result.failure_reason) == ("rejected", "no receipt")
    stored_payment, stored = await state(run, payment.id, refund.id)
    assert stored.status == "rejected"
    assert (stored_payment.amount_refunded, stored_payment.amount_refund_pending) == (0, 0)
    assert run.sandbox.movements(idempotency_key=f"refund-{refund.id}") == []
    assert await refund_postings(run, refund.id) == {}
    # The whole capture is refundable again.
    again = await request_refund(run, payment, 4_000)
    assert (await (await start(run, again)).result()).status == "completed"
    assert (await state(run, payment.id, again.id))[0].amount_refunded == 4_000

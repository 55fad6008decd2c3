"""The payment workflow on the time-skipping server, with the real activities: a test
database and the Stripe sandbox. Days pass in the server's skipped time."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.payments import PaymentActivities, StripePaymentActivities
from domain.fraud import FraudRules
from models.ledger import LedgerTransaction
from models.payments import FraudCheck
from services import payments
from tests.fixtures.payments import add_card, new_payment
from tests.fixtures.stripe_sandbox import StripeSandbox
from worker import WORKFLOW_RUNNER
from workflows.payments import PaymentWorkflow
from workflows.types import CapturePayment, PaymentInput, PaymentStatusView, ReviewPayment

# A card added just now scores 10 (new payment method): LOW under the default rules, MEDIUM
# under these.
STRICT = FraudRules(medium_threshold=10, high_threshold=90)


@dataclass
class Run:
    env: WorkflowEnvironment
    db: async_sessionmaker[AsyncSession]
    client: stripe.StripeClient
    task_queue: str


async def _run(
    env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    sandbox: StripeSandbox,
    rules: FraudRules,
) -> AsyncIterator[Run]:
    client = sandbox.client()
    task_queue = f"payments-{uuid.uuid4()}"
    database = PaymentActivities(db, rules)
    stripe_steps = StripePaymentActivities(db, client)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[PaymentWorkflow],
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            database.load,
            database.check_fraud,
            database.review,
            database.start_authorizing,
            database.authorized,
            database.start_capture,
            database.complete,
            database.close,
            stripe_steps.authorize,
            stripe_steps.capture,
            stripe_steps.cancel,
        ],
    ):
        yield Run(env, db, client, task_queue)


@pytest.fixture
async def run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    async for value in _run(time_skipping_env, db, stripe_sandbox, FraudRules()):
        yield value


@pytest.fixture
async def strict_run(
    time_skipping_env: WorkflowEnvironment,
    db: async_sessionmaker[AsyncSession],
    stripe_sandbox: StripeSandbox,
) -> AsyncIterator[Run]:
    async for value in _run(time_skipping_env, db, stripe_sandbox, STRICT):
        yield value


async def start(
    run: Run, token: str = "pm_card_visa", capture_delay_seconds: int | None = None
) -> tuple[uuid.UUID, WorkflowHandle[PaymentWorkflow, PaymentStatusView]]:
    method = await add_card(run.db, run.client, f"cust-{uuid.uuid4().hex[:8]}", token)
    payment = await new_payment(run.db, method, 5_000, capture_delay_seconds=capture_delay_seconds)
    handle = await run.env.client.start_workflow(
        PaymentWorkflow.run,
        PaymentInput(
            payment_id=payment.id,
            capture_delay_seconds=capture_delay_seconds,
            stripe_task_queue=run.task_queue,
        ),
        id=f"payment-{payment.id}",
        task_queue=run.task_queue,
    )
    return payment.id, handle


async def until(handle: WorkflowHandle[PaymentWorkflow, PaymentStatusView], status: str) -> None:
    """Waits, in real time, for the workflow to reach ``status`` (activities run for real)."""
    for _ in range(200):
        if (await handle.query(PaymentWorkflow.status)).status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"payment never reached {status}")


async def test_an_authorization_not_captured_is_voided_after_seven_days(run: Run) -> None:
    payment_id, handle = await start(run)
    await until(handle, "authorized")
    await run.env.sleep(timedelta(days=6, hours=23))
    assert (await handle.query(PaymentWorkflow.status)).status == "authorized"

    result = await handle.result()

    assert result.status == "voided"
    async with run.db() as session:
        payment = await payments.get(session, payment_id)
    assert payment.failure_code == "authorization_expired"
    assert payment.authorized_at is not None and payment.authorization_expires_at is not None
    assert payment.authorization_expires_at - payment.authorized_at == timedelta(days=7)
    assert payment.stripe_payment_intent_id is not None
    intent = await run.client.v1.payment_intents.retrieve_async(payment.stripe_payment_intent_id)
    assert intent.status == "canceled"
    assert intent.cancellation_reason == "abandoned"
    assert payment.amount_captured == 0


async def test_a_low_risk_payment_is_captured_by_the_capture_signal(run: Run) -> None:
    payment_id, handle = await start(run)
    await until(handle, "authorized")

    await handle.signal(PaymentWorkflow.capture, CapturePayment(amount=3_000, by="admin-1"))
    result = await handle.result()

    assert result.status == "completed"
    assert result.amount_captured == 3_000
    async with run.db() as session:
        payment = await payments.get(session, payment_id)
        check = await session.scalar(select(FraudCheck).where(FraudCheck.payment_id == payment_id))
        posted = await session.scalar(
            select(LedgerTransaction).where(
                LedgerTransaction.external_ref == f"payment-{payment_id}-capture"
            )
        )
    assert check is not None and check.risk_level == "LOW" and check.status == "passed"
    assert payment.amount_captured == 3_000
    assert posted is not None
    assert payment.stripe_payment_intent_id is not None
    intent = await run.client.v1.payment_intents.retrieve_async(payment.stripe_payment_intent_id)
    assert (intent.status, intent.amount_received) == ("succeeded", 3_000)


async def test_capture_happens_by_itself_after_the_configured_delay(run: Run) -> None:
    _, handle = await start(run, capture_delay_seconds=3_600)
    await until(handle, "authorized")
    await run.env.sleep(timedelta(minutes=50))
    assert (await handle.query(PaymentWorkflow.status)).status == "authorized"

    result = await handle.result()

    assert (result.status, result.amount_captured) == ("completed", 5_000)


async def test_a_medium_risk_payment_waits_for_review_then_is_captured(strict_run: Run) -> None:
    run = strict_run
    payment_id, handle = await start(run)
    await until(handle, "in_review")
    await run.env.sleep(timedelta(hours=48))
    assert (await handle.query(PaymentWorkflow.status)).status == "in_review"
    async with run.db() as session:
        payment = await payments.get(session, payment_id)
    assert payment.stripe_payment_intent_id is None  # nothing was sent to Stripe

    await handle.signal(PaymentWorkflow.approve_review, ReviewPayment(notes="known", by="rev-1"))
    await until(handle, "authorized")
    await handle.signal(PaymentWorkflow.capture, CapturePayment(by="admin-1"))
    result = await handle.result()

    assert (result.status, result.risk_level, result.amount_captured) == (
        "completed",
        "MEDIUM",
        5_000,
    )
    async with run.db() as session:
        check = await session.scalar(select(FraudCheck).where(FraudCheck.payment_id == payment_id))
    assert check is not None
    assert (check.status, check.reviewed_by, check.review_notes) == ("approved", "rev-1", "known")


async def test_a_medium_risk_payment_rejected_in_review_fails_unauthorized(
    strict_run: Run,
) -> None:
    run = strict_run
    payment_id, handle = await start(run)
    await until(handle, "in_review")

    await handle.signal(PaymentWorkflow.reject_review, ReviewPayment(notes="stolen", by="rev-2"))
    result = await handle.result()

    assert result.status == "failed"
    async with run.db() as session:
        payment = await payments.get(session, payment_id)
        check = await session.scalar(select(FraudCheck).where(FraudCheck.payment_id == payment_id))
    assert payment.failure_code == "fraud_review_rejected"
    assert payment.stripe_payment_intent_id is None
    assert check is not None and check.status == "rejected"


async def test_a_review_nobody_decides_fails_the_payment_after_the_timeout(
    strict_run: Run,
) -> None:
    payment_id, handle = await start(strict_run)
    await until(handle, "in_review")

    result = await handle.result()

    assert result.status == "failed"
    async with strict_run.db() as session:
        payment = await payments.get(session, payment_id)
    assert payment.failure_code == "review_timeout"


async def test_a_declined_card_fails_the_payment_with_the_decline_code(run: Run) -> None:
    payment_id, handle = await start(run, token="pm_card_chargeDeclinedInsufficientFunds")

    result = await handle.result()

    assert (result.status, result.decline_code) == ("failed", "insufficient_funds")
    async with run.db() as session:
        payment = await payments.get(session, payment_id)
    assert payment.failure_code == "card_declined"

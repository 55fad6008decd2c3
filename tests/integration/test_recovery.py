"""The daily safety net starts the workflow of every hold still holding money, every open
payout schedule and every subscription not canceled whose workflow is missing, and leaves
running ones alone."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.recovery import RecoveryActivities
from domain.actors import SYSTEM
from domain.escrow import HoldReason, TriggerEvent
from domain.money import Money
from domain.subscriptions import Interval
from services import escrow, payouts, plans, subscriptions
from workflows.types import RecoveryInput

pytestmark = pytest.mark.integration


async def test_missing_workflows_are_started_once(
    local_temporal: WorkflowEnvironment, db: async_sessionmaker[AsyncSession]
) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    async with db() as session, session.begin():
        hold = await escrow.create_hold(
            session,
            payer_id="buyer-1",
            payee_id="seller-1",
            money=Money(5000, "USD"),
            reason=HoldReason.OTHER,
            release_at=later,
            actor=SYSTEM,
        )
        schedule = await payouts.create_schedule(
            session,
            payee_id="seller-1",
            destination="acct_seller1",
            money=Money(5000, "USD"),
            trigger_event=TriggerEvent.MANUAL,
            scheduled_for=later,
            actor=SYSTEM,
        )
        settled = await escrow.create_hold(
            session,
            payer_id="buyer-2",
            payee_id="seller-2",
            money=Money(100, "USD"),
            reason=HoldReason.OTHER,
            release_at=later,
            actor=SYSTEM,
        )
        await escrow.give_back(session, settled.id, key="settled", actor=SYSTEM, cancel=True)
        plan = await plans.create_plan(
            session,
            name="Monthly",
            price=Money(900, "USD"),
            interval=Interval.MONTH,
            interval_count=1,
            trial_days=14,
            actor=SYSTEM,
        )
        subscription = await subscriptions.create_subscription(
            session, customer_id="cust-1", plan=plan, at=datetime.now(UTC), actor=SYSTEM
        )
        ended = await subscriptions.create_subscription(
            session, customer_id="cust-2", plan=plan, at=datetime.now(UTC), actor=SYSTEM
        )
        await subscriptions.cancel(
            session, ended.id, at=datetime.now(UTC), at_period_end=False, reason="t", actor=SYSTEM
        )
    # Nobody polls this queue: the test looks at what was started, not at it running.
    request = RecoveryInput(task_queue=f"recovery-{uuid.uuid4()}", stripe_task_queue="unused")
    recovery = RecoveryActivities(db, local_temporal.client)

    first = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)
    second = await ActivityEnvironment().run(recovery.restart_missing_workflows, request)

    assert (first.restarted_holds, first.restarted_payouts, first.restarted_subscriptions) == (
        1,
        1,
        1,
    )
    assert (second.restarted_holds, second.restarted_payouts, second.restarted_subscriptions) == (
        0,
        0,
        0,
    )
    client = local_temporal.client
    for workflow_id in (
        f"escrow-hold-{hold.id}",
        f"payout-schedule-{schedule.id}",
        f"subscription-{subscription.id}",
    ):
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status is WorkflowExecutionStatus.RUNNING
        assert described.task_queue == request.task_queue
        await client.get_workflow_handle(workflow_id).terminate("test over")

"""Temporal Schedules of the project's periodic jobs, created or updated idempotently.

``tollgate schedules sync`` (run by the worker at start) makes the server match this list.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from settings import Settings, reconciliation_sources
from workflows.anchoring import AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.liquidity import LiquidityCheckWorkflow
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.recovery import RestartMissingWorkflowsWorkflow
from workflows.tickets import PurgeExpiredTicketsWorkflow
from workflows.types import (
    AnchorRunInput,
    ConfirmRunInput,
    LiquidityCheckInput,
    PurgeInput,
    ReconciliationInput,
    RecoveryInput,
    WebhookDispatchInput,
    WebhookPurgeInput,
)
from workflows.webhooks import PurgeWebhookLogsWorkflow, WebhookDispatcherWorkflow

ANCHORING_SCHEDULE = "tickets-anchoring"
WEBHOOK_DISPATCHER_SCHEDULE = "webhook-dispatcher"
LIQUIDITY_SCHEDULE = "liquidity-check"
RECONCILIATION_SCHEDULE = "reconciliation-daily"


@dataclass(frozen=True)
class PeriodicJob:
    schedule_id: str
    workflow: Any
    argument: Any
    spec: ScheduleSpec
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP
    catchup_window: timedelta = timedelta(hours=1)


def jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """The periodic jobs, with the arguments and intervals the settings give them."""
    return (
        PeriodicJob(
            "idempotency-keys-purge",
            PurgeExpiredIdempotencyKeysWorkflow.run,
            PurgeInput(),
            ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
        PeriodicJob(
            "tickets-cleanup",
            PurgeExpiredTicketsWorkflow.run,
            PurgeInput(),
            ScheduleSpec(cron_expressions=["0 2 * * *"], time_zone_name="UTC"),
        ),
        PeriodicJob(
            ANCHORING_SCHEDULE,
            AnchorTicketsWorkflow.run,
            anchor_run_input(settings),
            ScheduleSpec(
                intervals=[
                    ScheduleIntervalSpec(every=timedelta(minutes=settings.anchor_interval_minutes))
                ]
            ),
        ),
        PeriodicJob(
            "escrow-payouts-recovery",
            RestartMissingWorkflowsWorkflow.run,
            RecoveryInput(
                task_queue=settings.task_queue,
                stripe_task_queue=settings.stripe_task_queue,
                subscription_retry_days=settings.subscription_retry_days,
                subscription_dunning_outcome=settings.subscription_dunning_outcome.value,
                chain_task_queue=settings.chain_task_queue,
                transfer_concurrency=settings.transfer_concurrency,
                transfer_max_attempts=settings.transfer_max_attempts,
                transfer_backoff_seconds=settings.transfer_backoff_seconds,
                transfer_max_backoff_seconds=settings.transfer_max_backoff_seconds,
                chain_poll_seconds=settings.chain_poll_seconds,
                reconciliation_margin_seconds=settings.reconciliation_margin_minutes * 60,
            ),
            ScheduleSpec(cron_expressions=["30 3 * * *"], time_zone_name="UTC"),
        ),
        PeriodicJob(
            "anchor-confirmations",
            ConfirmAnchorBatchesWorkflow.run,
            ConfirmRunInput(
                confirmations=settings.chain_confirmations,
                chain_task_queue=settings.chain_task_queue,
            ),
            ScheduleSpec(
                intervals=[
                    ScheduleIntervalSpec(
                        every=timedelta(minutes=settings.anchor_confirm_interval_minutes)
                    )
                ]
            ),
        ),
        *webhook_jobs(settings),
        *liquidity_jobs(settings),
        *reconciliation_jobs(settings),
    )


def webhook_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """The webhook dispatcher, started every minute: each run dispatches every few seconds
    for a minute, and the one start buffered while it runs follows it at once, so dispatch
    never pauses (a one-minute gap only if a run overruns by more than a minute). Old
    delivery logs are purged daily."""
    return (
        PeriodicJob(
            WEBHOOK_DISPATCHER_SCHEDULE,
            WebhookDispatcherWorkflow.run,
            WebhookDispatchInput(
                task_queue=settings.task_queue,
                interval_seconds=settings.webhook_dispatch_interval_seconds,
                run_seconds=60,
                timeout_seconds=settings.webhook_timeout_seconds,
                max_retry_after_seconds=settings.webhook_max_retry_after_seconds,
                disable_after_days=settings.webhook_disable_after_days,
            ),
            ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))]),
            overlap=ScheduleOverlapPolicy.BUFFER_ONE,
            catchup_window=timedelta(minutes=1),
        ),
        PeriodicJob(
            "webhook-logs-purge",
            PurgeWebhookLogsWorkflow.run,
            WebhookPurgeInput(retention_days=settings.webhook_log_retention_days),
            ScheduleSpec(cron_expressions=["45 3 * * *"], time_zone_name="UTC"),
        ),
    )


def liquidity_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """The hourly liquidity check of the enabled rails: balances, runway, alerts."""
    return (
        PeriodicJob(
            LIQUIDITY_SCHEDULE,
            LiquidityCheckWorkflow.run,
            liquidity_check_input(settings),
            ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )


def reconciliation_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """The daily reconciliation of the previous UTC day (the workflow works the day out
    from its start time), after the margin past midnight has gone by. A run missed while
    the cluster was down is still started within the day."""
    return (
        PeriodicJob(
            RECONCILIATION_SCHEDULE,
            ReconciliationWorkflow.run,
            reconciliation_input(settings),
            ScheduleSpec(cron_expressions=[settings.reconciliation_cron], time_zone_name="UTC"),
            catchup_window=timedelta(hours=20),
        ),
    )


def reconciliation_input(
    settings: Settings, run_id: Any = None, trigger: str = "schedule"
) -> ReconciliationInput:
    """What a reconciliation run needs from the settings (workflows never read them)."""
    return ReconciliationInput(
        run_id=run_id,
        trigger=trigger,
        sources=reconciliation_sources(settings),
        stripe_task_queue=settings.stripe_task_queue,
        margin_seconds=settings.reconciliation_margin_minutes * 60,
    )


def liquidity_check_input(settings: Settings) -> LiquidityCheckInput:
    return LiquidityCheckInput(
        rails=list(settings.rail_routing.enabled),
        window_days=settings.liquidity_window_days,
        alert_days=settings.liquidity_runway_alert_days,
        stripe_task_queue=settings.stripe_task_queue,
        chain_task_queue=settings.chain_task_queue,
    )


def anchor_run_input(settings: Settings) -> AnchorRunInput:
    """What an anchoring run needs from the settings (workflows never read them)."""
    return AnchorRunInput(
        max_leaves=settings.anchor_batch_size,
        confirmations=settings.chain_confirmations,
        poll_seconds=settings.chain_poll_seconds,
        chain_task_queue=settings.chain_task_queue,
    )


def build_schedule(job: PeriodicJob, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            job.workflow, job.argument, id=f"{job.schedule_id}-run", task_queue=task_queue
        ),
        spec=job.spec,
        policy=SchedulePolicy(overlap=job.overlap, catchup_window=job.catchup_window),
    )


async def sync(client: Client, settings: Settings) -> dict[str, str]:
    """Create missing schedules and update existing ones; returns what it did per id."""
    done: dict[str, str] = {}
    for job in jobs(settings):
        schedule = build_schedule(job, settings.task_queue)
        try:
            await client.create_schedule(job.schedule_id, schedule)
            done[job.schedule_id] = "created"
        except ScheduleAlreadyRunningError:

            def replace(current: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                # Keep what operators set in the UI (paused, notes); replace the definition.
                new.state = current.description.schedule.state
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(job.schedule_id).update(replace)
            done[job.schedule_id] = "updated"
    return done

"""``escrow-payouts-recovery``: the daily safety net that restarts the workflow of any hold
still holding money, payout schedule still open or subscription not canceled whose workflow
is missing."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import search_attributes as sa
from workflows.types import RecoveryInput, RecoveryResult

with workflow.unsafe.imports_passed_through():
    from activities.recovery import RecoveryActivities


@workflow.defn(name="RestartMissingWorkflows")
class RestartMissingWorkflowsWorkflow:
    @workflow.run
    async def run(self, request: RecoveryInput) -> RecoveryResult:
        workflow.upsert_search_attributes([sa.ENTITY_TYPE.value_set("recovery")])
        return await workflow.execute_activity_method(
            RecoveryActivities.restart_missing_workflows,
            request,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )

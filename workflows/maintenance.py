"""Housekeeping workflows started by Temporal Schedules."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import search_attributes as sa
from workflows.types import PurgeInput, PurgeResult

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import MaintenanceActivities


@workflow.defn(name="PurgeExpiredIdempotencyKeys")
class PurgeExpiredIdempotencyKeysWorkflow:
    """Deletes Idempotency-Keys older than their 24 hours; a Schedule runs it hourly."""

    def __init__(self) -> None:
        self._status = "running"
        self._deleted: int | None = None

    @workflow.run
    async def run(self, request: PurgeInput) -> PurgeResult:
        workflow.upsert_search_attributes([sa.STATUS.value_set("running")])
        result = await workflow.execute_activity_method(
            MaintenanceActivities.purge_expired_idempotency_keys,
            request,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(minutes=1),
                maximum_attempts=10,
            ),
        )
        self._status, self._deleted = "completed", result.deleted
        workflow.upsert_search_attributes([sa.STATUS.value_set("completed")])
        return result

    @workflow.query
    def status(self) -> dict[str, object]:
        return {"status": self._status, "deleted": self._deleted}

"""The liquidity check a Schedule (``liquidity-check``) runs every hour: the providers'
balances, read on their own task queues, then the positions and the runway alerts, computed
and recorded in one database step (see ``services/liquidity.py``)."""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows import search_attributes as sa
from workflows.failures import reason
from workflows.types import (
    LiquidityCheckInput,
    LiquidityCheckResult,
    LiquidityEvaluateInput,
    ProviderBalance,
    ProviderBalanceInput,
)

with workflow.unsafe.imports_passed_through():
    from activities.liquidity import (
        ChainBalanceActivities,
        LiquidityActivities,
        StripeBalanceActivities,
    )

FINAL_ERRORS = ["ValidationError", "NotFound", "Conflict", "ChainRefused"]
# A provider down for a few minutes is waited out; longer, the rail is left out of this run
# (the next run, an hour later, tries again) rather than holding up the other rail.
PROVIDER: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=FINAL_ERRORS,
    ),
}
DATABASE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=1),
        maximum_attempts=10,
        non_retryable_error_types=FINAL_ERRORS,
    ),
}


@workflow.defn(name="LiquidityCheck")
class LiquidityCheckWorkflow:
    """``liquidity-check-run``. Reads each rail's balance (Stripe on the Stripe task queue,
    the chain float on the chain task queue), then computes every position and records
    ``liquidity.runway_low`` / ``liquidity.runway_recovered`` for those that crossed the
    threshold since their last event. A rail whose provider does not answer is left out and
    named in ``unavailable`` (status ``degraded`` unless a position is ``low``). Answers
    ``status`` with the positions."""

    def __init__(self) -> None:
        self._result = LiquidityCheckResult()

    @workflow.run
    async def run(self, request: LiquidityCheckInput) -> LiquidityCheckResult:
        workflow.upsert_search_attributes(
            [sa.ENTITY_TYPE.value_set("liquidity"), sa.STATUS.value_set("running")]
        )
        reads = await asyncio.gather(*(self._read(rail, request) for rail in request.rails))
        balances = [balance for balance in reads if balance is not None]
        unavailable = dict(self._result.unavailable)
        if balances:
            result = await workflow.execute_activity_method(
                LiquidityActivities.evaluate,
                LiquidityEvaluateInput(
                    balances=balances,
                    window_days=request.window_days,
                    alert_days=request.alert_days,
                ),
                **DATABASE,
            )
        else:
            result = LiquidityCheckResult(status="ok", as_of=workflow.now())
        if unavailable and result.status != "low":
            result.status = "degraded"
        result.unavailable = unavailable
        self._result = result
        workflow.upsert_search_attributes([sa.STATUS.value_set(result.status)])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _read(self, rail: str, request: LiquidityCheckInput) -> ProviderBalance | None:
        try:
            if rail == "stripe":
                return await workflow.execute_activity_method(
                    StripeBalanceActivities.stripe_balance,
                    ProviderBalanceInput(),
                    task_queue=request.stripe_task_queue,
                    **PROVIDER,
                )
            if rail == "chain":
                return await workflow.execute_activity_method(
                    ChainBalanceActivities.chain_balance,
                    ProviderBalanceInput(),
                    task_queue=request.chain_task_queue,
                    **PROVIDER,
                )
        except ActivityError as failed:
            self._result.unavailable[rail] = reason(failed)
            return None
        self._result.unavailable[rail] = f"no balance reader for the rail {rail!r}"
        return None

    @workflow.query
    def status(self) -> LiquidityCheckResult:
        return self._result

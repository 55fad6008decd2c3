"""Activity options of the workflows that move money through Stripe (payments, refunds,
subscriptions): database steps retried briefly; Stripe calls retried until Stripe answers,
under the same idempotency key every time, so money is never left half-moved. Business
refusals (a declined card, a validation error, a state conflict) are final."""

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from workflows.activity_options import database_step

FINAL_ERRORS = ["CardDeclined", "ValidationError", "NotFound", "Conflict", "IdempotencyError"]
DATABASE = database_step(FINAL_ERRORS)
STRIPE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=5),
        non_retryable_error_types=FINAL_ERRORS,
    ),
}

"""Activity options shared by the workflows: a database step is short and retried until the
database is back (from 1 s, doubling, at most a minute apart); a business refusal (invalid,
missing, in the wrong state, or what the caller adds) is final."""

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

REFUSALS = ("ValidationError", "NotFound", "Conflict")


def database_step(final_errors: tuple[str, ...] | list[str] = REFUSALS) -> dict[str, Any]:
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
            non_retryable_error_types=list(final_errors),
        ),
    }

"""How workflows describe an activity's failure, for the row's ``last_error`` and the logs."""

from temporalio.exceptions import ActivityError, ApplicationError


def reason(error: ActivityError) -> str:
    """``Type: message`` of a business refusal; the cause's text otherwise."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}"
    return str(cause or error)

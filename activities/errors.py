"""How activities report failures to Temporal.

Business refusals (not found, validation, state conflicts, declined cards) are final: they
become non-retryable ``ApplicationError``s typed by their class. Provider failures
(``ProviderError``) and unexpected errors stay retryable under the caller's retry policy.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from domain.errors import ProviderError, TollgateError


@contextmanager
def business_errors() -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except TollgateError as exc:
        raise ApplicationError(
            exc.message, {"code": exc.code}, type=type(exc).__name__, non_retryable=True
        ) from exc

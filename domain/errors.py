"""Errors of the domain: each carries a stable code; the API maps codes to HTTP statuses."""

from typing import Any


class TollgateError(Exception):
    """Base of every error the project raises on purpose.

    ``type`` groups codes the way Stripe's error types do (``invalid_request_error``,
    ``idempotency_error``, ...); ``code`` is the machine-readable reason; ``param`` names the
    offending input when there is one.
    """

    type = "api_error"
    code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, param: str | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.details = details


class ValidationError(TollgateError):
    type = "invalid_request_error"
    code = "validation_failed"


class NotFound(TollgateError):
    type = "invalid_request_error"
    code = "resource_missing"


class Conflict(TollgateError):
    """The request is valid but the entity's state does not allow it."""

    type = "invalid_request_error"
    code = "state_conflict"


class IdempotencyError(TollgateError):
    type = "idempotency_error"
    code = "idempotency_key_reused"


class AuthenticationError(TollgateError):
    type = "authentication_error"
    code = "unauthenticated"


class PermissionDenied(TollgateError):
    type = "permission_error"
    code = "forbidden"


class ProviderError(TollgateError):
    """An outside system (Stripe, the chain) failed; retrying may succeed."""

    type = "api_error"
    code = "provider_unavailable"


class CardDeclined(TollgateError):
    """A business refusal from the card network: never retried."""

    type = "card_error"
    code = "card_declined"


class ChainRefused(TollgateError):
    """The chain or the sender's limits refuse a transaction (a revert, a gas cap): resending
    the same transaction cannot help, so it is final."""

    type = "api_error"
    code = "chain_refused"


class RateLimited(TollgateError):
    """The caller sent more requests than its limit allows; ``retry_after`` (whole seconds)
    says when the next one may go."""

    type = "rate_limit_error"
    code = "rate_limited"

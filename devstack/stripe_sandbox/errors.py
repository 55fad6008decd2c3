"""Stripe's error envelope: ``{"error": {"type", "code", "message", "param", ...}}``."""

from typing import Any


class StripeError(Exception):
    """An error response. Raised from a handler it undoes the handler's writes, unless
    ``keep_changes``: a declined card leaves a failed charge and events behind, as on Stripe."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        keep_changes: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.keep_changes = keep_changes
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            self.body["param"] = param
        self.body.update(extra)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.body}


def invalid(message: str, *, code: str | None = None, param: str | None = None) -> StripeError:
    return StripeError(400, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unexpected_state(message: str, *, param: str | None = None) -> StripeError:
    return invalid(message, code="payment_intent_unexpected_state", param=param)

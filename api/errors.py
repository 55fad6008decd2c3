"""The one error envelope: ``{"error": {"type", "code", "message", "param"}}``.

Domain errors carry codes; this module alone decides their HTTP statuses.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

from domain.errors import (
    AuthenticationError,
    CardDeclined,
    ChainRefused,
    Conflict,
    IdempotencyError,
    NotFound,
    PermissionDenied,
    ProviderError,
    TollgateError,
    ValidationError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[TollgateError], int] = {
    ValidationError: 400,
    IdempotencyError: 400,
    CardDeclined: 402,
    AuthenticationError: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    ProviderError: 503,
    ChainRefused: 502,
}


def status_of(error: TollgateError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def envelope(type_: str, code: str, message: str, param: str | None = None) -> dict[str, object]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


def error_response(error: TollgateError) -> JSONResponse:
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = envelope(error.type, error.code, error.message, error.param)
    # A refusal of many things at once (a batch's items) lists each one's problem.
    errors = error.details.get("errors")
    if isinstance(errors, list):
        body = {"error": {**_fields(body), "errors": errors}}
    return JSONResponse(body, status, headers=headers)


def _fields(body: dict[str, object]) -> dict[str, object]:
    inner = body["error"]
    assert isinstance(inner, dict)
    return inner


async def _tollgate_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TollgateError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    message = f"{'.'.join(location) or 'request'}: {first.get('msg', 'invalid')}"
    return JSONResponse(
        envelope("invalid_request_error", "parameter_invalid", message, ".".join(location) or None),
        400,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        envelope("invalid_request_error", code, str(exc.detail)),
        exc.status_code,
        headers=exc.headers,
    )


async def _temporal_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("Temporal call failed: %s", exc)
    return error_response(ProviderError("the workflow service is unavailable; retry shortly"))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(envelope("api_error", "internal_error", "Internal server error"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TollgateError, _tollgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_exception_handler(Exception, _unexpected)

"""The one error envelope: ``{"error": {"type", "code", "message", "param"}}``.

Domain errors carry codes; this module alone decides their HTTP statuses.
"""

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
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
    RateLimited,
    TollgateError,
    ValidationError,
)
from observability.logs import request_id_var

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
    RateLimited: 429,
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
    if status == 429 and isinstance(error.details.get("retry_after"), int):
        headers = {"Retry-After": str(error.details["retry_after"])}
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
    code = {
        404: "route_not_found",
        405: "method_not_allowed",
        413: "request_too_large",
    }.get(exc.status_code, "http_error")
    return JSONResponse(
        envelope("invalid_request_error", code, str(exc.detail)),
        exc.status_code,
        headers=exc.headers,
    )


async def _unstorable_value(_: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL refused a value the client sent (a NUL character in a text, a number past
    its column's range): bad input, so a 400; the request's transaction was rolled back."""
    assert isinstance(exc, DataError)
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
    log.info("value refused by the database: %s", reason)
    return JSONResponse(
        envelope(
            "invalid_request_error", "parameter_invalid", f"a value cannot be stored: {reason}"
        ),
        400,
    )


# PostgreSQL gone (restarting, unreachable), the pool exhausted, or a transaction it aborted
# (a serialization failure, a lock or statement timeout): nothing the client did, and a retry
# may succeed, so a 503 in the envelope, never a 500 with the driver's words.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
RETRY_AFTER_SECONDS = "5"


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or every error of a group, as a task group raises) is the database
    failing, not a bug."""
    if isinstance(exc, BaseExceptionGroup):
        return all(database_unavailable(inner) for inner in exc.exceptions)
    return isinstance(exc, DATABASE_UNAVAILABLE)


def _database_unavailable_response(exc: BaseException) -> JSONResponse:
    log.warning("database unavailable: %s", (str(exc).splitlines() or [type(exc).__name__])[0])
    response = error_response(
        ProviderError(
            "the database cannot serve the request right now; retry shortly",
            code="database_unavailable",
        )
    )
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _database_unavailable_response(exc)


class DatabaseUnavailableMiddleware:
    """Around the middlewares that use the database before the route (idempotency keys): an
    outage they meet is the same 503, not an error for the last-resort handler, which
    answers too but then re-raises it (a stack trace in the log, a 500 in the access log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started or not database_unavailable(exc):
                raise
            await _database_unavailable_response(exc)(scope, receive, send)


async def _temporal_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("Temporal call failed: %s", exc)
    return error_response(ProviderError("the workflow service is unavailable; retry shortly"))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        # Raised outside the routes (the idempotency middleware reads its keys first), so it
        # reaches this last-resort handler rather than ``_database_unavailable``.
        return _database_unavailable_response(exc)
    log.exception("unhandled error", exc_info=exc)
    # Served outside the request middleware: the id that ties the answer to the log is put
    # here (it is still the context's, see api/request_context.py).
    request_id = request_id_var.get()
    return JSONResponse(
        envelope("api_error", "internal_error", "Internal server error"),
        500,
        headers={"X-Request-Id": request_id} if request_id else None,
    )


ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorEnvelope",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "param"],
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}

ERROR_RESPONSES: dict[str, dict[str, Any]] = {
    "4XX": {
        "description": "Refused, nothing changed: 400 bad input (malformed JSON, a wrong type,"
        " an unknown field, a value out of range), 401, 403, 404, 409, 413 a body too large",
    },
    "5XX": {
        "description": "503: Temporal, the database or a provider (Stripe, the chain) cannot"
        " be reached, retry; 502: the chain refused",
    },
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation's errors in the OpenAPI document as they are answered: the envelope
    for 4xx and 5xx, instead of FastAPI's 422 ``detail`` list, which is never sent (a
    validation error is a 400 in the envelope)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            for status, response in ERROR_RESPONSES.items():
                responses.setdefault(status, {**response, "content": content})
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)
    return schema


def _install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    app.add_exception_handler(TollgateError, _tollgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    _install_openapi(app)

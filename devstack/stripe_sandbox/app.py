"""The HTTP face of the sandbox: Stripe's ``/v1/`` wire format, and ``/_sandbox/`` controls."""

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import idempotency
from .config import SandboxConfig
from .context import API_VERSION, Context
from .control import control_routes
from .errors import StripeError
from .forms import FormError, parse_form
from .params import Params
from .sandbox import Sandbox, encode
from .store import new_id

log = logging.getLogger(__name__)

_KEY_PREFIXES = ("sk_test_", "rk_test_")
# Longest processing delay a request may ask for with ``Sandbox-Delay``.
MAX_DELAY_SECONDS = 30.0


def create_app(config: SandboxConfig | None = None) -> Starlette:
    sandbox = Sandbox(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    app = Starlette(
        routes=[
            *control_routes(),
            Route("/v1/{path:path}", api, methods=["GET", "POST", "DELETE"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app


async def api(request: Request) -> Response:
    sandbox: Sandbox = request.app.state.sandbox
    request_id = new_id("req_", 14)
    headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
    try:
        fault = sandbox.faults.choose(request.headers.get("Sandbox-Fault"))
    except ValueError as exc:
        return _error(StripeError(400, "invalid_request_error", str(exc)), headers)
    if fault == "500":
        return _error(StripeError(500, "api_error", "An unknown error occurred"), headers)
    if fault == "429":
        limited = StripeError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here"
            " https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
        return _error(limited, headers)
    response = await _serve(sandbox, request, request_id, headers)
    if fault == "timeout":
        # The work is done (and any Idempotency-Key result stored); only the answer is late.
        await asyncio.sleep(sandbox.faults.timeout_seconds)
    return response


async def _serve(
    sandbox: Sandbox, request: Request, request_id: str, headers: dict[str, str]
) -> Response:
    try:
        scope = _api_key(request)
        params = await _params(request)
    except StripeError as exc:
        return _error(exc, headers)
    path = request.url.path
    route = sandbox.router.resolve(request.method, path)
    if route is None:
        return _error(
            StripeError(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {path}). Please see"
                " https://stripe.com/docs or we can help at https://support.stripe.com/.",
            ),
            headers,
        )
    handler, path_args = route
    # Stripe applies idempotency to POSTs only: GET and DELETE are idempotent by definition.
    key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
    claim = None
    if key is not None:
        headers["Idempotency-Key"] = key
        print_ = idempotency.fingerprint(request.method, path, params)
        try:
            replay = idempotency.begin(sandbox.store, scope, key, print_, request_id, time.time())
        except StripeError as exc:
            return _error(exc, headers)
        if replay is not None:
            headers.update(
                {"Idempotent-Replayed": "true", "Original-Request": replay.original_request_id}
            )
            return Response(replay.body, replay.status, headers, "application/json")
        claim = idempotency.Claim(scope, key)
    try:
        await asyncio.sleep(_delay(request))
        ctx = Context(sandbox.store, sandbox.config, request_id, key)
        status, payload = sandbox.execute(handler, ctx, Params(params), path_args, claim)
    except Exception:
        log.exception("sandbox failed on %s %s", request.method, path)
        if claim is not None:
            idempotency.abandon(sandbox.store, claim.scope, claim.key)
        return _error(StripeError(500, "api_error", "An unknown error occurred"), headers)
    return Response(payload, status, headers, "application/json")


def _api_key(request: Request) -> str:
    """The secret key of the request (Bearer, or Basic with the key as user name)."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    key = credentials.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key).decode().partition(":")[0]
        except ValueError:
            key = ""
    elif scheme.lower() != "bearer":
        key = ""
    if not key:
        raise StripeError(
            401,
            "authentication_error",
            "You did not provide an API key. You need to provide your API key in the"
            " Authorization header, using Bearer auth (e.g. 'Authorization: Bearer"
            " YOUR_SECRET_KEY').",
        )
    if not key.startswith(_KEY_PREFIXES) or len(key) <= len("sk_test_"):
        shown = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
        raise StripeError(401, "authentication_error", f"Invalid API Key provided: {shown}")
    return key


async def _params(request: Request) -> dict[str, Any]:
    try:
        params = parse_form(request.url.query)
        if request.method == "POST":
            params.update(parse_form((await request.body()).decode()))
    except (FormError, UnicodeDecodeError) as exc:
        raise StripeError(400, "invalid_request_error", str(exc)) from exc
    return params


def _delay(request: Request) -> float:
    """``Sandbox-Delay: <seconds>`` slows the processing of one request, which lets tests
    overlap two requests that share an Idempotency-Key."""
    try:
        delay = float(request.headers.get("Sandbox-Delay", "0"))
    except ValueError:
        return 0.0
    return min(max(delay, 0.0), MAX_DELAY_SECONDS)


def _error(exc: StripeError, headers: dict[str, str]) -> Response:
    return Response(encode(exc.to_json()), exc.status, headers, "application/json")

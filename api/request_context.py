"""Request ids and the request log.

Every request gets an id: the caller's ``X-Request-Id`` when it is sane (1 to 128 letters,
digits, ``.``, ``_``, ``:`` or ``-``), else a new UUID. It is in every log line written while
the request is served, in the audit events it causes (when it is a UUID), in
``request.state.request_id``, and in the ``X-Request-Id`` response header. One log line per
request (logger ``tollgate.api.requests``) gives its method, path (without the query string,
which may carry secrets), route template, status and duration; scrapes and health probes are
logged at DEBUG.
"""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import route_template
from observability.logs import request_id_var

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_QUIET_PATHS = frozenset({"/metrics", "/healthz"})

log = logging.getLogger("tollgate.api.requests")


def request_id_of(incoming: str | None) -> str:
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(Headers(scope=scope).get(HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # Left set: the server's error handler, outside this middleware, logs the error
            # with the request's id (each request runs in its own task's context).
            failed = True
            raise
        finally:
            self._log(scope, status, time.perf_counter() - started)
            if not failed:
                request_id_var.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, elapsed: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
        if status >= 500:
            level = logging.WARNING
        if not log.isEnabledFor(level):
            return
        duration_ms = round(elapsed * 1000, 1)
        log.log(
            level,
            "%s %s %d %.1fms",
            scope["method"],
            path,
            status,
            duration_ms,
            extra={
                "http_method": scope["method"],
                "http_path": path,
                "http_route": route_template(scope),
                "http_status": status,
                "duration_ms": duration_ms,
            },
        )

"""The largest request body the API reads: a bigger one is a 413 in the error envelope.

A ``Content-Length`` over the limit is refused before anything is read; a body without one
(chunked) is counted as it arrives and refused as soon as it passes the limit, so a huge
body is never held in memory, by the endpoints nor by the idempotency middleware (which
reads the body to fingerprint it). Routes with smaller limits of their own (a transfer CSV,
2 MiB) still apply them.
"""

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import envelope

# The largest legitimate bodies: a transfer batch CSV (2 MiB and its multipart envelope) and
# the codec server's payloads (4 MiB).
MAX_REQUEST_BYTES = 5 * 1024 * 1024


class RequestTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit. An ``HTTPException``, so an
    endpoint reading the body answers it through the envelope's handler (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def too_large(limit: int) -> JSONResponse:
    message = f"the request body is larger than {limit} bytes"
    return JSONResponse(envelope("invalid_request_error", "request_too_large", message), 413)


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit():
            if int(declared) > self.max_bytes:
                await too_large(self.max_bytes)(scope, receive, send)
                return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except RequestTooLarge:
            # Read outside an endpoint (the idempotency middleware): answered here.
            if started:
                raise
            await too_large(self.max_bytes)(scope, receive, send)

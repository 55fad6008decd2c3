"""``Idempotency-Key`` on POST/PUT/PATCH/DELETE, with Stripe's semantics.

The middleware claims the key, then runs the request inside a transaction it owns, so the
request's effects and its stored response commit together: a replay can never see effects
without a response, nor a response without effects.

- same key, same request: the stored status and body, with ``Idempotent-Replayed: true``;
- same key, another request: 400 ``idempotency_error``;
- same key while the first request still runs: 409, and no second effect;
- a 4xx response is stored (its effects rolled back); a 5xx or crash releases the key.
"""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AFTER_COMMIT, IDEMPOTENT_SESSION, AfterCommit
from api.errors import error_response
from domain.errors import AuthenticationError, Conflict, TollgateError, ValidationError
from domain.tokens import verify
from services import idempotency
from settings import Settings

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("content-type", "location")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: Settings = state.settings
        try:
            if not 0 < len(key) <= MAX_KEY_LENGTH:
                raise ValidationError(
                    f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
                    param="Idempotency-Key",
                )
            caller = _caller(headers, settings)
        except TollgateError as error:
            await error_response(error)(scope, receive, send)
            return
        if caller is None:  # unauthenticated: the endpoint answers 401 and nothing happens
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        await _Exchange(
            self.app, scope, send, state.sessionmaker, settings, caller, key, body
        ).run()


def _caller(headers: Headers, settings: Settings) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        actor = verify(token.strip(), secret=settings.jwt_secret, issuer=settings.jwt_issuer)
    except AuthenticationError:
        return None
    return f"{actor.role.value}:{actor.id}"


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _Exchange:
    """One request carrying an Idempotency-Key, from claim to response."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        send: Send,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        caller: str,
        key: str,
        body: bytes,
    ) -> None:
        self.app, self.scope, self.send = app, scope, send
        self.sessionmaker, self.settings = sessionmaker, settings
        self.caller, self.key, self.body = caller, key, body
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    async def run(self) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                outcome = await idempotency.claim(
                    session,
                    scope=self.caller,
                    key=self.key,
                    request_fingerprint=idempotency.fingerprint(
                        self.scope["method"],
                        self.scope["path"],
                        self.scope.get("query_string", b"").decode("latin-1"),
                        self.body,
                    ),
                    method=self.scope["method"],
                    path=self.scope["path"],
                    ttl=timedelta(hours=self.settings.idempotency_ttl_hours),
                    lock_timeout=timedelta(seconds=self.settings.idempotency_lock_seconds),
                )
        except TollgateError as error:
            await error_response(error)(self.scope, self._receive, self.send)
            return
        if isinstance(outcome, idempotency.StoredResponse):
            await self._send(outcome.status, _encode_headers(outcome.headers), outcome.body, True)
            return
        await self._execute(outcome)

    async def _execute(self, claim: idempotency.Claim) -> None:
        callbacks: list[AfterCommit] = []
        async with self.sessionmaker() as session:
            await session.begin()
            self.scope.setdefault("state", {})
            self.scope["state"][IDEMPOTENT_SESSION] = session
            self.scope["state"][AFTER_COMMIT] = callbacks
            try:
                await self.app(self.scope, self._receive, self._capture)
            except BaseException:
                await session.rollback()
                await self._release(claim)
                raise
            body = b"".join(self.chunks)
            stored = _stored_headers(self.headers)
            if self.status >= 500:
                await session.rollback()
                await self._release(claim)
            elif self.status >= 400:
                # Bad input changes nothing: drop any partial writes, keep the answer.
                await session.rollback()
                async with session.begin():
                    await idempotency.complete(
                        session, claim, status=self.status, headers=stored, body=body
                    )
            elif await idempotency.complete(
                session, claim, status=self.status, headers=stored, body=body
            ):
                await session.commit()
            else:
                await session.rollback()
                lost = Conflict(
                    "The Idempotency-Key was taken over by a retry of this request",
                    code="idempotency_key_in_use",
                    param="Idempotency-Key",
                )
                await error_response(lost)(self.scope, self._receive, self.send)
                return
        await self._send(self.status, self.headers, body, False)
        if self.status < 400:
            for callback in callbacks:
                await callback()

    async def _release(self, claim: idempotency.Claim) -> None:
        async with self.sessionmaker() as session, session.begin():
            await idempotency.release(session, claim)

    async def _receive(self) -> Message:
        body, self.body = self.body, b""
        return {"type": "http.request", "body": body, "more_body": False}

    async def _capture(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    async def _send(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, replayed: bool
    ) -> None:
        extra = [(b"idempotent-replayed", b"true" if replayed else b"false")]
        kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        out = [*kept, (b"content-length", str(len(body)).encode()), *extra]
        await self.send({"type": "http.response.start", "status": status, "headers": out})
        await self.send({"type": "http.response.body", "body": body})


def _stored_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        k.decode("latin-1").lower(): v.decode("latin-1")
        for k, v in headers
        if k.decode("latin-1").lower() in REPLAYED_HEADERS
    }


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

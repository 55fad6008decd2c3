"""Calling the Tollgate API from ``tollgate`` commands: where it is, the bearer token, and
the error envelope turned into lines a person can act on."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx

from settings import Settings

API_PREFIX = "/api/v1"
# Polling tolerates this many failed looks in a row (a restart, a network blip).
POLL_FAILURES_TOLERATED = 5


class ApiFailure(Exception):
    """The API refused the request (its error envelope) or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.param = message, status, code, param
        self.errors = errors or []

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429

    def lines(self) -> list[str]:
        """The message, then one line per item of a refusal of many things at once."""
        where = ", ".join(
            part
            for part in (self.code, f"HTTP {self.status}" if self.status else None)
            if part is not None
        )
        lines = [f"error: {self.message}" + (f" ({where})" if where else "")]
        for item in self.errors:
            place = []
            if item.get("row") is not None:
                place.append(f"row {item['row']}")
            if item.get("field"):
                place.append(str(item["field"]))
            prefix = ", ".join(place) or "item"
            code = f" ({item['code']})" if item.get("code") else ""
            lines.append(f"  {prefix}: {item.get('message', 'invalid')}{code}")
        return lines


def api_url(explicit: str | None, settings: Settings) -> str:
    if explicit:
        return explicit.rstrip("/")
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def bearer_token(explicit: str | None, settings: Settings) -> str:
    """The given token; else a short-lived ``platform_admin`` token minted with the configured
    JWT secret (a development convenience: in production pass ``--token``)."""
    if explicit:
        return explicit.strip()
    from domain.actors import Role
    from domain.tokens import mint

    return mint(
        subject="cli",
        role=Role.PLATFORM_ADMIN,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=30),
    )


@contextmanager
def api_client(base_url: str, token: str, timeout: float = 60) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url + API_PREFIX,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "tollgate-cli"},
        timeout=timeout,
    ) as client:
        yield client


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """The JSON body of a 2xx answer; ``ApiFailure`` otherwise."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise ApiFailure(f"cannot reach the API at {client.base_url}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise ApiFailure(
            str(error.get("message") or "the API refused the request"),
            status=response.status_code,
            code=error.get("code"),
            param=error.get("param"),
            errors=[item for item in error.get("errors") or [] if isinstance(item, dict)],
        )
    raise ApiFailure(
        f"unexpected answer from {response.request.url}: {response.text[:200]!r}",
        status=response.status_code,
    )


def poll(
    look: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    on_update: Callable[[dict[str, Any]], None],
    *,
    interval: float,
    timeout: float | None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], bool]:
    """Look until ``done``; (last seen, finished). Up to ``POLL_FAILURES_TOLERATED`` failed
    looks in a row are retried; a refusal (4xx) is raised at once."""
    deadline = None if timeout is None else time.monotonic() + timeout
    failures = 0
    last: dict[str, Any] | None = None
    while True:
        try:
            last = look()
            failures = 0
        except ApiFailure as failure:
            failures += 1
            if not failure.retryable or failures > POLL_FAILURES_TOLERATED or last is None:
                raise
        else:
            on_update(last)
            if done(last):
                return last, True
        if deadline is not None and time.monotonic() >= deadline:
            return last, False
        sleep(interval)

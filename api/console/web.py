"""What every console page uses: its router (whose errors become HTML, never the API's JSON),
``render`` with the shared context, url-encoded forms, the CSRF token, flash messages, and
links to workflows in the Temporal Web UI."""

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import fields
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError

from api.console.nav import NAV
from api.errors import database_unavailable, status_of
from domain.errors import PermissionDenied, ProviderError, TollgateError, ValidationError
from domain.money import CURRENCY_EXPONENTS
from settings import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
# htmx comes from npm (package.json); `make` installs node_modules at the repository's root.
VENDOR_DIR = HERE.parents[1] / "node_modules" / "htmx.org" / "dist"
PREFIX = "/admin"
LOGIN_PATH = f"{PREFIX}/login"

SESSION_COOKIE = "tollgate_admin"
LOGIN_COOKIE = "tollgate_admin_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
PAGE_SIZE = 25
MAX_FORM_BYTES = 64 * 1024

TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.trim_blocks = True
TEMPLATES.env.lstrip_blocks = True

# Workflow id of an entity's workflow, by audit entity type (``ARCHITECTURE.md``: one
# workflow per long-lived thing). A page for another kind adds it here.
WORKFLOW_IDS: dict[str, Callable[[str], str]] = {
    "escrow_hold": lambda id_: f"escrow-hold-{id_}",
    "payout_schedule": lambda id_: f"payout-schedule-{id_}",
    "ticket": lambda id_: f"ticket-{id_}",
    "payment": lambda id_: f"payment-{id_}",
    "refund": lambda id_: f"refund-{id_}",
    "subscription": lambda id_: f"subscription-{id_}",
    "transfer_batch": lambda id_: f"transfer-batch-{id_}",
    "market": lambda id_: f"market-resolution-{id_}",
    "webhook_delivery": lambda id_: f"webhook-delivery-{id_}",
}


# The console page of an entity, by audit entity type; a new page adds its kind here.
ENTITY_PAGES: dict[str, Callable[[str], str]] = {
    "payout_schedule": lambda id_: f"{PREFIX}/payouts?id={quote(id_, safe='')}",
    "escrow_hold": lambda id_: f"{PREFIX}/escrow?id={quote(id_, safe='')}",
    "ticket": lambda id_: f"{PREFIX}/tickets/{quote(id_, safe='')}",
    "transfer_batch": lambda id_: f"{PREFIX}/transfers/{quote(id_, safe='')}",
    "subscription": lambda id_: f"{PREFIX}/subscriptions?id={quote(id_, safe='')}",
    "reconciliation": lambda id_: f"{PREFIX}/reconciliation?run_id={quote(id_, safe='')}",
    "reconciliation_discrepancy": lambda id_: f"{PREFIX}/reconciliation?id={quote(id_, safe='')}",
    "webhook_delivery": lambda id_: f"{PREFIX}/webhooks/{quote(id_, safe='')}",
}


class LoginRequired(Exception):
    """No valid admin session: the browser goes to the login page. ``reason`` is a key of
    ``api.console.auth.REASONS``; ``clear`` drops the cookie that was refused."""

    def __init__(self, reason: str | None = None, *, clear: bool = False) -> None:
        super().__init__(reason or "login required")
        self.reason = reason
        self.clear = clear


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def htmx_target(request: Request) -> str | None:
    """The id of the element an htmx request will swap, if it has one."""
    return request.headers.get("HX-Target") if is_htmx(request) else None


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# Jinja filters and helpers ---------------------------------------------------------------


def money(amount: int | None, currency: str) -> str:
    """``123456, "EUR"`` → ``1,234.56 EUR`` (the currency's own minor unit)."""
    if amount is None:
        return "—"
    exponent = CURRENCY_EXPONENTS.get(currency.upper(), 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**exponent)
    figure = f"{whole:,}" + (f".{minor:0{exponent}d}" if exponent else "")
    return f"{sign}{figure} {currency.upper()}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.isoformat()


def clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def temporal_url(settings: Settings, workflow_id: str) -> str:
    """The workflow's page in the Temporal Web UI."""
    namespace = quote(settings.temporal_namespace, safe="")
    return (
        f"{settings.temporal_ui_url}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"
    )


def entity_workflow(entity_type: str, entity_id: str) -> str | None:
    make = WORKFLOW_IDS.get(entity_type)
    return make(entity_id) if make else None


def entity_page(entity_type: str, entity_id: str) -> str | None:
    make = ENTITY_PAGES.get(entity_type)
    return make(entity_id) if make else None


TEMPLATES.env.filters.update(money=money, when=when, clock=clock, pretty_json=pretty_json)
TEMPLATES.env.globals.update(entity_workflow=entity_workflow, entity_page=entity_page)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    active: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """``template`` with what every page has: the navigation, who is signed in, the CSRF
    token, the settings and ``temporal_url(workflow_id)``."""
    settings = settings_of(request)
    shared = {
        "nav": NAV,
        "active": active,
        "actor": getattr(request.state, "console_actor", None),
        "csrf_token": getattr(request.state, "console_csrf", ""),
        "settings": settings,
        "temporal_url": partial(temporal_url, settings),
        "now": datetime.now(UTC),
        "htmx": is_htmx(request),
    }
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request,
        template,
        {**shared, **(context or {})},
        status_code=status,
        headers=dict(headers) if headers else None,
    )
    return response


def flash(
    request: Request,
    message: str,
    *,
    kind: str = "ok",
    items: list[str] | None = None,
    status: int = 200,
    oob: bool = False,
) -> HTMLResponse:
    """The flash area's new content; ``oob`` to send it alongside another swap (see
    ``with_flash``), otherwise the response is retargeted at it."""
    response = render(
        request,
        "_flash.html",
        {"kind": kind, "message": message, "items": items or [], "oob": oob},
        status=status,
        headers=None if oob else {"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"},
    )
    return response


def with_flash(
    request: Request, main: HTMLResponse, message: str, *, kind: str = "ok"
) -> HTMLResponse:
    """``main`` (e.g. a table row) plus the flash message, swapped out of band."""
    extra = flash(request, message, kind=kind, oob=True)
    body = bytes(main.body) + bytes(extra.body)
    headers = {k: v for k, v in main.headers.items() if k.lower() != "content-length"}
    return HTMLResponse(body, status_code=main.status_code, headers=headers)


def error_response(request: Request, error: TollgateError) -> HTMLResponse:
    """A refused or failed request, saying why (the API envelope's message and code): in the
    flash area for htmx, otherwise as a page."""
    status = status_of(error)
    if is_htmx(request):
        return flash(
            request, error.message, kind="error", items=[f"code: {error.code}"], status=status
        )
    return render(request, "error.html", {"error": error}, status=status)


def login_redirect(request: Request, reason: str | None, *, clear: bool) -> Response:
    came_from = request.headers.get("HX-Current-URL") if is_htmx(request) else str(request.url)
    params = {"next": safe_next(came_from) or PREFIX}
    if reason:
        params["reason"] = reason
    url = f"{LOGIN_PATH}?{urlencode(params)}"
    response: Response
    if is_htmx(request):
        response = Response(status_code=200, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if clear:
        delete_cookie(request, response, SESSION_COOKIE)
    return response


def safe_next(url: str | None) -> str | None:
    """A path inside the console to go back to, or None (never another site)."""
    if not url:
        return None
    parts = urlsplit(url)
    path = parts.path
    if path != PREFIX and not path.startswith(f"{PREFIX}/"):
        return None
    if path.startswith("//") or "\\" in path or path.startswith(LOGIN_PATH):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


# Cookies, forms and CSRF -----------------------------------------------------------------


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https" or settings_of(request).admin_secure_cookies


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path=PREFIX,
    )


def delete_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, httponly=True, samesite="strict", secure=secure_cookies(request), path=PREFIX
    )


def csrf_token(settings: Settings, purpose: str, value: str) -> str:
    """The token forms carry: bound to the session (or the login form's nonce) and keyed with
    the JWT secret, so another site can neither read nor forge it."""
    message = f"tollgate-admin:{purpose}:{value}".encode()
    return hmac.new(settings.jwt_secret.encode(), message, hashlib.sha256).hexdigest()


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The url-encoded form of a POST (what browsers and htmx send), read once."""
    cached: dict[str, list[str]] | None = getattr(request.state, "console_form", None)
    if cached is not None:
        return cached
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValidationError("the form is too large", code="form_too_large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise ValidationError("forms are sent url-encoded", code="unsupported_form")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    request.state.console_form = fields
    return fields


def field(fields: Mapping[str, list[str]], name: str) -> str | None:
    """A form or query field's first value, stripped; None when absent or blank."""
    values = fields.get(name)
    value = values[0].strip() if values else ""
    return value or None


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER) or field(await form_fields(request), CSRF_FIELD)
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise_csrf()


def raise_csrf() -> None:
    raise PermissionDenied(
        "The form's security token is missing or does not match your session: "
        "reload the page and try again.",
        code="csrf_failed",
    )


def parse_id(raw: str | None, what: str, *, prefix: str = "") -> uuid.UUID | None:
    """An id typed in a search box: the uuid, or the workflow id (``prefix`` + uuid)."""
    if not raw:
        return None
    text = raw.strip().removeprefix(prefix) if prefix else raw.strip()
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise ValidationError(f"{raw!r} is not {what} id", param="id") from exc


def query_string(**params: Any) -> str:
    """``?a=1&b=2`` of the non-empty ``params`` (for links that keep the filters); a flag
    that is set is ``1``."""
    kept = {k: "1" if v is True else v for k, v in params.items() if v not in (None, "", False)}
    return f"?{urlencode(kept)}" if kept else ""


class PageFilters:
    """A page's filters, as the fields of a dataclass subclass: ``query()`` is the query
    string of a link that keeps them (with ``extra`` parameters)."""

    def query(self, **extra: str | None) -> str:
        values = {field.name: getattr(self, field.name) for field in fields(self)}  # type: ignore[arg-type]
        return query_string(**values, **extra)


def text_filter(value: str | None) -> str | None:
    """A filter as typed in its box: surrounding spaces dropped, and empty is no filter."""
    return (value or "").strip() or None


def list_context(
    path: str, filters: PageFilters, after: uuid.UUID | int | None, **extra: object
) -> dict[str, object]:
    """What a list page's template starts from: its filters, the link to its first page, and
    no rows, next page or problem yet; ``extra`` is the page's own."""
    return {
        "filters": filters,
        "first_url": f"{PREFIX}/{path}{filters.query()}",
        "after": after,
        "rows": [],
        "next_url": None,
        "problem": None,
        **extra,
    }


# The router every page uses ---------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """A console route: a missing session goes to the login page, and every error is shown
    as HTML saying why (the API's own routes keep the JSON envelope)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired as exc:
                return login_redirect(request, exc.reason, clear=exc.clear)
            except TollgateError as exc:
                return error_response(request, exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
                message = f"{where or 'request'}: {first.get('msg', 'invalid')}"
                return error_response(request, ValidationError(message, code="parameter_invalid"))
            except DataError as exc:
                # As the API answers it: a value PostgreSQL refuses (a NUL in a filter).
                reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid"
                return error_response(
                    request,
                    ValidationError(f"a value cannot be used: {reason}", code="parameter_invalid"),
                )
            except Exception as exc:
                if database_unavailable(exc):
                    return error_response(
                        request,
                        ProviderError(
                            "The database cannot serve the request right now; retry shortly.",
                            code="database_unavailable",
                        ),
                    )
                log.exception("admin console: %s %s failed", request.method, request.url.path)
                return error_response(
                    request,
                    TollgateError(
                        "Something went wrong on the server; the API log has the details."
                    ),
                )

        return handler


def console_router() -> APIRouter:
    """The router of one console page: under /admin, out of the OpenAPI schema."""
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

"""Signing in to the console with an admin token (a JWT of role platform_admin or
billing_admin, as ``tollgate token`` mints), kept in an HttpOnly, SameSite=Strict cookie;
signing out; and the dependencies pages use: ``ConsoleUser`` for a page, ``ConsoleAction``
for a state-changing POST (which also needs the session's CSRF token)."""

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.actions import ADMIN_ROLES
from api.console.web import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    LoginRequired,
    check_csrf,
    console_router,
    csrf_token,
    delete_cookie,
    field,
    form_fields,
    render,
    safe_next,
    set_cookie,
    settings_of,
)
from domain.actors import Actor
from domain.errors import AuthenticationError
from domain.tokens import verify

router = console_router()

# Why the login page is shown, by the ``reason`` of its URL.
REASONS = {
    "expired": "Your session has expired: sign in again.",
    "invalid": "Your session is no longer valid: sign in again.",
    "role": "Your token's role may not use the admin console: sign in with an admin token.",
    "signed_out": "You are signed out.",
}


def console_actor(request: Request) -> Actor:
    """The signed-in admin, from the session cookie; else the login page."""
    settings = settings_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired()
    try:
        actor = verify(token, secret=settings.jwt_secret, issuer=settings.jwt_issuer)
    except AuthenticationError as exc:
        reason = "expired" if exc.code == "token_expired" else "invalid"
        raise LoginRequired(reason, clear=True) from exc
    if actor.role not in ADMIN_ROLES:
        raise LoginRequired("role", clear=True)
    request.state.console_actor = actor
    request.state.console_csrf = csrf_token(settings, "session", token)
    return actor


async def console_action_actor(
    request: Request, actor: Annotated[Actor, Depends(console_actor)]
) -> Actor:
    """The signed-in admin, for a request that changes something: it must carry the
    session's CSRF token (the ``X-CSRF-Token`` header htmx sends, or the form field)."""
    await check_csrf(request, request.state.console_csrf)
    return actor


ConsoleUser = Annotated[Actor, Depends(console_actor)]
ConsoleAction = Annotated[Actor, Depends(console_action_actor)]


def _login_page(
    request: Request,
    nonce: str,
    *,
    next_url: str | None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        {
            "login_csrf": csrf_token(settings_of(request), "login", nonce),
            "next_url": next_url or "",
            "notice": notice,
            "error": error,
        },
        status=status,
    )
    set_cookie(request, response, LOGIN_COOKIE, nonce)
    return response


@router.get("/login")
async def login_form(
    request: Request, next: str | None = None, reason: str | None = None
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    return _login_page(request, nonce, next_url=safe_next(next), notice=REASONS.get(reason or ""))


@router.post("/login")
async def login(request: Request) -> Response:
    settings = settings_of(request)
    fields = await form_fields(request)
    next_url = safe_next(field(fields, "next"))
    nonce = request.cookies.get(LOGIN_COOKIE)
    sent = field(fields, CSRF_FIELD) or ""
    fresh = secrets.token_urlsafe(24)
    if not nonce or not hmac.compare_digest(sent, csrf_token(settings, "login", nonce)):
        error = "The sign-in form had expired: it is reloaded, sign in again."
        return _login_page(request, fresh, next_url=next_url, error=error, status=403)
    token = (field(fields, "token") or "").removeprefix("Bearer ").strip()
    if not token:
        error = "Paste an admin token (tollgate token --sub YOU --role platform_admin)."
        return _login_page(request, nonce, next_url=next_url, error=error, status=400)
    try:
        actor = verify(token, secret=settings.jwt_secret, issuer=settings.jwt_issuer)
    except AuthenticationError as exc:
        error = f"That token was refused: {exc.message}."
        return _login_page(request, nonce, next_url=next_url, error=error, status=401)
    if actor.role not in ADMIN_ROLES:
        error = (
            f"A {actor.role.value} token cannot sign in to the admin console: it needs the "
            "platform_admin or billing_admin role."
        )
        return _login_page(request, nonce, next_url=next_url, error=error, status=403)
    response = RedirectResponse(next_url or PREFIX, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token)
    delete_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, _: ConsoleAction) -> Response:
    response = RedirectResponse(f"{PREFIX}/login?reason=signed_out", status_code=303)
    delete_cookie(request, response, SESSION_COOKIE)
    return response

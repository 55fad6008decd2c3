"""Request dependencies: the transaction, the caller, and role checks."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor, Role
from domain.errors import AuthenticationError, PermissionDenied
from domain.tokens import verify
from settings import Settings

AfterCommit = Callable[[], Awaitable[None]]

# Set in the request scope's state by the idempotency middleware, which then owns the commit.
IDEMPOTENT_SESSION = "idempotent_session"
AFTER_COMMIT = "after_commit"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed when the endpoint returns, rolled back if it raises."""
    owned: AsyncSession | None = getattr(request.state, IDEMPOTENT_SESSION, None)
    if owned is not None:
        yield owned
        return
    callbacks: list[AfterCommit] = []
    setattr(request.state, AFTER_COMMIT, callbacks)
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session
    for callback in callbacks:
        await callback()


def after_commit(request: Request, callback: AfterCommit) -> None:
    """Run ``callback`` (e.g. start a workflow) once the request's transaction has committed."""
    getattr(request.state, AFTER_COMMIT).append(callback)


def in_background(request: Request, work: Coroutine[Any, Any, None]) -> None:
    """Run best-effort work (a notification) without holding up the response; the app
    keeps a reference until it finishes and awaits what is left at shutdown."""
    tasks: set[asyncio.Task[None]] = request.app.state.background_tasks
    task = asyncio.create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def current_actor(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Missing bearer token", code="missing_token")
    return verify(token.strip(), secret=settings.jwt_secret, issuer=settings.jwt_issuer)


def require_roles(*roles: Role) -> Callable[..., Actor]:
    allowed = frozenset(roles)

    def check(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in allowed:
            raise PermissionDenied(
                f"Role {actor.role.value!r} may not do this; needs one of "
                + ", ".join(sorted(r.value for r in allowed))
            )
        return actor

    return check


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
CurrentActor = Annotated[Actor, Depends(current_actor)]
Admin = Annotated[Actor, Depends(require_roles(Role.PLATFORM_ADMIN, Role.BILLING_ADMIN))]
PlatformAdmin = Annotated[Actor, Depends(require_roles(Role.PLATFORM_ADMIN))]

"""Idempotency-Key bookkeeping with Stripe's semantics.

A key is claimed in its own short transaction (state ``started``). The response is stored in
the same transaction as the request's effects, so a key is ``completed`` exactly when its
effects are committed; a ``started`` key whose lock has expired therefore has no committed
effects and may be claimed again.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import Conflict, IdempotencyError
from models.idempotency import IdempotencyKey


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """Hash of what the request asks for; JSON bodies are canonicalised (key order ignored)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str
    key: str
    locked_at: datetime


async def claim(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    request_fingerprint: str,
    method: str,
    path: str,
    ttl: timedelta,
    lock_timeout: timedelta,
) -> Claim | StoredResponse:
    """Claim ``key`` for a new request, or return the response recorded for it.

    Raises ``IdempotencyError`` when the key was used for a different request and
    ``Conflict`` while the first request with the key is still running.
    """
    now = datetime.now(UTC)
    while True:
        claimed = await session.execute(
            insert(IdempotencyKey)
            .values(
                scope=scope,
                key=key,
                fingerprint=request_fingerprint,
                method=method,
                path=path,
                state="started",
                locked_at=now,
                expires_at=now + ttl,
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.locked_at)
        )
        if claimed.scalar() is not None:
            return Claim(scope, key, now)
        row = await session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
            .with_for_update()
        )
        if row is None:  # removed between our insert and select: claim it afresh
            continue
        if row.expires_at > now:
            break
        await session.delete(row)
        await session.flush()
    if row.fingerprint != request_fingerprint:
        raise IdempotencyError(
            f"Keys for idempotent requests can only be used with the same parameters they were"
            f" first used with; {key!r} was used for {row.method} {row.path}",
            param="Idempotency-Key",
        )
    if row.state == "completed":
        assert row.response_status is not None and row.response_body is not None
        return StoredResponse(
            row.response_status, dict(row.response_headers or {}), row.response_body
        )
    if row.locked_at > now - lock_timeout:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry later",
            code="idempotency_key_in_use",
            param="Idempotency-Key",
        )
    # The first request died before committing anything: take the key over.
    row.locked_at = now
    await session.flush()
    return Claim(scope, key, now)


async def complete(
    session: AsyncSession, claimed: Claim, *, status: int, headers: dict[str, str], body: bytes
) -> bool:
    """Store the response; False if the claim was lost (the lock expired and was taken)."""
    result = await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.scope == claimed.scope,
            IdempotencyKey.key == claimed.key,
            IdempotencyKey.state == "started",
            IdempotencyKey.locked_at == claimed.locked_at,
        )
        .values(
            state="completed", response_status=status, response_headers=headers, response_body=body
        )
    )
    return _rowcount(result) == 1


async def release(session: AsyncSession, claimed: Claim) -> None:
    """Forget a claim whose request failed on our side, so the client may retry it."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.scope == claimed.scope,
            IdempotencyKey.key == claimed.key,
            IdempotencyKey.state == "started",
            IdempotencyKey.locked_at == claimed.locked_at,
        )
    )


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or datetime.now(UTC)))
    )
    return _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)

"""Idempotency-Key with Stripe's semantics, over the real API and PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from models.idempotency import IdempotencyKey
from models.ledger import LedgerAccount
from services import idempotency
from tests.conftest import TokenFactory

ACCOUNT = {"code": "vendor:acme", "name": "Acme payable", "type": "liability"}


async def count_accounts(database_url: str) -> int:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        total = await conn.scalar(select(func.count()).select_from(LedgerAccount))
    await engine.dispose()
    return int(total or 0)


async def test_replay_returns_the_identical_response(api: AsyncClient, auth: TokenFactory) -> None:
    headers = {**auth("platform_admin"), "Idempotency-Key": "create-acme"}
    first = await api.post("/api/v1/ledger/accounts", json=ACCOUNT, headers=headers)
    again = await api.post(
        "/api/v1/ledger/accounts", json=dict(reversed(ACCOUNT.items())), headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert first.headers["idempotent-replayed"] == "false"
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_with_another_request_is_an_idempotency_error(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    headers = {**auth("platform_admin"), "Idempotency-Key": "k1"}
    await api.post("/api/v1/ledger/accounts", json=ACCOUNT, headers=headers)
    other = await api.post(
        "/api/v1/ledger/accounts", json={**ACCOUNT, "code": "vendor:other"}, headers=headers
    )
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert other.json()["error"]["param"] == "Idempotency-Key"
    assert await count_accounts(database_url) == 1


async def test_fifty_concurrent_requests_with_one_key_have_one_effect(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    headers = {**auth("platform_admin"), "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(api.post("/api/v1/ledger/accounts", json=ACCOUNT, headers=headers) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len({r.content for r in created}) == 1  # every 201 is the one response, replayed
    assert sum(r.headers["idempotent-replayed"] == "false" for r in created) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["error"]["code"] == "idempotency_key_in_use"
    assert await count_accounts(database_url) == 1


BODY = b'{"code": "vendor:acme", "name": "Acme payable", "type": "liability"}'


async def leave_claim(database_url: str, key: str, locked_at: datetime) -> None:
    """Leave the row a first request writes when it claims ``key`` for ``BODY``."""
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(IdempotencyKey).values(
                scope="platform_admin:user_1",
                key=key,
                fingerprint=idempotency.fingerprint("POST", "/api/v1/ledger/accounts", "", BODY),
                method="POST",
                path="/api/v1/ledger/accounts",
                state="started",
                locked_at=locked_at,
                expires_at=datetime.now(UTC) + timedelta(hours=23),
            )
        )
    await engine.dispose()


async def post_body(api: AsyncClient, auth: TokenFactory, key: str) -> int:
    headers = {
        **auth("platform_admin", sub="user_1"),
        "Idempotency-Key": key,
        "content-type": "application/json",
    }
    response = await api.post("/api/v1/ledger/accounts", content=BODY, headers=headers)
    return response.status_code


async def test_a_request_arriving_while_the_first_runs_gets_409(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    await leave_claim(database_url, "slow", datetime.now(UTC))
    assert await post_body(api, auth, "slow") == 409
    assert await count_accounts(database_url) == 0


async def test_a_claim_whose_request_died_can_be_retried_after_the_lock(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    # Effects and the stored response commit together, so an unfinished claim moved nothing.
    await leave_claim(database_url, "crashed", datetime.now(UTC) - timedelta(minutes=5))
    assert await post_body(api, auth, "crashed") == 201
    assert await count_accounts(database_url) == 1


async def test_keys_are_scoped_per_caller(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    one = await api.post(
        "/api/v1/ledger/accounts",
        json=ACCOUNT,
        headers={**auth("platform_admin", sub="a"), "Idempotency-Key": "same"},
    )
    two = await api.post(
        "/api/v1/ledger/accounts",
        json={**ACCOUNT, "code": "vendor:b"},
        headers={**auth("platform_admin", sub="b"), "Idempotency-Key": "same"},
    )
    assert (one.status_code, two.status_code) == (201, 201)
    assert await count_accounts(database_url) == 2


async def test_a_4xx_is_stored_and_changes_nothing(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    headers = {**auth("platform_admin"), "Idempotency-Key": "bad"}
    body = {
        "postings": [
            {"account": "nope", "amount": 5, "currency": "USD"},
            {"account": "nada", "amount": -5, "currency": "USD"},
        ]
    }
    first = await api.post("/api/v1/ledger/transactions", json=body, headers=headers)
    again = await api.post("/api/v1/ledger/transactions", json=body, headers=headers)
    assert first.status_code == again.status_code == 400
    assert first.json()["error"]["code"] == "unknown_account"
    assert again.headers["idempotent-replayed"] == "true"


async def test_expired_keys_are_purged(
    api: AsyncClient, auth: TokenFactory, database_url: str
) -> None:
    await api.post(
        "/api/v1/ledger/accounts",
        json=ACCOUNT,
        headers={**auth("platform_admin"), "Idempotency-Key": "old"},
    )
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    async with AsyncSession(engine) as session, session.begin():
        assert await idempotency.purge_expired(session) == 1
    await engine.dispose()


async def test_malformed_key_is_refused(api: AsyncClient, auth: TokenFactory) -> None:
    response = await api.post(
        "/api/v1/ledger/accounts",
        json=ACCOUNT,
        headers={**auth("platform_admin"), "Idempotency-Key": "x" * 256},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"

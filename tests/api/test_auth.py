"""Bearer JWT: 401 for missing, expired or forged tokens; 403 for the wrong role."""

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from domain.actors import Role
from domain.tokens import mint
from settings import Settings
from tests.conftest import TokenFactory

ADMIN_ONLY = "/api/v1/ledger/accounts"


async def test_missing_token_is_401(api: AsyncClient) -> None:
    response = await api.get(ADMIN_ONLY)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_error",
        "code": "missing_token",
        "message": "Missing bearer token",
        "param": None,
    }
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_token_is_401(api: AsyncClient, settings: Settings) -> None:
    token = mint(
        subject="admin",
        role=Role.PLATFORM_ADMIN,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    response = await api.get(ADMIN_ONLY, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


async def test_forged_token_is_401(api: AsyncClient, settings: Settings) -> None:
    forged = mint(
        subject="admin",
        role=Role.PLATFORM_ADMIN,
        secret="not-the-server-secret-0123456789-0123456789",
        issuer=settings.jwt_issuer,
        ttl=timedelta(minutes=5),
    )
    response = await api.get(ADMIN_ONLY, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_garbage_token_is_401(api: AsyncClient) -> None:
    response = await api.get(ADMIN_ONLY, headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401


@pytest.mark.parametrize("role", ["customer", "driver", "vendor"])
async def test_wrong_role_is_403(api: AsyncClient, auth: TokenFactory, role: str) -> None:
    response = await api.get(ADMIN_ONLY, headers=auth(role))
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


async def test_billing_admin_reads_but_only_platform_admin_posts_entries(
    api: AsyncClient, auth: TokenFactory
) -> None:
    assert (await api.get(ADMIN_ONLY, headers=auth("billing_admin"))).status_code == 200
    body = {"postings": [{"account": "a", "amount": 1, "currency": "USD"}] * 2}
    forbidden = await api.post(
        "/api/v1/ledger/transactions", json=body, headers=auth("billing_admin")
    )
    assert forbidden.status_code == 403


async def test_unauthenticated_post_with_idempotency_key_changes_nothing(api: AsyncClient) -> None:
    response = await api.post(
        ADMIN_ONLY,
        json={"code": "x", "name": "x", "type": "asset"},
        headers={"Idempotency-Key": "anon"},
    )
    assert response.status_code == 401

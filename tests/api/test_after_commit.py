"""Work registered with ``after_commit`` (starting a workflow) runs only once the request's
transaction has committed, and never for a refused request."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from api.deps import Admin, Session, after_commit
from domain.errors import ValidationError
from domain.ledger import AccountType
from models.ledger import LedgerAccount
from services import ledger
from settings import Settings
from tests.conftest import TokenFactory


@pytest.fixture
async def probe(settings: Settings) -> AsyncIterator[tuple[AsyncClient, list[int]]]:
    """The app plus a route that opens an account and, after commit, counts what others see."""
    app: FastAPI = create_app(settings)
    seen: list[int] = []
    engine = create_async_engine(settings.sqlalchemy_url)

    async def committed_accounts() -> None:
        async with engine.connect() as conn:
            seen.append(
                int(await conn.scalar(select(func.count()).select_from(LedgerAccount)) or 0)
            )

    async def open_then_notify(
        request: Request, session: Session, actor: Admin, fail: bool = False
    ) -> dict[str, str]:
        await ledger.create_account(
            session, code="probe", name="probe", type=AccountType.ASSET, actor=actor
        )
        after_commit(request, committed_accounts)
        if fail:
            raise ValidationError("refused after writing", param="fail")
        return {"ok": "yes"}

    app.add_api_route("/probe", open_then_notify, methods=["POST"])
    async with app.router.lifespan_context(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            yield client, seen
    await engine.dispose()


@pytest.mark.parametrize("key", [None, "with-key"])
async def test_callback_sees_the_committed_row(
    probe: tuple[AsyncClient, list[int]], auth: TokenFactory, key: str | None
) -> None:
    client, seen = probe
    headers = {**auth("platform_admin"), **({"Idempotency-Key": key} if key else {})}
    response = await client.post("/probe", headers=headers)
    assert response.status_code == 200
    assert seen == [1]


@pytest.mark.parametrize("key", [None, "with-key"])
async def test_refused_request_runs_no_callback_and_writes_nothing(
    probe: tuple[AsyncClient, list[int]], auth: TokenFactory, key: str | None, settings: Settings
) -> None:
    client, seen = probe
    headers = {**auth("platform_admin"), **({"Idempotency-Key": key} if key else {})}
    response = await client.post("/probe", params={"fail": "true"}, headers=headers)
    assert response.status_code == 400
    assert seen == []
    engine = create_async_engine(settings.sqlalchemy_url)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(LedgerAccount)) == 0
    await engine.dispose()

"""Fixtures of the security tests: one migrated database, one in-process API and one world of
objects for the whole package (not per case), Temporal down as in the other in-process API
tests, and bearer tokens."""

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from devstack import postgres
from devstack.net import free_port
from domain.actors import Role
from integrations.stripe_client import build_client
from integrations.ticket_keys import ensure_development_keyring
from models.engine import make_engine, make_sessionmaker
from settings import Settings
from tests.conftest import TEMPLATE, token_headers
from tests.security.world import World, build_world


def security_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    """As the ``settings`` fixture makes them: hermetic, nothing listening for Temporal,
    the chain or Stripe."""
    keys = data_dir / "ticket-keys.json"
    ensure_development_keyring(keys, key_id="test-1")
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "ticket_keys_file": keys,
        "task_queue": f"tollgate-test-{uuid.uuid4()}",
        "temporal_address": f"127.0.0.1:{free_port()}",
        "chain_rpc_url": f"http://127.0.0.1:{free_port()}",
        "stripe_api_base": f"http://127.0.0.1:{free_port()}",
        "jwt_secret": "security-secret-0123456789-0123456789-0123456789",
        **overrides,
    }
    return Settings(**values, _env_file=None)  # type: ignore[arg-type]


@pytest.fixture(scope="package")
def security_database_url(pg_port: int) -> Iterator[str]:
    """One database for the security tests, cloned from the migrated template."""
    name = f"sec_{uuid.uuid4().hex[:12]}"
    postgres.ensure_database(pg_port, name, template=TEMPLATE)
    yield postgres.url(pg_port, name)
    with psycopg.connect(postgres.url(pg_port, driver="postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def api_settings(security_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return security_settings(security_database_url, tmp_path_factory.mktemp("security"))


@asynccontextmanager
async def fast_failing_api(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The API in process, as ``in_process_api``, with a Stripe client that does not retry:
    Stripe is down here, and its SDK's retries would only add seconds to each refusal."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.stripe = build_client(
            settings.stripe_api_key, settings.stripe_api_base, max_network_retries=0
        )
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://tollgate.test") as client:
            yield client


@pytest.fixture(scope="package")
async def security_api(api_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with fast_failing_api(api_settings) as client:
        yield client


@pytest.fixture(scope="package")
async def security_db(
    security_database_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(security_database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def bearer(settings: Settings, role: Role | str, sub: str) -> dict[str, str]:
    return token_headers(settings, role, sub)


@pytest.fixture(scope="package")
async def world(
    security_api: AsyncClient,
    api_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
) -> World:
    """Objects of cus_a, drv_a and ven_a in the module's database (tests/security/world.py)."""
    return await build_world(security_api, api_settings, security_db)

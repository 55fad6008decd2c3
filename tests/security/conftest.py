"""Fixtures of the security tests: one migrated database and one in-process API per module
(not per case), Temporal down as in the other in-process API tests, and bearer tokens."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack import postgres
from devstack.net import free_port
from domain.actors import Role
from integrations.ticket_keys import ensure_development_keyring
from models.engine import make_engine, make_sessionmaker
from settings import Settings
from tests.conftest import TEMPLATE, in_process_api, token_headers


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


@pytest.fixture(scope="module")
def module_database_url(pg_port: int) -> Iterator[str]:
    """One database for the whole module, cloned from the migrated template."""
    name = f"sec_{uuid.uuid4().hex[:12]}"
    postgres.ensure_database(pg_port, name, template=TEMPLATE)
    yield postgres.url(pg_port, name)
    with psycopg.connect(postgres.url(pg_port, driver="postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_settings(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return security_settings(module_database_url, tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="module")
async def module_api(module_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with in_process_api(module_settings) as client:
        yield client


@pytest.fixture(scope="module")
async def module_db(module_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(module_database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def bearer(settings: Settings, role: Role | str, sub: str) -> dict[str, str]:
    return token_headers(settings, role, sub)

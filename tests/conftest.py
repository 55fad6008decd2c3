"""Shared fixtures: a real PostgreSQL for the whole run, databases cloned from a migrated
template, the API in-process, bearer tokens, and the time-skipping Temporal server."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack import postgres
from devstack.binaries import find
from devstack.net import free_port
from domain.actors import Role
from domain.tokens import mint
from integrations.temporal import register_search_attributes
from integrations.ticket_keys import ensure_development_keyring
from models.migrate import upgrade
from settings import Settings
from workflows import search_attributes

pytest_plugins = [
    "tests.fixtures.stripe_sandbox",
    "tests.fixtures.chain",
    "tests.fixtures.rpc_proxy",
    "tests.fixtures.tickets",
    "tests.fixtures.stack",
    "tests.faults.summary",
]

# The fixtures that start a whole stack of processes. `make test` runs the suite in two
# pytest-xdist workers (`--dist loadgroup`); the tests on a stack all go to one of them, so
# each stack starts once, and the other worker runs the rest beside them.
STACK_FIXTURES = {"embedded", "fault_stack"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("stack"))
        else:
            # A module's tests together: its module- and package-scoped fixtures set up once.
            item.add_marker(pytest.mark.xdist_group(item.path.as_posix()))


TEMPLATE = "tollgate_template"


@pytest.fixture(scope="session")
def pg_port() -> Iterator[int]:
    """One PostgreSQL 16 for the run, with a migrated template database."""
    port = free_port()
    with postgres.temporary_server(port):
        postgres.ensure_database(port, TEMPLATE)
        upgrade(postgres.url(port, TEMPLATE))
        yield port


@pytest.fixture
def database_url(pg_port: int) -> Iterator[str]:
    """A fresh migrated database per test, cloned from the template (fast)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.ensure_database(pg_port, name, template=TEMPLATE)
    yield postgres.url(pg_port, name)
    with psycopg.connect(postgres.url(pg_port, driver="postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def shared_database_url(pg_port: int) -> str:
    postgres.ensure_database(pg_port, "tollgate_shared", template=TEMPLATE)
    return postgres.url(pg_port, "tollgate_shared")


@pytest.fixture
async def session(shared_database_url: str) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test."""
    engine = create_async_engine(shared_database_url)
    async with engine.connect() as conn:
        outer = await conn.begin()
        db = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db
        finally:
            await db.close()
            await outer.rollback()
    await engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    keys = tmp_path / "ticket-keys.json"
    ensure_development_keyring(keys, key_id="test-1")
    return Settings(
        # Hermetic: nothing from a developer's .data (e.g. the payload keys `make run` made).
        data_dir=tmp_path,
        database_url=database_url,
        ticket_keys_file=keys,
        task_queue=f"tollgate-test-{uuid.uuid4()}",
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing listens: tests needing it start one
        chain_rpc_url=f"http://127.0.0.1:{free_port()}",
        stripe_api_base=f"http://127.0.0.1:{free_port()}",
        jwt_secret="test-secret-0123456789-0123456789-0123456789",
        _env_file=None,
    )


@asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The API app with its lifespan, reached in process (no TCP)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://tollgate.test") as client:
            yield client


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with in_process_api(settings) as client:
        yield client


TokenFactory = Callable[..., dict[str, str]]


def token_headers(
    settings: Settings, role: Role | str, sub: str = "user_1", ttl: float = 3600
) -> dict[str, str]:
    token = mint(
        subject=sub,
        role=Role(role),
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(seconds=ttl),
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(settings: Settings) -> TokenFactory:
    """``auth(role, sub=...)`` returns an Authorization header for that caller."""
    return partial(token_headers, settings)


class StartedWorkflows(Interceptor):
    """Records the id of every workflow a test starts through the client."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RecordStarts(next, self.ids)


class _RecordStarts(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, ids: set[str]) -> None:
        super().__init__(next)
        self._ids = ids

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._ids.add(input.id)
        return await super().start_workflow(input)


@pytest.fixture(scope="session")
async def time_skipping_server() -> AsyncIterator[tuple[WorkflowEnvironment, StartedWorkflows]]:
    binary = find("temporal-test-server")
    started = StartedWorkflows()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary,
        data_converter=pydantic_data_converter,
        interceptors=[started],
    )
    await register_search_attributes(env.client, "default", search_attributes.ALL)
    try:
        yield env, started
    finally:
        await env.shutdown()


@pytest.fixture
async def time_skipping_env(
    time_skipping_server: tuple[WorkflowEnvironment, StartedWorkflows],
) -> AsyncIterator[WorkflowEnvironment]:
    """The shared time-skipping server; what a test leaves running is terminated after it.

    A workflow left running holds the shared clock: its next timer fires into a task queue
    nobody polls any more, and time stops skipping for every later test."""
    env, started = time_skipping_server
    started.ids.clear()
    yield env
    for workflow_id in sorted(started.ids):
        with contextlib.suppress(RPCError):
            await env.client.get_workflow_handle(workflow_id).terminate()
    started.ids.clear()


@pytest.fixture(scope="session")
async def local_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (``temporal`` CLI), for updates and search attributes."""
    binary = find("temporal")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary,
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
    )
    try:
        yield env
    finally:
        await env.shutdown()

"""The embedded stack `make run` starts (PostgreSQL, Temporal, anvil, Stripe sandbox, worker,
API over TCP), once per test session, for tests that go through HTTP end to end."""

import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial

import pytest
from httpx import AsyncClient
from temporalio.client import Client

from devstack.ephemeral import RunningStack, ephemeral_stack
from integrations.temporal import connect
from tests.conftest import TokenFactory, token_headers


class Names:
    """Per-test ids on the shared stack: ``n("rider_a")`` is ``rider_a-<suffix>``."""

    def __init__(self) -> None:
        self.suffix = uuid.uuid4().hex[:8]

    def __call__(self, base: str) -> str:
        return f"{base}-{self.suffix}"


@pytest.fixture
def n() -> Names:
    return Names()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with ephemeral_stack(tmp_path_factory.mktemp("embedded")) as stack:
        yield stack


@pytest.fixture
async def stack_api(embedded: RunningStack) -> AsyncIterator[AsyncClient]:
    url = f"http://127.0.0.1:{embedded.settings.api_port}"
    async with AsyncClient(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def stack_temporal(embedded: RunningStack) -> Client:
    settings = embedded.settings
    return await connect(settings.temporal_address, settings.temporal_namespace)


@pytest.fixture
def auth(embedded: RunningStack) -> TokenFactory:
    """Tokens the embedded stack accepts (its JWT secret, not the unit tests')."""
    return partial(token_headers, embedded.settings)

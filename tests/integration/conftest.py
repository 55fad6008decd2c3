"""The API wired to a real Temporal dev server and a worker running the project's workflows."""

from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from models.engine import make_engine, make_sessionmaker
from settings import Settings
from worker import WORKFLOWS, activities


@pytest.fixture
def stack_settings(settings: Settings, local_temporal: WorkflowEnvironment) -> Settings:
    target = local_temporal.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": target})


@pytest.fixture
async def stack_api(
    stack_settings: Settings, local_temporal: WorkflowEnvironment
) -> AsyncIterator[AsyncClient]:
    engine = make_engine(stack_settings.sqlalchemy_url)
    app = create_app(stack_settings)
    async with Worker(
        local_temporal.client,
        task_queue=stack_settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(make_sessionmaker(engine), stack_settings),
    ):
        async with app.router.lifespan_context(app):
            transport = ASGITransport(app=app)
            async with AsyncClient(transport=transport, base_url="http://tollgate.test") as client:
                yield client
    await engine.dispose()

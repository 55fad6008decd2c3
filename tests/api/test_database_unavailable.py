"""With PostgreSQL away the API answers 503 in the error envelope, with ``Retry-After`` and
nothing of the driver's error: in a route, and in the idempotency middleware, which reads its
keys before the route runs. (The fault tests restart a real PostgreSQL under the running
stack: ``tests/faults/test_postgres_restart.py``.)"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from httpx import AsyncClient

from devstack import postgres
from devstack.net import free_port
from integrations.ticket_keys import ensure_development_keyring
from settings import Settings
from tests.conftest import in_process_api, token_headers

LEAKS = ("Traceback", "psycopg", "sqlalchemy", "OperationalError", "connection")


@pytest.fixture
async def api_without_database(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, Settings]]:
    keys = tmp_path / "ticket-keys.json"
    ensure_development_keyring(keys, key_id="test-1")
    settings = Settings(
        data_dir=tmp_path,
        # Nothing listens there: every connection is refused.
        database_url=postgres.url(free_port(), "tollgate"),
        ticket_keys_file=keys,
        temporal_address=f"127.0.0.1:{free_port()}",
        chain_rpc_url=f"http://127.0.0.1:{free_port()}",
        stripe_api_base=f"http://127.0.0.1:{free_port()}",
        jwt_secret="test-secret-0123456789-0123456789-0123456789",
        _env_file=None,
    )
    async with in_process_api(settings) as client:
        yield client, settings


def assert_database_unavailable(answer_status: int, body: dict[str, object], text: str) -> None:
    assert answer_status == 503, text
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["type"], error["code"]) == ("api_error", "database_unavailable"), error
    assert set(error) == {"type", "code", "message", "param"}, error
    assert not any(leak in text for leak in LEAKS), text


async def test_a_read_answers_503_in_the_envelope(
    api_without_database: tuple[AsyncClient, Settings],
) -> None:
    api, settings = api_without_database
    answer = await api.get(
        "/api/v1/escrow-holds", headers=token_headers(settings, "platform_admin")
    )
    assert_database_unavailable(answer.status_code, answer.json(), answer.text)
    assert answer.headers["retry-after"] == "5"


async def test_a_create_under_an_idempotency_key_answers_503_in_the_envelope(
    api_without_database: tuple[AsyncClient, Settings],
) -> None:
    api, settings = api_without_database
    answer = await api.post(
        "/api/v1/escrow-holds",
        json={
            "payer_id": "payer-1",
            "payee_id": "payee-1",
            "amount": 100,
            "currency": "USD",
            "reason": "guarantee_period",
            "release_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers={
            **token_headers(settings, "platform_admin"),
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    assert_database_unavailable(answer.status_code, answer.json(), answer.text)
    assert answer.headers["retry-after"] == "5"

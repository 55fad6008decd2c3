"""``GET /api/v1/liquidity`` in process, with the balances read live from a Stripe sandbox of
its own (exact balances) and the test token on anvil: positions per rail and currency, the
volume window, who may read it, and a 503 naming the provider that does not answer."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.chain import TEST_TOKEN_FLOAT
from models.outbox import OutboxEvent
from models.transfers import Transfer
from settings import Settings
from tests.api.conftest import error_code
from tests.conftest import TokenFactory, in_process_api
from tests.fixtures.chain import Deployment
from tests.fixtures.stripe_sandbox import StripeSandbox, run_stripe_sandbox

URL = "/api/v1/liquidity"


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeSandbox]:
    """A sandbox of this module's own, so its balance is exactly what the tests put in."""
    with run_stripe_sandbox(tmp_path_factory.mktemp("liquidity-sandbox")) as sandbox:
        sandbox.fund(1_000_000, "usd")
        yield sandbox


@pytest.fixture
async def live(
    settings: Settings, own_sandbox: StripeSandbox, deployment: Deployment
) -> AsyncIterator[AsyncClient]:
    """The API with both providers up: the sandbox, and anvil with the test token whose
    float the default sender key holds."""
    on_providers = settings.model_copy(
        update={
            "stripe_api_base": own_sandbox.url,
            "stripe_api_key": own_sandbox.api_key,
            "chain_rpc_url": deployment.node.rpc_url,
            "chain_deployments_file": deployment.settings.deployments_file,
        }
    )
    async with in_process_api(on_providers) as client:
        yield client


def transfer(
    rail: str, currency: str, amount: int, status: str, days_ago: float | None = None
) -> Transfer:
    transfer_id = uuid.uuid4()
    now = datetime.now(UTC)
    return Transfer(
        id=transfer_id,
        partner_id="liquidity-partner",
        reference=f"liq-{transfer_id.hex[:16]}",
        destination="acct_1Liquidity" if rail == "stripe" else "0x" + "ef" * 20,
        amount=amount,
        currency=currency,
        rail=rail,
        route_reason="test",
        status=status,
        attempts=0,
        key_run=0,
        idempotency_key=f"transfer-{transfer_id}",
        external_id="ext" if status == "succeeded" else None,
        window_at=now + timedelta(hours=1) if status == "queued" else None,
        completed_at=now - timedelta(days=days_ago) if days_ago is not None else None,
    )


@pytest.fixture
async def seeded(db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as session, session.begin():
        session.add_all(
            [
                transfer("stripe", "USD", 200_000, "queued"),
                # 700,000 over the week, 100,000 of it today.
                *(transfer("stripe", "USD", 100_000, "succeeded", day + 0.5) for day in range(7)),
                # 1,000 USD queued on the chain: 1,000,000,000 of the USDC float.
                transfer("chain", "USD", 100_000, "queued"),
                transfer("chain", "USDC", 7 * 10**14, "succeeded", 3),
            ]
        )
        session.add(
            OutboxEvent(
                event_type="liquidity.runway_low",
                entity_type="liquidity",
                entity_id="stripe:USD",
                payload={"id": "stripe:USD"},
            )
        )


async def test_positions_per_rail_and_currency_read_live(
    live: AsyncClient, auth: TokenFactory, seeded: None
) -> None:
    response = await live.get(URL, headers=auth("billing_admin"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["window_days"], body["alert_days"]) == ("liquidity", 7, 2.0)
    rows = {(row["rail"], row["currency"]): row for row in body["data"]}
    assert set(rows) == {("chain", "USDC"), ("stripe", "USD")}
    stripe_usd = rows["stripe", "USD"]
    assert stripe_usd | {"last_event_at": None} == {
        "rail": "stripe",
        "currency": "USD",
        "available": 1_000_000,
        "pending": 0,
        "committed": 200_000,
        "free": 800_000,
        "daily_volume": 100_000,
        "window_days": 7,
        "runway_days": 8.0,
        "low": False,
        "overcommitted": False,
        "last_event": "liquidity.runway_low",
        "last_event_at": None,
    }
    assert stripe_usd["last_event_at"] is not None
    chain = rows["chain", "USDC"]
    assert (chain["available"], chain["committed"], chain["daily_volume"]) == (
        TEST_TOKEN_FLOAT,
        10**9,
        10**14,
    )
    assert (chain["runway_days"], chain["low"], chain["last_event"]) == (9.99, False, None)

    # Over the last day only (and one rail): the 100,000 sent today, 8 days again.
    one_day = await live.get(
        URL, params={"days": 1, "rail": "stripe"}, headers=auth("billing_admin")
    )
    assert one_day.status_code == 200, one_day.text
    (only,) = one_day.json()["data"]
    assert (only["rail"], only["daily_volume"], only["runway_days"]) == ("stripe", 100_000, 8.0)


@pytest.mark.parametrize("days", ["0", "91", "week"])
async def test_the_volume_window_is_1_to_90_days(
    api: AsyncClient, auth: TokenFactory, days: str
) -> None:
    response = await api.get(URL, params={"days": days}, headers=auth("platform_admin"))

    assert response.status_code == 400
    assert error_code(response) == "parameter_invalid"
    assert response.json()["error"]["param"] == "days"


async def test_only_admins_read_liquidity(api: AsyncClient, auth: TokenFactory) -> None:
    for role in ("customer", "vendor", "driver"):
        response = await api.get(URL, headers=auth(role))
        assert response.status_code == 403, role
    assert (await api.get(URL)).status_code == 401


async def test_a_provider_down_is_a_503_naming_it(
    api: AsyncClient, auth: TokenFactory, settings: Settings, own_sandbox: StripeSandbox
) -> None:
    # The test settings point Stripe and the chain at ports nobody listens on.
    both = await api.get(URL, headers=auth("platform_admin"))
    assert both.status_code == 503
    assert error_code(both) == "balance_unavailable"
    message = both.json()["error"]["message"]
    assert "stripe balance is unavailable" in message and "chain balance" in message

    only_chain_down = settings.model_copy(
        update={"stripe_api_base": own_sandbox.url, "stripe_api_key": own_sandbox.api_key}
    )
    async with in_process_api(only_chain_down) as client:
        chain = await client.get(URL, headers=auth("platform_admin"))
        assert chain.status_code == 503
        assert chain.json()["error"]["message"].startswith("the chain balance is unavailable")
        # The other rail alone still answers.
        stripe_only = await client.get(
            URL, params={"rail": "stripe"}, headers=auth("platform_admin")
        )
        assert stripe_only.status_code == 200, stripe_only.text
        assert [row["rail"] for row in stripe_only.json()["data"]] == ["stripe"]

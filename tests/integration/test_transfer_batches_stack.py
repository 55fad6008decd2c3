"""Batch payouts on the embedded stack, through HTTP, on both rails. (The 1,000-item CSV
batch, once per item, is in ``test_reconciliation_stack.py``, which reconciles it.)"""

import asyncio
import time
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from devstack.ephemeral import RunningStack
from integrations.chain import make_web3
from integrations.token_contract import TokenContract
from tests.conftest import TokenFactory
from tests.integration.conftest import Names

pytestmark = pytest.mark.integration


async def all_items(
    api: AsyncClient, headers: dict[str, str], batch_id: str
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["starting_after"] = cursor
        page = await api.get(
            f"/api/v1/transfers/batch/{batch_id}/items", params=params, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["data"]
        if not body["has_more"]:
            return found
        cursor = body["next_cursor"]


async def test_a_batch_pays_on_both_rails(
    stack_api: AsyncClient, auth: TokenFactory, n: Names, embedded: RunningStack
) -> None:
    """USDC and USD to addresses go on the chain (anvil's TestUSD, 6 decimals), USD to a
    connected account through Stripe; each chain item's transaction moved its amount."""
    admin = auth("platform_admin", sub="ops-rails")
    addresses = ["0x" + uuid.uuid4().hex + f"{i:08x}" for i in range(3)]
    items = [
        {
            "reference": n("usdc-0"),
            "destination": addresses[0],
            "amount": 1_500_000,
            "currency": "USDC",
        },
        {
            "reference": n("usdc-1"),
            "destination": addresses[1],
            "amount": 2_000_000,
            "currency": "USDC",
        },
        {
            "reference": n("usd-chain"),
            "destination": addresses[2],
            "amount": 1_234,
            "currency": "USD",
        },
        {
            "reference": n("usd-stripe"),
            "destination": "acct_1Rails",
            "amount": 700,
            "currency": "USD",
        },
    ]
    base = embedded.settings.stripe_api_base
    assert base is not None
    async with AsyncClient(base_url=base, timeout=30) as stripe:
        funded = await stripe.post("/_sandbox/fund", json={"amount": 700, "currency": "usd"})
        assert funded.status_code == 200, funded.text
    created = await stack_api.post(
        "/api/v1/transfers/batch", json={"partner_id": n("partner"), "items": items}, headers=admin
    )
    assert created.status_code == 201, created.text
    batch = created.json()
    started = time.monotonic()
    while batch["status"] == "processing":
        assert time.monotonic() - started < 120, batch
        await asyncio.sleep(0.5)
        batch = (
            await stack_api.get(f"/api/v1/transfers/batch/{batch['id']}", headers=admin)
        ).json()

    assert (batch["status"], batch["succeeded_count"]) == ("completed", 4)
    paid = await all_items(stack_api, admin, batch["id"])
    assert [(t["rail"], t["status"]) for t in paid] == [
        ("chain", "succeeded"),
        ("chain", "succeeded"),
        ("chain", "succeeded"),
        ("stripe", "succeeded"),
    ]
    assert paid[2]["route_reason"] == "USD to a chain address"
    w3 = make_web3(embedded.settings.chain_rpc_url)
    token = TokenContract(w3, embedded.settings.token_address())
    # 12.34 USD is 12,340,000 base units of the 6-decimal token.
    for address, amount in zip(addresses, (1_500_000, 2_000_000, 12_340_000), strict=True):
        assert token.balance_of(address) == amount
    for item in paid[:3]:
        [moved] = token.transfers_in(item["external_id"])
        assert moved.to.lower() == item["destination"].lower()

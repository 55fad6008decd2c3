"""Proofs and anchor batches over HTTP (in process, real PostgreSQL; the chain node is
absent, so confirmations come from the database)."""

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import SYSTEM
from domain.anchor_proofs import AnchorProof, ticket_leaf
from models.tickets import Ticket
from services import anchoring
from tests.conftest import TokenFactory
from tests.fixtures.tickets import issue_tickets

TX = "0x" + "ab" * 32
CONTRACT = "0x" + "cd" * 20


async def make_ticket(db: async_sessionmaker[AsyncSession], rider: str) -> Ticket:
    [ticket] = await issue_tickets(db, 1, rider=rider, driver="drv-1")
    return ticket


async def batch_and_submit(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session, session.begin():
        batch = await anchoring.create_batch(session, max_leaves=100, actor=SYSTEM)
        assert batch is not None
        await anchoring.mark_submitted(
            session, batch.id, tx_hash=TX, chain_id=31337, contract_address=CONTRACT, actor=SYSTEM
        )
        return batch.id


async def test_proof_says_not_anchored_yet_then_gives_the_path_once_submitted(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    ticket = await make_ticket(db, "rider-1")
    await make_ticket(db, "rider-2")
    url = f"/api/v1/tickets/{ticket.id}/proof"
    rider = auth("customer", sub="rider-1")

    waiting = await api.get(url, headers=rider)
    assert waiting.status_code == 200, waiting.text
    body = waiting.json()
    assert body["anchored"] is False and body["status"] == "NOT_BATCHED"
    assert "not anchored yet" in body["message"] and body["root"] is None

    batch_id = await batch_and_submit(db)
    submitted = (await api.get(url, headers=rider)).json()
    assert submitted["anchored"] is False and submitted["status"] == "SUBMITTED"
    assert submitted["batch_id"] == batch_id and submitted["transaction_hash"] == TX
    assert submitted["leaf"] == "0x" + ticket_leaf(ticket.payload).hex()
    assert submitted["tree_size"] == 2 and len(submitted["siblings"]) == 1
    assert AnchorProof.from_document(submitted).path_verifies()


async def test_only_the_rider_the_driver_and_admins_read_a_proof(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    ticket = await make_ticket(db, "rider-1")
    url = f"/api/v1/tickets/{ticket.id}/proof"
    for headers, status in [
        (auth("customer", sub="rider-1"), 200),
        (auth("driver", sub="drv-1"), 200),
        (auth("platform_admin"), 200),
        (auth("customer", sub="rider-2"), 404),
        (auth("driver", sub="drv-2"), 404),
        (auth("vendor", sub="rider-1"), 404),
    ]:
        assert (await api.get(url, headers=headers)).status_code == status
    missing = await api.get(f"/api/v1/tickets/{uuid.uuid4()}/proof", headers=auth("platform_admin"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    assert (await api.get(url)).status_code == 401


async def test_admins_list_and_read_batches(
    api: AsyncClient, auth: TokenFactory, db: async_sessionmaker[AsyncSession]
) -> None:
    await make_ticket(db, "rider-1")
    first = await batch_and_submit(db)
    await make_ticket(db, "rider-1")
    second = await batch_and_submit(db)
    admin = auth("platform_admin")

    page = (await api.get("/api/v1/anchors/batches", params={"limit": 1}, headers=admin)).json()
    assert [b["id"] for b in page["data"]] == [second] and page["has_more"] is True
    rest = await api.get(
        "/api/v1/anchors/batches",
        params={"starting_after": page["next_cursor"], "status": "SUBMITTED"},
        headers=admin,
    )
    assert [b["id"] for b in rest.json()["data"]] == [first]
    one = (await api.get(f"/api/v1/anchors/batches/{first}", headers=admin)).json()
    assert one["status"] == "SUBMITTED" and one["transaction_hash"] == TX
    assert one["leaf_count"] == 1 and one["root"].startswith("0x")

    assert (await api.get("/api/v1/anchors/batches/999999", headers=admin)).status_code == 404
    bad_status = await api.get("/api/v1/anchors/batches", params={"status": "DONE"}, headers=admin)
    assert bad_status.status_code == 400
    bad_cursor = await api.get(
        "/api/v1/anchors/batches", params={"starting_after": "x"}, headers=admin
    )
    assert bad_cursor.status_code == 400
    customer = auth("customer", sub="rider-1")
    assert (await api.get("/api/v1/anchors/batches", headers=customer)).status_code == 403
    assert (await api.post("/api/v1/anchors/run", headers=customer)).status_code == 403

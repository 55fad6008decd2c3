"""The money the fault tests move, started through the fault stack's API as a marketplace
would, followed in its database, and audited against the three books afterwards.

- A **batch payout**: ``POST /api/v1/transfers/batch``, items on Stripe (``acct_...``) and,
  optionally, on the chain (USDC to ``0x`` addresses), each to a destination of its own.
- **Escrow holds with their payouts**: per item ``POST /api/v1/escrow-holds`` (released by
  its workflow's timer at ``release_at``) and ``POST /api/v1/payout-schedules`` for the same
  payee and instant, linked to the hold (paid by its workflow's timer through a Stripe
  transfer), as a placement's guarantee period does; each payee and destination its own.
"""

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.actors import Role
from domain.tokens import mint
from integrations.chain import make_web3
from integrations.token_contract import TokenContract
from services.escrow import payee_account
from services.transfers import external_account
from settings import Settings
from tests.faults.audit import (
    Figures,
    MovementAudit,
    by_destination,
    ledger_postings,
    sandbox_movements,
)

CURRENCY = "USD"


def admin_headers(settings: Settings, sub: str = "ops-faults") -> dict[str, str]:
    token = mint(
        subject=sub,
        role=Role.PLATFORM_ADMIN,
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl=timedelta(hours=2),
    )
    return {"Authorization": f"Bearer {token}"}


async def fund(sandbox: httpx.AsyncClient, amount: int) -> None:
    funded = await sandbox.post(
        "/_sandbox/fund",
        json={"amount": amount, "currency": CURRENCY.lower()},
        headers={"Sandbox-Fault": "none"},
    )
    assert funded.status_code == 200, funded.text


async def post_retrying(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """A create under an Idempotency-Key, retried on a 503 (a part of the stack away) or a
    lost connection: the key makes the retry return the first answer, never a second row."""
    key = uuid.uuid4().hex
    for attempt in range(60):
        try:
            answer = await api.post(path, json=body, headers={**headers, "Idempotency-Key": key})
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code in (200, 201):
            created: dict[str, Any] = answer.json()
            return created
        if answer is not None and answer.status_code not in (409, 503):
            raise AssertionError(f"POST {path}: {answer.status_code} {answer.text}")
        await asyncio.sleep(min(0.25 * (attempt + 1), 2))
    raise AssertionError(f"POST {path} kept failing")


# Batch payouts


@dataclass(frozen=True)
class BatchItem:
    transfer_id: str
    rail: str
    destination: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Batch:
    batch_id: str
    items: tuple[BatchItem, ...]
    from_block: int

    @property
    def stripe_total(self) -> int:
        return sum(i.amount for i in self.items if i.rail == "stripe")


def batch_items(
    rng: random.Random, prefix: str, count: int, chain_share: float
) -> list[dict[str, Any]]:
    """``count`` items, about ``chain_share`` of them USDC on the chain, each to its own
    destination, amounts drawn from ``rng``."""
    items = []
    for i in range(count):
        on_chain = rng.random() < chain_share
        items.append(
            {
                "reference": f"{prefix}-{i}",
                "destination": ("0x" + uuid.uuid4().hex + f"{i:08x}")
                if on_chain
                else f"acct_{uuid.uuid4().hex[:16]}",
                "amount": rng.randint(1, 500) * 10_000 if on_chain else rng.randint(100, 99_999),
                "currency": "USDC" if on_chain else CURRENCY,
            }
        )
    return items


def chain_block(settings: Settings) -> int:
    return int(make_web3(settings.chain_rpc_url).eth.block_number)


async def start_batch(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    items: list[dict[str, Any]],
    partner: str,
) -> Batch:
    """Funds the Stripe float for it, uploads it, and returns its transfers (from the rows)."""
    from_block = await asyncio.to_thread(chain_block, settings)
    await fund(sandbox, sum(i["amount"] for i in items if i["currency"] == CURRENCY))
    created = await post_retrying(
        api,
        "/api/v1/transfers/batch",
        {"partner_id": partner, "items": items},
        admin_headers(settings),
    )
    batch_id = created["id"]
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, rail, destination, amount, currency FROM transfers"
                " WHERE batch_id = :batch ORDER BY item_index"
            ),
            {"batch": batch_id},
        )
        found = tuple(
            BatchItem(str(r.id), r.rail, r.destination, int(r.amount), r.currency) for r in rows
        )
    assert len(found) == len(items)
    return Batch(batch_id, found, from_block)


async def batch_progress(sessions: async_sessionmaker[AsyncSession], batch: Batch) -> int:
    """Items final (succeeded or failed)."""
    async with sessions() as session:
        done = await session.scalar(
            text(
                "SELECT count(*) FROM transfers WHERE batch_id = :batch"
                " AND status IN ('succeeded', 'failed', 'cancelled')"
            ),
            {"batch": batch.batch_id},
        )
    return int(done or 0)


async def batch_status(sessions: async_sessionmaker[AsyncSession], batch: Batch) -> str:
    async with sessions() as session:
        status = await session.scalar(
            text("SELECT status FROM transfer_batches WHERE id = :batch"),
            {"batch": batch.batch_id},
        )
    return str(status)


async def batch_failures(sessions: async_sessionmaker[AsyncSession], batch: Batch) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, status, attempts, last_error FROM transfers"
                " WHERE batch_id = :batch AND status <> 'succeeded'"
            ),
            {"batch": batch.batch_id},
        )
        return [f"{r.id} {r.status} after {r.attempts}: {r.last_error}" for r in rows]


async def audit_batch(
    audit: MovementAudit,
    batch: Batch,
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """One movement per item, ``transfer:<id>``: on Stripe the sandbox's transfers to its
    destination, on the chain the token's Transfer events from the sender to it; in the
    ledger the postings to its external account."""
    for item in batch.items:
        books = ("stripe" if item.rail == "stripe" else "chain", "ledger")
        audit.expect(f"transfer:{item.transfer_id}", item.amount, books)
    keys = {item.destination.lower(): f"transfer:{item.transfer_id}" for item in batch.items}
    moved = by_destination(await sandbox_movements(sandbox, "transfer"))
    for item in batch.items:
        if item.rail == "stripe":
            for row in moved.get(item.destination, []):
                audit.record("stripe", keys[item.destination], int(row["amount"]), row["id"])
    if any(item.rail == "chain" for item in batch.items):
        for transfer in await asyncio.to_thread(chain_transfers, settings, batch.from_block):
            key = keys.get(transfer.to.lower())
            if key is not None:
                audit.record("chain", key, transfer.amount, transfer.tx_hash)
    accounts = {external_account(i.rail, i.destination): i for i in batch.items}
    for code, postings in (await ledger_postings(sessions, accounts)).items():
        item = accounts[code]
        for amount, ref in postings:
            audit.record("ledger", f"transfer:{item.transfer_id}", amount, ref)


def chain_transfers(settings: Settings, from_block: int) -> list[Any]:
    """The token's transfers sent by the platform's key since ``from_block``."""
    token = TokenContract(make_web3(settings.chain_rpc_url), settings.token_address())
    return token.transfers(from_block, sender=settings.chain_sender_address())


# Escrow holds and their payouts


@dataclass(frozen=True)
class HeldPayout:
    hold_id: str
    schedule_id: str
    payee: str
    destination: str
    amount: int
    due: datetime


async def create_held_payouts(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    settings: Settings,
    rng: random.Random,
    prefix: str,
    count: int,
    *,
    due_in: float = 0,
    due_at: Callable[[int], datetime] | None = None,
    concurrency: int = 8,
) -> list[HeldPayout]:
    """``count`` holds, each with its payout schedule, due ``due_in`` seconds after it is
    created (their timers fire as the later ones are still being created), or at
    ``due_at(i)``. The payouts use an explicit retry policy of 8 attempts from 1 s (the
    API's default, 3 attempts from 60 s, would make a test wait minutes on a 429)."""
    amounts = [rng.randint(100, 50_000) for _ in range(count)]
    await fund(sandbox, sum(amounts))
    headers = admin_headers(settings)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> HeldPayout:
        payee = f"{prefix}-payee-{i}"
        destination = f"acct_{uuid.uuid4().hex[:16]}"
        async with gate:
            when = due_at(i) if due_at else datetime.now(UTC) + timedelta(seconds=due_in)
            due = when.isoformat()
            hold = await post_retrying(
                api,
                "/api/v1/escrow-holds",
                {
                    "payer_id": f"{prefix}-payer-{i}",
                    "payee_id": payee,
                    "amount": amounts[i],
                    "currency": CURRENCY,
                    "reason": "guarantee_period",
                    "release_at": due,
                },
                headers,
            )
            schedule = await post_retrying(
                api,
                "/api/v1/payout-schedules",
                {
                    "payee_id": payee,
                    "destination": destination,
                    "amount": amounts[i],
                    "currency": CURRENCY,
                    "trigger_event": "guarantee_period_end",
                    "scheduled_for": due,
                    "hold_id": hold["id"],
                    "max_attempts": 8,
                    "backoff_seconds": 1,
                },
                headers,
            )
        return HeldPayout(hold["id"], schedule["id"], payee, destination, amounts[i], when)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def held_payouts_progress(
    sessions: async_sessionmaker[AsyncSession], held: Sequence[HeldPayout]
) -> tuple[int, int]:
    """Holds released and payout schedules final (completed, failed)."""
    async with sessions() as session:
        released = await session.scalar(
            text("SELECT count(*) FROM escrow_holds WHERE id = ANY(:ids) AND status = 'released'"),
            {"ids": [uuid.UUID(h.hold_id) for h in held]},
        )
        paid = await session.scalar(
            text(
                "SELECT count(*) FROM payout_schedules WHERE id = ANY(:ids)"
                " AND status IN ('completed', 'failed', 'cancelled')"
            ),
            {"ids": [uuid.UUID(h.schedule_id) for h in held]},
        )
    return int(released or 0), int(paid or 0)


async def payout_failures(
    sessions: async_sessionmaker[AsyncSession], held: Sequence[HeldPayout]
) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, status, retry_count, last_error FROM payout_schedules"
                " WHERE id = ANY(:ids) AND status <> 'completed'"
            ),
            {"ids": [uuid.UUID(h.schedule_id) for h in held]},
        )
        return [f"{r.id} {r.status} after {r.retry_count}: {r.last_error}" for r in rows]


async def audit_held_payouts(
    audit: MovementAudit,
    held: Sequence[HeldPayout],
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two movements per item: ``release:<hold>`` (escrow to the payee's payable, in the
    ledger alone: no provider moves money then) and ``payout:<schedule>`` (a Stripe transfer
    to the destination; in the ledger the payee's payable debited)."""
    for item in held:
        audit.expect(f"release:{item.hold_id}", item.amount, ("ledger",))
        audit.expect(f"payout:{item.schedule_id}", item.amount, ("stripe", "ledger"))
    by_payee = {payee_account(item.payee): item for item in held}
    moved = by_destination(await sandbox_movements(sandbox, "transfer"))
    for item in held:
        for row in moved.get(item.destination, []):
            audit.record("stripe", f"payout:{item.schedule_id}", int(row["amount"]), row["id"])
    for code, postings in (await ledger_postings(sessions, by_payee)).items():
        item = by_payee[code]
        for amount, ref in postings:
            if amount > 0:  # the payee's payable credited by the release...
                audit.record("ledger", f"release:{item.hold_id}", amount, ref)
            else:  # ...and debited by the payout
                audit.record("ledger", f"payout:{item.schedule_id}", -amount, ref)


async def batch_and_payouts_final(
    sessions: async_sessionmaker[AsyncSession], batch: Batch, held: Sequence[HeldPayout]
) -> bool:
    """Every hold released, every payout and batch item final, the batch no longer running."""
    released, paid = await held_payouts_progress(sessions, held)
    return (
        released == paid == len(held)
        and await batch_progress(sessions, batch) == len(batch.items)
        and await batch_status(sessions, batch) != "processing"
    )


async def audit_batch_and_payouts(
    scenario: str,
    notes: str,
    batch: Batch,
    held: Sequence[HeldPayout],
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> list[Figures]:
    """A scenario's two audits, after each item was asserted to have succeeded: the batch's
    transfers, and the holds' releases with their payouts."""
    assert await batch_failures(sessions, batch) == []
    assert await payout_failures(sessions, held) == []
    batch_audit = MovementAudit(f"{scenario}: {len(batch.items)}-item batch payout")
    await audit_batch(batch_audit, batch, sandbox, sessions, settings)
    holds_audit = MovementAudit(f"{scenario}: {len(held)} holds released, paid out")
    await audit_held_payouts(holds_audit, held, sandbox, sessions)
    return [batch_audit.figures(notes), holds_audit.figures(notes)]

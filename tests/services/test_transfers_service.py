"""Transfers and batches on a real PostgreSQL: validation that reports every error with one
query, all-or-nothing creation, each transfer's compare-and-set moves with the batch's
counts, the ledger entry, retrying only failed items, cancelling and completing a batch."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from domain.errors import Conflict, NotFound, ValidationError
from domain.rails import RoutingRules
from domain.transfers import BatchSource
from models.outbox import OutboxEvent
from models.transfers import Transfer, TransferBatch
from services import ledger, transfers

ACCOUNT = "acct_1Payee"
ADDRESS = "0x" + "ef" * 20
RULES = RoutingRules(partners={"partner-strict": {"USD": "stripe"}})


def partner() -> str:
    return f"partner-{uuid.uuid4().hex[:8]}"


def items(count: int, prefix: str = "inv", **fields: Any) -> list[dict[str, Any]]:
    return [
        {
            "reference": f"{prefix}-{i}",
            "destination": ACCOUNT,
            "amount": 1_000 + i,
            "currency": "USD",
            **fields,
        }
        for i in range(count)
    ]


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    """The SQL statements the session sends inside the block."""
    seen: list[str] = []
    connection = session.bind.sync_connection  # type: ignore[union-attr]

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


async def balance(session: AsyncSession, code: str, currency: str = "USD") -> int:
    try:
        return (await ledger.balances(session, code)).get(currency, 0)
    except NotFound:
        return 0


async def events(session: AsyncSession, entity_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxEvent.event_type)
        .where(OutboxEvent.entity_id == str(entity_id))
        .order_by(OutboxEvent.id)
    )
    return list(rows)


async def new_batch(
    session: AsyncSession, count: int = 3, who: str | None = None
) -> transfers.TransferBatch:
    return await transfers.create_batch(
        session,
        partner_id=who or partner(),
        items=items(count),
        source=BatchSource.JSON,
        rules=RULES,
        actor=SYSTEM,
    )


async def batch_items(session: AsyncSession, batch_id: uuid.UUID) -> list[Transfer]:
    return list(await transfers.list_items(session, batch_id, limit=1000))


async def test_validation_reports_every_error_with_one_query(session: AsyncSession) -> None:
    who = partner()
    await new_batch(session, 1, who)  # stores inv-0 for this partner
    batch = [
        *items(4),
        {"reference": "inv-1", "destination": ADDRESS, "amount": 0, "currency": "EUR"},
        {"reference": "", "destination": ACCOUNT, "amount": "ten", "currency": "USD"},
    ]

    with statements(session) as sent:
        valid, errors = await transfers.validate_batch(session, who, batch, RULES)

    assert len(sent) == 1, sent
    assert valid == []
    assert [(e.row, e.field, e.code) for e in errors] == [
        (1, "reference", "reference_used"),
        (5, "amount", "invalid"),
        (5, "currency", "route_incompatible"),
        (5, "reference", "duplicate_reference"),
        (6, "reference", "missing"),
        (6, "amount", "invalid"),
    ]


async def test_a_batch_with_one_invalid_item_is_refused_whole(session: AsyncSession) -> None:
    who = partner()
    batch = items(5)
    batch[3]["destination"] = "not-an-account"

    with pytest.raises(ValidationError) as refused:
        await transfers.create_batch(
            session,
            partner_id=who,
            items=batch,
            source=BatchSource.JSON,
            rules=RULES,
            actor=SYSTEM,
        )

    assert refused.value.code == "batch_invalid"
    assert refused.value.message == "1 of 5 items are invalid: nothing was stored"
    assert refused.value.details["errors"] == [
        {
            "row": 4,
            "field": "destination",
            "code": "invalid_destination",
            "message": refused.value.details["errors"][0]["message"],
        }
    ]
    stored = await session.scalar(
        select(func.count()).select_from(Transfer).where(Transfer.partner_id == who)
    )
    batches = await session.scalar(
        select(func.count()).select_from(TransferBatch).where(TransferBatch.partner_id == who)
    )
    assert (stored, batches) == (0, 0)


async def test_a_partner_override_refusal_names_the_partner(session: AsyncSession) -> None:
    with pytest.raises(ValidationError) as refused:
        await transfers.create_batch(
            session,
            partner_id="partner-strict",
            items=items(1, prefix=uuid.uuid4().hex, destination=ADDRESS),
            source=BatchSource.JSON,
            rules=RULES,
            actor=SYSTEM,
        )
    [error] = refused.value.details["errors"]
    assert error["code"] == "route_incompatible"
    assert "partner partner-strict routes USD to stripe" in error["message"]


async def test_a_valid_batch_stores_routed_pending_transfers(session: AsyncSession) -> None:
    who = partner()
    batch = await transfers.create_batch(
        session,
        partner_id=who,
        items=[*items(2), {**items(1, "chain")[0], "destination": ADDRESS, "currency": "USDC"}],
        source=BatchSource.CSV,
        rules=RULES,
        actor=SYSTEM,
        metadata={"run": "payroll"},
    )

    assert (batch.status, batch.source, batch.total_count, batch.pending_count) == (
        "processing",
        "csv",
        3,
        3,
    )
    rows = await batch_items(session, batch.id)
    assert [(r.item_index, r.reference, r.rail, r.status) for r in rows] == [
        (0, "inv-0", "stripe", "pending"),
        (1, "inv-1", "stripe", "pending"),
        (2, "chain-0", "chain", "pending"),
    ]
    assert rows[2].route_reason == "USDC is a chain currency"
    assert all(r.idempotency_key == f"transfer-{r.id}" for r in rows)
    assert await events(session, batch.id) == ["transfer_batch.created"]
    # The same reference again, in a later batch of the partner: refused.
    with pytest.raises(ValidationError) as again:
        await transfers.create_batch(
            session,
            partner_id=who,
            items=items(1),
            source=BatchSource.JSON,
            rules=RULES,
            actor=SYSTEM,
        )
    assert again.value.details["errors"][0]["code"] == "reference_used"


async def test_a_transfer_succeeds_once_with_its_ledger_entry(session: AsyncSession) -> None:
    batch = await new_batch(session, 2)
    first, _ = await batch_items(session, batch.id)
    float_before = await balance(session, transfers.STRIPE_FLOAT_ACCOUNT)
    external = transfers.external_account("stripe", ACCOUNT)
    external_before = await balance(session, external)

    started = await transfers.start(session, first.id, actor=SYSTEM)
    assert started.status == "processing"
    assert (await transfers.start(session, first.id, actor=SYSTEM)).status == "processing"
    await transfers.succeed(session, first.id, external_id="tr_1", actor=SYSTEM)
    again = await transfers.succeed(session, first.id, external_id="tr_1", actor=SYSTEM)

    assert (again.status, again.external_id) == ("succeeded", "tr_1")
    assert await balance(session, transfers.STRIPE_FLOAT_ACCOUNT) == float_before - first.amount
    assert await balance(session, external) == external_before + first.amount
    stored = await transfers.get_batch(session, batch.id, for_update=True)
    assert (stored.pending_count, stored.succeeded_count) == (1, 1)
    assert await events(session, first.id) == ["transfer.succeeded"]
    with pytest.raises(Conflict):
        await transfers.start(session, first.id, actor=SYSTEM)


async def test_a_refusal_fails_the_transfer_and_changes_its_key(session: AsyncSession) -> None:
    batch = await new_batch(session, 2)
    first, second = await batch_items(session, batch.id)
    await transfers.start(session, first.id, actor=SYSTEM)
    await transfers.record_attempt_failure(
        session, first.id, error="ProviderError: 503", actor=SYSTEM
    )
    await transfers.start(session, second.id, actor=SYSTEM)

    refused = await transfers.fail(
        session, first.id, error="NotFound: no such destination", final=True, actor=SYSTEM
    )
    outage = await transfers.fail(
        session, second.id, error="ProviderError: 503", final=False, actor=SYSTEM
    )

    assert (refused.status, refused.attempts, refused.last_error) == (
        "failed",
        1,
        "NotFound: no such destination",
    )
    assert refused.idempotency_key == f"transfer-{first.id}-retry-1"
    assert outage.idempotency_key == f"transfer-{second.id}"  # one attempt may have paid
    assert await events(session, first.id) == ["transfer.failed"]
    with pytest.raises(Conflict):
        await transfers.succeed(session, first.id, external_id="tr_x", actor=SYSTEM)


async def test_only_failed_items_are_retried(session: AsyncSession) -> None:
    batch = await new_batch(session, 3)
    paid, failed, waiting = await batch_items(session, batch.id)
    with pytest.raises(Conflict) as nothing:
        await transfers.retry_failed(session, batch.id, actor=SYSTEM)
    assert nothing.value.code == "nothing_to_retry"
    await transfers.start(session, paid.id, actor=SYSTEM)
    await transfers.succeed(session, paid.id, external_id="tr_paid", actor=SYSTEM)
    await transfers.start(session, failed.id, actor=SYSTEM)
    await transfers.fail(session, failed.id, error="ProviderError: 503", final=False, actor=SYSTEM)

    retried = await transfers.retry_failed(session, batch.id, actor=SYSTEM)

    assert retried.transfer_ids == [failed.id]
    assert (retried.batch.status, retried.batch.run_count) == ("processing", 2)
    assert (retried.batch.pending_count, retried.batch.failed_count) == (2, 0)
    rows = {row.id: row.status for row in await batch_items(session, batch.id)}
    assert rows == {paid.id: "succeeded", failed.id: "pending", waiting.id: "pending"}
    assert not (
        await transfers.retry_failed(session, batch.id, actor=SYSTEM, require=False)
    ).transfer_ids


async def test_a_batch_finishes_when_every_item_is_final(session: AsyncSession) -> None:
    batch = await new_batch(session, 3)
    paid, failed, waiting = await batch_items(session, batch.id)
    await transfers.start(session, paid.id, actor=SYSTEM)
    await transfers.succeed(session, paid.id, external_id="tr_paid", actor=SYSTEM)
    await transfers.fail(session, failed.id, error="NotFound: gone", final=True, actor=SYSTEM)

    open_batch = await transfers.finish(session, batch.id, actor=SYSTEM)
    assert open_batch.status == "processing"  # one item still pending
    assert await transfers.cancel_pending(session, batch.id, actor=SYSTEM) == 1
    done = await transfers.finish(session, batch.id, actor=SYSTEM)
    again = await transfers.finish(session, batch.id, actor=SYSTEM)

    assert (done.status, again.status) == ("partially_completed", "partially_completed")
    assert (done.succeeded_count, done.failed_count, done.cancelled_count, done.pending_count) == (
        1,
        1,
        1,
        0,
    )
    assert done.completed_at is not None
    assert await events(session, batch.id) == [
        "transfer_batch.created",
        "transfer_batch.completed",
    ]
    assert (await transfers.get(session, waiting.id)).status == "cancelled"


async def test_a_batch_whose_items_all_failed_ends_failed(session: AsyncSession) -> None:
    batch = await new_batch(session, 2)
    for row in await batch_items(session, batch.id):
        await transfers.fail(session, row.id, error="NotFound: gone", final=True, actor=SYSTEM)
    assert (await transfers.finish(session, batch.id, actor=SYSTEM)).status == "failed"


async def test_a_reference_stored_since_validation_refuses_the_batch(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = partner()
    await new_batch(session, 1, who)  # inv-0 is taken
    # Another request stores it after this one validated: the insert finds it taken.

    async def nothing_used(*_: Any) -> set[str]:
        return set()

    monkeypatch.setattr(transfers, "used_references", nothing_used)

    with pytest.raises(ValidationError) as refused:
        await new_batch(session, 2, who)

    assert refused.value.code == "batch_invalid"
    assert [(e["row"], e["code"]) for e in refused.value.details["errors"]] == [
        (1, "reference_used")
    ]

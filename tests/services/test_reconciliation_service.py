"""Reconciliation runs on a real PostgreSQL: the ledger's side of each source read by period
(with the margin, chain amounts in the token's units, payouts on Stripe's side), a
source's results stored (again on a retry, in place), the run completed with its sums and
match rate and announced, or failed; discrepancies listed and resolved with a note."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM, Actor, Role
from domain.errors import Conflict, NotFound, ValidationError
from domain.escrow import TriggerEvent
from domain.money import Money
from domain.reconciliation import (
    DiscrepancyType,
    ExternalRecord,
    RunTrigger,
    Source,
    reconcile,
)
from domain.transfers import TransferStatus, idempotency_key
from models.audit import AuditEvent
from models.outbox import OutboxEvent
from models.reconciliation import ReconciliationDiscrepancy
from models.transfers import Transfer
from services import payouts, reconciliation

DAY = datetime(2020, 3, 10, tzinfo=UTC)
MARGIN = timedelta(hours=1)
ADMIN = Actor("ops-1", Role.PLATFORM_ADMIN)


async def add_transfer(
    session: AsyncSession,
    completed_at: datetime,
    *,
    amount: int = 1_000,
    currency: str = "USD",
    rail: str = "stripe",
    external_id: str | None = None,
    status: str = TransferStatus.SUCCEEDED.value,
) -> tuple[uuid.UUID, str]:
    transfer_id = uuid.uuid4()
    external = external_id or (
        f"tr_{transfer_id.hex[:16]}" if rail == "stripe" else "0x" + transfer_id.hex * 2
    )
    await session.execute(
        insert(Transfer).values(
            id=transfer_id,
            partner_id="partner-recon",
            reference=f"ref-{transfer_id.hex[:12]}",
            destination="acct_recon" if rail == "stripe" else "0x" + "ab" * 20,
            amount=amount,
            currency=currency,
            rail=rail,
            route_reason="test",
            status=status,
            attempts=1,
            key_run=0,
            idempotency_key=idempotency_key(transfer_id),
            external_id=external if status == TransferStatus.SUCCEEDED.value else None,
            completed_at=completed_at,
        )
    )
    return transfer_id, external


async def new_run(
    session: AsyncSession,
    start: datetime = DAY,
    end: datetime = DAY + timedelta(days=1),
    sources: tuple[str, ...] = ("stripe", "chain"),
    **options: Any,
) -> reconciliation.ReconciliationRun:
    return await reconciliation.create_run(
        session,
        period_start=start,
        period_end=end,
        trigger=RunTrigger.MANUAL,
        sources=list(sources),
        actor=ADMIN,
        **options,
    )


async def events(session: AsyncSession, entity_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxEvent.event_type)
        .where(OutboxEvent.entity_id == str(entity_id))
        .order_by(OutboxEvent.id)
    )
    return list(rows)


async def ledger_side(
    session: AsyncSession, run: reconciliation.ReconciliationRun, source: Source
) -> list[Any]:
    start, end = reconciliation.window(run, MARGIN)
    return await reconciliation.ledger_records(
        session,
        source,
        window_start=start,
        window_end=end,
        period_start=run.period_start,
        period_end=run.period_end,
    )


async def test_the_ledger_side_is_read_by_period_with_the_margin(session: AsyncSession) -> None:
    inside, inside_ref = await add_transfer(session, DAY + timedelta(hours=5))
    early, _ = await add_transfer(session, DAY - timedelta(minutes=30))
    late, _ = await add_transfer(session, DAY + timedelta(days=1, minutes=59))
    await add_transfer(session, DAY - timedelta(hours=2))  # outside the window
    await add_transfer(session, DAY + timedelta(hours=1), status="failed")
    chain_id, tx_hash = await add_transfer(
        session, DAY + timedelta(hours=3), rail="chain", amount=1_234, currency="USD"
    )
    run = await new_run(session)

    stripe_side = await ledger_side(session, run, Source.STRIPE)
    chain_side = await ledger_side(session, run, Source.CHAIN)

    assert {(r.id, r.in_period) for r in stripe_side} == {
        (str(inside), True),
        (str(early), False),
        (str(late), False),
    }
    ours = next(r for r in stripe_side if r.id == str(inside))
    assert (ours.kind, ours.external_id, ours.amount, ours.currency) == (
        "transfer",
        inside_ref,
        1_000,
        "USD",
    )
    # 12.34 USD is 12,340,000 base units of the 6-decimal token, compared as USDC.
    assert [(r.id, r.external_id, r.amount, r.currency) for r in chain_side] == [
        (str(chain_id), tx_hash, 12_340_000, "USDC")
    ]


async def test_payouts_are_on_stripes_side(session: AsyncSession) -> None:
    schedule = await payouts.create_schedule(
        session,
        payee_id=f"payee-{uuid.uuid4().hex[:6]}",
        destination="acct_driver1",
        money=Money(2_500, "USD"),
        trigger_event=TriggerEvent.GUARANTEE_PERIOD_END,
        scheduled_for=datetime.now(UTC) + timedelta(days=7),
        actor=SYSTEM,
    )
    await payouts.start_run(session, schedule.id, event="manual", actor=SYSTEM)
    transfer_id = f"tr_payout_{uuid.uuid4().hex[:8]}"
    await payouts.complete(session, schedule.id, transfer_id=transfer_id, actor=SYSTEM)
    now = datetime.now(UTC)
    run = await new_run(session, now - timedelta(hours=1), now + timedelta(hours=1))

    found = [r for r in await ledger_side(session, run, Source.STRIPE) if r.kind == "payout"]

    assert [(r.external_id, r.amount, r.currency, r.in_period) for r in found] == [
        (transfer_id, 2_500, "USD", True)
    ]


async def test_a_run_stores_each_source_then_completes_with_its_match_rate(
    session: AsyncSession,
) -> None:
    paid = [await add_transfer(session, DAY + timedelta(hours=i), amount=100 + i) for i in range(8)]
    gone_id, gone_ref = await add_transfer(session, DAY + timedelta(hours=9))
    chain_id, tx_hash = await add_transfer(
        session, DAY + timedelta(hours=10), rail="chain", amount=1_500_000, currency="USDC"
    )
    run = await new_run(session)
    stripe_external = [
        ExternalRecord(ref, 100 + i, "USD", f"txn_{i}") for i, (_, ref) in enumerate(paid)
    ] + [ExternalRecord("tr_unknown", 42, "USD", "txn_x")]
    chain_external = [ExternalRecord(tx_hash.upper().replace("0X", "0x"), 1_400_000, "USDC")]

    stripe_outcome = reconcile(await ledger_side(session, run, Source.STRIPE), stripe_external)
    await reconciliation.store_source(session, run.id, Source.STRIPE, stripe_outcome)
    chain_outcome = reconcile(await ledger_side(session, run, Source.CHAIN), chain_external)
    await reconciliation.store_source(session, run.id, Source.CHAIN, chain_outcome)
    done = await reconciliation.complete_run(session, run.id, actor=SYSTEM)

    assert (done.status, done.ledger_count, done.external_count) == ("completed", 10, 10)
    assert (done.matched_count, done.discrepancy_count) == (8, 3)
    assert done.match_rate == Decimal("72.7272")
    assert done.totals == {
        "USD": {
            "ledger": sum(100 + i for i in range(8)) + 1_000,
            "external": sum(100 + i for i in range(8)) + 42,
            "matched": sum(100 + i for i in range(8)),
        },
        "USDC": {"ledger": 1_500_000, "external": 1_400_000, "matched": 0},
    }
    assert done.source_results["chain"]["discrepancy_count"] == 1
    assert done.completed_at is not None
    found = {
        (d.type, d.source, d.external_id, d.ledger_id)
        for d in await reconciliation.list_discrepancies(session, limit=10, run_id=run.id)
    }
    assert found == {
        ("missing_settlement", "stripe", gone_ref, gone_id),
        ("unexpected_external", "stripe", "tr_unknown", None),
        ("amount_mismatch", "chain", tx_hash, chain_id),
    }
    assert await reconciliation.discrepancy_counts(session, run.id) == {
        "missing_settlement": 1,
        "unexpected_external": 1,
        "amount_mismatch": 1,
    }
    assert await events(session, run.id) == [
        "reconciliation.completed",
        "reconciliation.discrepancies_found",
    ]
    # Completing again leaves it as it is.
    again = await reconciliation.complete_run(session, run.id, actor=SYSTEM)
    assert (again.status, again.matched_count) == ("completed", 8)
    assert await events(session, run.id) == [
        "reconciliation.completed",
        "reconciliation.discrepancies_found",
    ]


async def test_a_source_stored_again_replaces_what_it_stored(session: AsyncSession) -> None:
    await add_transfer(session, DAY + timedelta(hours=1))
    run = await new_run(session, sources=("stripe",))
    records = await ledger_side(session, run, Source.STRIPE)

    await reconciliation.store_source(session, run.id, Source.STRIPE, reconcile(records, []))
    await reconciliation.store_source(session, run.id, Source.STRIPE, reconcile(records, []))

    stored = await session.scalar(
        select(func.count())
        .select_from(ReconciliationDiscrepancy)
        .where(ReconciliationDiscrepancy.run_id == run.id)
    )
    assert stored == 1
    with pytest.raises(ValidationError):
        await reconciliation.store_source(session, run.id, Source.CHAIN, reconcile([], []))


async def test_a_run_needs_every_source_before_it_completes(session: AsyncSession) -> None:
    run = await new_run(session)
    await reconciliation.store_source(session, run.id, Source.STRIPE, reconcile([], []))

    with pytest.raises(Conflict) as refused:
        await reconciliation.complete_run(session, run.id, actor=SYSTEM)
    assert refused.value.code == "run_incomplete"

    failed = await reconciliation.fail_run(
        session, run.id, error="chain: ProviderError: node down", actor=SYSTEM
    )
    assert (failed.status, failed.error) == ("failed", "chain: ProviderError: node down")
    assert await events(session, run.id) == ["reconciliation.failed"]
    with pytest.raises(Conflict):
        await reconciliation.store_source(session, run.id, Source.CHAIN, reconcile([], []))
    # A finished run is left as it is.
    assert (await reconciliation.complete_run(session, run.id, actor=SYSTEM)).status == "failed"


async def test_nothing_to_reconcile_is_a_full_match(session: AsyncSession) -> None:
    run = await new_run(session, DAY - timedelta(days=400), DAY - timedelta(days=399))
    for source in (Source.STRIPE, Source.CHAIN):
        records = await ledger_side(session, run, source)
        await reconciliation.store_source(session, run.id, source, reconcile(records, []))

    done = await reconciliation.complete_run(session, run.id, actor=SYSTEM)

    assert (done.ledger_count, done.discrepancy_count, done.match_rate) == (0, 0, Decimal(100))
    assert await events(session, run.id) == ["reconciliation.completed"]


async def test_a_workflows_run_is_created_once(session: AsyncSession) -> None:
    first = await new_run(session, workflow="reconciliation-daily-run-1")
    again = await new_run(
        session,
        DAY - timedelta(days=3),
        DAY - timedelta(days=2),
        workflow="reconciliation-daily-run-1",
    )

    assert again.id == first.id
    assert again.period_start == DAY
    assert first.workflow_id == "reconciliation-daily-run-1"
    own = await new_run(session)
    assert own.workflow_id == f"reconciliation-{own.id}"
    started = await session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.entity_id == str(first.id), AuditEvent.action == "reconciliation.started")
    )
    assert started == 1


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"start": DAY, "end": DAY}, "period_start"),
        ({"start": DAY, "end": DAY + timedelta(days=32)}, "period_end"),
        ({"start": datetime.now(UTC) + timedelta(hours=1)}, "period_start"),
        ({"sources": ()}, "sources"),
        ({"sources": ("stripe", "paypal")}, "sources"),
    ],
)
async def test_runs_refused(session: AsyncSession, changes: dict[str, Any], param: str) -> None:
    arguments: dict[str, Any] = {"start": DAY, "end": DAY + timedelta(days=1)} | changes
    if "end" not in changes and "start" in changes:
        arguments["end"] = arguments["start"] + timedelta(hours=1)
    with pytest.raises(ValidationError) as refused:
        await new_run(session, **arguments)
    assert refused.value.param == param


async def test_discrepancies_are_listed_and_resolved_with_a_note(session: AsyncSession) -> None:
    for hour in range(3):
        await add_transfer(session, DAY + timedelta(hours=hour))
    run = await new_run(session, sources=("stripe",))
    records = await ledger_side(session, run, Source.STRIPE)
    await reconciliation.store_source(
        session,
        run.id,
        Source.STRIPE,
        reconcile(records, [ExternalRecord("tr_stray", 5, "USD")]),
    )
    await reconciliation.complete_run(session, run.id, actor=SYSTEM)
    missing = await reconciliation.list_discrepancies(
        session, limit=10, run_id=run.id, type=DiscrepancyType.MISSING_SETTLEMENT.value
    )
    assert len(missing) == 3
    first_page = await reconciliation.list_discrepancies(session, limit=2, run_id=run.id)
    rest = await reconciliation.list_discrepancies(
        session, limit=2, run_id=run.id, after=first_page[1]
    )
    assert len(first_page) == 3  # limit + 1: there is more
    assert len({d.id for d in [*first_page[:2], *rest]}) == 4

    with pytest.raises(ValidationError) as refused:
        await reconciliation.resolve(session, missing[0].id, note="  ", actor=ADMIN)
    assert refused.value.param == "note"
    resolved = await reconciliation.resolve(
        session, missing[0].id, note=" paid by hand, see ticket 12 ", actor=ADMIN
    )
    assert (resolved.status, resolved.resolution_note, resolved.resolved_by) == (
        "resolved",
        "paid by hand, see ticket 12",
        "ops-1",
    )
    assert resolved.resolved_at is not None
    with pytest.raises(Conflict) as twice:
        await reconciliation.resolve(session, missing[0].id, note="again", actor=ADMIN)
    assert twice.value.code == "discrepancy_resolved"
    still_open = await reconciliation.list_discrepancies(
        session, limit=10, run_id=run.id, status="open"
    )
    assert len(still_open) == 3
    audited = await session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.entity_id == str(missing[0].id),
            AuditEvent.action == "reconciliation_discrepancy.resolved",
        )
    )
    assert audited == 1
    with pytest.raises(NotFound):
        await reconciliation.resolve(session, uuid.uuid4(), note="x", actor=ADMIN)

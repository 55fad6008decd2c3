"""Reconciliation runs: a run is created ``running`` for a period and its sources; each
source's step gathers the ledger's side (``ledger_records``), matches it against what the
provider reported (``domain.reconciliation.reconcile``) and stores its discrepancies and
counts (``store_source``); the run then completes with the sums and its match rate, or
fails with the error. Admins resolve discrepancies with a note.

The ledger's side of a source: succeeded transfers of the rail, by ``completed_at``, and
for Stripe also the payouts of payout schedules (Stripe transfers too), by ``created_at``.

Audited; announced in the outbox: ``reconciliation.completed`` (with the counts),
``reconciliation.discrepancies_found`` (when there are any, with the count per type) and
``reconciliation.failed``.
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.rails import chain_amount
from domain.reconciliation import (
    CHAIN_UNIT,
    DiscrepancyStatus,
    LedgerKind,
    LedgerRecord,
    Outcome,
    RunStatus,
    RunTrigger,
    Source,
    check_note,
    check_period,
    match_rate,
    sum_totals,
)
from domain.transfers import TransferStatus
from models.escrow import Payout
from models.reconciliation import ReconciliationDiscrepancy, ReconciliationRun
from models.transfers import Transfer
from services import audit, outbox
from services.locking import locked
from services.pagination import newest_first

# Discrepancies are inserted in pages of this many rows (one statement each).
INSERT_PAGE = 5_000


def workflow_id(run_id: uuid.UUID) -> str:
    """The on-demand run's workflow (the Schedule's runs have the Schedule's ids)."""
    return f"reconciliation-{run_id}"


def run_view(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "status": run.status,
        "trigger": run.trigger,
        "period_start": run.period_start.isoformat(),
        "period_end": run.period_end.isoformat(),
        "sources": list(run.sources),
        "ledger_count": run.ledger_count,
        "external_count": run.external_count,
        "matched_count": run.matched_count,
        "discrepancy_count": run.discrepancy_count,
        "match_rate": str(run.match_rate) if run.match_rate is not None else None,
        "error": run.error,
    }


def discrepancy_view(item: ReconciliationDiscrepancy) -> dict[str, Any]:
    return {
        "run_id": str(item.run_id),
        "type": item.type,
        "source": item.source,
        "external_id": item.external_id,
        "status": item.status,
        "resolution_note": item.resolution_note,
        "resolved_by": item.resolved_by,
    }


async def _run_changed(
    session: AsyncSession,
    run: ReconciliationRun,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    announce: bool,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="reconciliation",
        entity_id=run.id,
        action=action,
        actor=actor,
        before=before,
        after=run_view(run),
        announce=announce,
        metadata=metadata,
    )


def _sources(sources: Sequence[str]) -> list[str]:
    try:
        chosen = [Source(source).value for source in dict.fromkeys(sources)]
    except ValueError:
        raise ValidationError(f"sources are among {', '.join(Source)}", param="sources") from None
    if not chosen:
        raise ValidationError("a run reconciles at least one source", param="sources")
    return chosen


# Runs


async def create_run(
    session: AsyncSession,
    *,
    period_start: datetime,
    period_end: datetime,
    trigger: RunTrigger,
    sources: Sequence[str],
    actor: Actor,
    now: datetime | None = None,
    run_id: uuid.UUID | None = None,
    workflow: str | None = None,
) -> ReconciliationRun:
    """A RUNNING run of the period (checked: ``domain.reconciliation.check_period``). The
    run of a workflow id that has one already is that run, unchanged (a retried step)."""
    start, end = check_period(period_start, period_end, now=now or datetime.now(UTC))
    chosen = _sources(sources)
    run_id = run_id or uuid.uuid4()
    workflow = workflow or workflow_id(run_id)
    inserted = await session.scalar(
        insert(ReconciliationRun)
        .values(
            id=run_id,
            workflow_id=workflow,
            status=RunStatus.RUNNING.value,
            trigger=trigger.value,
            period_start=start,
            period_end=end,
            sources=chosen,
            started_by=actor.id,
            ledger_count=0,
            external_count=0,
            matched_count=0,
            discrepancy_count=0,
            totals={},
            source_results={},
        )
        .on_conflict_do_nothing(index_elements=["workflow_id"])
        .returning(ReconciliationRun.id)
    )
    run = await session.scalar(
        select(ReconciliationRun)
        .where(ReconciliationRun.workflow_id == workflow)
        .execution_options(populate_existing=True)
    )
    assert run is not None
    if inserted is not None:
        await _run_changed(session, run, "started", actor=actor, before=None, announce=False)
    return run


async def get_run(
    session: AsyncSession, run_id: uuid.UUID, *, for_update: bool = False
) -> ReconciliationRun:
    query = select(ReconciliationRun).where(ReconciliationRun.id == run_id)
    found: ReconciliationRun | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no reconciliation run {run_id}", param="id")
    return found


async def running_runs(session: AsyncSession) -> Sequence[ReconciliationRun]:
    """Runs not completed nor failed: their workflows should be running (safety net)."""
    return list(
        await session.scalars(
            select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.RUNNING.value)
        )
    )


async def list_runs(
    session: AsyncSession,
    *,
    limit: int,
    after: ReconciliationRun | None = None,
    status: str | None = None,
    trigger: str | None = None,
) -> Sequence[ReconciliationRun]:
    """Newest first, ``limit + 1`` rows."""
    query = newest_first(select(ReconciliationRun), ReconciliationRun, after)
    if status:
        query = query.where(ReconciliationRun.status == status)
    if trigger:
        query = query.where(ReconciliationRun.trigger == trigger)
    return list(await session.scalars(query.limit(limit + 1)))


def window(run: ReconciliationRun, margin: timedelta) -> tuple[datetime, datetime]:
    """The run's period widened by ``margin`` on both sides: records are read from it so
    that a pair split across an edge of the period is still matched."""
    return run.period_start - margin, run.period_end + margin


async def ledger_records(
    session: AsyncSession,
    source: Source,
    *,
    window_start: datetime,
    window_end: datetime,
    period_start: datetime,
    period_end: datetime,
    token_decimals: int = 6,
) -> list[LedgerRecord]:
    """The ledger's side of ``source`` in the window, each marked ``in_period``, amounts as
    the provider shows them (the chain's in base units of its token). Columns only, no
    objects: a day can hold 100,000 of them."""

    # Ids as text and "in the period" computed by the database: no UUID or datetime objects
    # are built for rows that only need comparing.
    in_period = and_(Transfer.completed_at >= period_start, Transfer.completed_at < period_end)
    rail_transfers = await session.execute(
        select(
            cast(Transfer.id, String),
            Transfer.external_id,
            Transfer.amount,
            Transfer.currency,
            in_period,
        ).where(
            Transfer.rail == source.value,
            Transfer.status == TransferStatus.SUCCEEDED.value,
            Transfer.completed_at >= window_start,
            Transfer.completed_at < window_end,
        )
    )
    kind = LedgerKind.TRANSFER.value
    if source is Source.CHAIN:
        return [
            LedgerRecord(
                kind,
                transfer_id,
                external_id or "",
                chain_amount(amount, currency, token_decimals),
                CHAIN_UNIT,
                inside,
            )
            for transfer_id, external_id, amount, currency, inside in rail_transfers
        ]
    records = [
        LedgerRecord(kind, transfer_id, external_id or "", amount, currency, inside)
        for transfer_id, external_id, amount, currency, inside in rail_transfers
    ]
    payouts = await session.execute(
        select(
            cast(Payout.id, String),
            Payout.stripe_transfer_id,
            Payout.amount,
            Payout.currency,
            and_(Payout.created_at >= period_start, Payout.created_at < period_end),
        ).where(Payout.created_at >= window_start, Payout.created_at < window_end)
    )
    records.extend(
        LedgerRecord(LedgerKind.PAYOUT.value, payout_id, external_id, amount, currency, inside)
        for payout_id, external_id, amount, currency, inside in payouts
    )
    return records


def source_result(outcome: Outcome) -> dict[str, Any]:
    """What a source's step keeps on the run: its counts and its totals by currency."""
    return {
        "ledger_count": outcome.ledger_count,
        "external_count": outcome.external_count,
        "matched_count": outcome.matched_count,
        "discrepancy_count": outcome.discrepancy_count,
        "totals": {currency: totals.as_dict() for currency, totals in outcome.totals.items()},
    }


async def store_source(
    session: AsyncSession, run_id: uuid.UUID, source: Source, outcome: Outcome
) -> ReconciliationRun:
    """A source's discrepancies and counts on the RUNNING run, in place of what an earlier
    attempt of the same step stored. A run no longer running is a ``Conflict``."""
    run = await get_run(session, run_id, for_update=True)
    if run.status != RunStatus.RUNNING.value:
        raise Conflict(f"reconciliation run {run_id} is {run.status}", code="run_finished")
    if source.value not in run.sources:
        raise ValidationError(f"run {run_id} does not reconcile {source}", param="source")
    await session.execute(
        delete(ReconciliationDiscrepancy).where(
            ReconciliationDiscrepancy.run_id == run_id,
            ReconciliationDiscrepancy.source == source.value,
        )
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "run_id": run_id,
            "type": found.type.value,
            "source": source.value,
            "external_id": found.external_id[:200],
            "ledger_kind": found.ledger_kind,
            "ledger_id": uuid.UUID(found.ledger_id) if found.ledger_id else None,
            "expected_amount": found.expected_amount,
            "actual_amount": found.actual_amount,
            "currency": found.currency[:8],
            "detail": found.detail,
            "status": DiscrepancyStatus.OPEN.value,
        }
        for found in outcome.discrepancies
    ]
    for start in range(0, len(rows), INSERT_PAGE):
        await session.execute(insert(ReconciliationDiscrepancy), rows[start : start + INSERT_PAGE])
    run.source_results = {**run.source_results, source.value: source_result(outcome)}
    await session.flush()
    return run


async def complete_run(
    session: AsyncSession, run_id: uuid.UUID, *, actor: Actor
) -> ReconciliationRun:
    """RUNNING → COMPLETED with the sources' counts added up and the match rate, announced.
    A run already finished is left as it is; one missing a source's results is a
    ``Conflict``."""
    run = await get_run(session, run_id, for_update=True)
    if run.status != RunStatus.RUNNING.value:
        return run
    missing = [source for source in run.sources if source not in run.source_results]
    if missing:
        raise Conflict(
            f"reconciliation run {run_id} has no results of {', '.join(missing)} yet",
            code="run_incomplete",
        )
    before = run_view(run)
    results = [run.source_results[source] for source in run.sources]
    run.ledger_count = sum(int(result["ledger_count"]) for result in results)
    run.external_count = sum(int(result["external_count"]) for result in results)
    run.matched_count = sum(int(result["matched_count"]) for result in results)
    run.discrepancy_count = sum(int(result["discrepancy_count"]) for result in results)
    run.match_rate = match_rate(run.matched_count, run.discrepancy_count)
    run.totals = sum_totals(result["totals"] for result in results)
    run.status = RunStatus.COMPLETED.value
    run.completed_at = datetime.now(UTC)
    await _run_changed(
        session,
        run,
        "completed",
        actor=actor,
        before=before,
        announce=True,
        metadata={"totals": run.totals},
    )
    if run.discrepancy_count:
        by_type = await discrepancy_counts(session, run.id)
        await outbox.emit(
            session,
            "reconciliation.discrepancies_found",
            entity_type="reconciliation",
            entity_id=str(run.id),
            payload={"id": str(run.id), **run_view(run), "by_type": by_type},
        )
    return run


async def fail_run(
    session: AsyncSession, run_id: uuid.UUID, *, error: str, actor: Actor
) -> ReconciliationRun:
    """RUNNING → FAILED with the error, announced; a run already finished is left as it is.
    Discrepancies a source stored before are kept."""
    run = await get_run(session, run_id, for_update=True)
    if run.status != RunStatus.RUNNING.value:
        return run
    before = run_view(run)
    run.status = RunStatus.FAILED.value
    run.error = error[:2000]
    run.completed_at = datetime.now(UTC)
    await _run_changed(session, run, "failed", actor=actor, before=before, announce=True)
    return run


# Discrepancies


async def discrepancy_counts(session: AsyncSession, run_id: uuid.UUID) -> dict[str, int]:
    """The run's discrepancies by type."""
    rows = await session.execute(
        select(ReconciliationDiscrepancy.type, func.count())
        .where(ReconciliationDiscrepancy.run_id == run_id)
        .group_by(ReconciliationDiscrepancy.type)
    )
    return dict(Counter({kind: int(count) for kind, count in rows}))


async def get_discrepancy(
    session: AsyncSession, discrepancy_id: uuid.UUID, *, for_update: bool = False
) -> ReconciliationDiscrepancy:
    query = select(ReconciliationDiscrepancy).where(ReconciliationDiscrepancy.id == discrepancy_id)
    found: ReconciliationDiscrepancy | None = await session.scalar(
        locked(query) if for_update else query
    )
    if found is None:
        raise NotFound(f"no reconciliation discrepancy {discrepancy_id}", param="id")
    return found


async def list_discrepancies(
    session: AsyncSession,
    *,
    limit: int,
    after: ReconciliationDiscrepancy | None = None,
    run_id: uuid.UUID | None = None,
    type: str | None = None,
    status: str | None = None,
    source: str | None = None,
    external_id: str | None = None,
) -> Sequence[ReconciliationDiscrepancy]:
    """Newest first, ``limit + 1`` rows."""
    query = newest_first(select(ReconciliationDiscrepancy), ReconciliationDiscrepancy, after)
    if run_id is not None:
        query = query.where(ReconciliationDiscrepancy.run_id == run_id)
    if type:
        query = query.where(ReconciliationDiscrepancy.type == type)
    if status:
        query = query.where(ReconciliationDiscrepancy.status == status)
    if source:
        query = query.where(ReconciliationDiscrepancy.source == source)
    if external_id:
        query = query.where(ReconciliationDiscrepancy.external_id == external_id)
    return list(await session.scalars(query.limit(limit + 1)))


async def resolve(
    session: AsyncSession, discrepancy_id: uuid.UUID, *, note: object, actor: Actor
) -> ReconciliationDiscrepancy:
    """OPEN → RESOLVED with the admin's note (required: ``ValidationError``); one resolved
    already is a ``Conflict`` (``discrepancy_resolved``), its note kept."""
    text = check_note(note)
    item = await get_discrepancy(session, discrepancy_id, for_update=True)
    if item.status == DiscrepancyStatus.RESOLVED.value:
        raise Conflict(
            f"discrepancy {discrepancy_id} was resolved by {item.resolved_by}",
            code="discrepancy_resolved",
        )
    before = discrepancy_view(item)
    item.status = DiscrepancyStatus.RESOLVED.value
    item.resolution_note = text
    item.resolved_by = actor.id
    item.resolved_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        action="reconciliation_discrepancy.resolved",
        entity_type="reconciliation_discrepancy",
        entity_id=item.id,
        actor=actor,
        before=before,
        after=discrepancy_view(item),
    )
    return item


def amount(value: Decimal | None) -> int | None:
    """An amount column (numeric, as wide as uint256) as an integer."""
    return None if value is None else int(value)

"""Transfers and batch payouts: validation of a whole batch, its creation (all or nothing),
each transfer's moves as compare-and-set on the locked row, the ledger entry of a transfer
that succeeded, progress counts, and retrying or cancelling items. Audited, and announced
in the outbox (``transfer.succeeded``, ``transfer.failed``, ``transfer_batch.created``,
``transfer_batch.completed``).

The ledger: a transfer that succeeded moves its amount from the rail's float, the
platform's money at the provider (``stripe:balance``, ``chain:float:{currency}``), to the
destination outside (``external:{rail}:{destination}``), or, for a vendor's settlement,
out of what the platform owes the vendor (``settles_account``, ``payee:{vendor}``), once per
transfer (``external_ref`` ``transfer-{id}``). The partner and the batch are in the metadata.

Locks are taken transfer first, then its batch (the counts), everywhere.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.ledger import AccountType, transfer
from domain.money import Money
from domain.rails import Rail, RoutingRules
from domain.transfers import (
    BatchSource,
    BatchStatus,
    ItemError,
    TransferStatus,
    ValidItem,
    batch_outcome,
    check_items,
    check_transfer_move,
    idempotency_key,
    item_references,
)
from models.transfers import Transfer, TransferBatch
from services import ledger, outbox, settlement_windows
from services.locking import locked
from services.pagination import newest_first

STRIPE_FLOAT_ACCOUNT = "stripe:balance"


def float_account(rail: str, currency: str) -> str:
    """The platform's money on the rail, which a transfer draws from."""
    return STRIPE_FLOAT_ACCOUNT if rail == Rail.STRIPE else f"chain:float:{currency}"


def external_account(rail: str, destination: str) -> str:
    """Where a transfer's money went: outside the platform, at ``destination``."""
    return f"external:{rail}:{destination}"


def transfer_view(item: Transfer) -> dict[str, Any]:
    return {
        "status": item.status,
        "amount": item.amount,
        "currency": item.currency,
        "rail": item.rail,
        "destination": item.destination,
        "reference": item.reference,
        "attempts": item.attempts,
        "last_error": item.last_error,
        "external_id": item.external_id,
    }


def batch_view(batch: TransferBatch) -> dict[str, Any]:
    return {
        "status": batch.status,
        "partner_id": batch.partner_id,
        "total_count": batch.total_count,
        "pending_count": batch.pending_count,
        "succeeded_count": batch.succeeded_count,
        "failed_count": batch.failed_count,
        "cancelled_count": batch.cancelled_count,
        "run_count": batch.run_count,
    }


async def _changed(
    session: AsyncSession,
    item: Transfer,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    announce: bool,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="transfer",
        entity_id=item.id,
        action=action,
        actor=actor,
        before=before,
        after=transfer_view(item),
        announce=announce,
        metadata=metadata,
        payload={
            "partner_id": item.partner_id,
            "batch_id": str(item.batch_id) if item.batch_id else None,
        },
    )


async def _batch_changed(
    session: AsyncSession,
    batch: TransferBatch,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    announce: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="transfer_batch",
        entity_id=batch.id,
        action=action,
        actor=actor,
        before=before,
        after=batch_view(batch),
        announce=announce,
        metadata=metadata,
    )


# Validation and creation


async def used_references(
    session: AsyncSession, partner_id: str, references: Sequence[str]
) -> set[str]:
    """Which of ``references`` the partner's stored transfers already use: one query."""
    if not references:
        return set()
    rows = await session.scalars(
        select(Transfer.reference).where(
            Transfer.partner_id == partner_id, Transfer.reference.in_(set(references))
        )
    )
    return set(rows)


def _check_partner(partner_id: str) -> str:
    if not isinstance(partner_id, str) or not partner_id.strip() or len(partner_id) > 200:
        raise ValidationError("partner_id is 1 to 200 characters", param="partner_id")
    return partner_id.strip()


async def validate_batch(
    session: AsyncSession, partner_id: str, items: Sequence[Any], rules: RoutingRules
) -> tuple[list[ValidItem], list[ItemError]]:
    """Every item checked and routed, every error kept (row, field, code, message); the
    database is asked one question, which references the partner used already."""
    partner_id = _check_partner(partner_id)
    used = await used_references(session, partner_id, item_references(items))
    return check_items(items, partner_id, rules, used)


def batch_invalid(errors: Sequence[ItemError], total: int) -> ValidationError:
    rows = len({error.row for error in errors})
    return ValidationError(
        f"{rows} of {total} items are invalid: nothing was stored",
        code="batch_invalid",
        param="items",
        errors=[error.as_dict() for error in errors],
    )


async def create_batch(
    session: AsyncSession,
    *,
    partner_id: str,
    items: Sequence[Any],
    source: BatchSource,
    rules: RoutingRules,
    actor: Actor,
    metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TransferBatch:
    """The batch and its transfers, routed: PENDING, or QUEUED for the window of their rail
    that a transfer submitted ``now`` settles in (``services.settlement_windows``). Or
    ``ValidationError`` ``batch_invalid`` listing every item's errors in
    ``details["errors"]``, with nothing stored."""
    partner_id = _check_partner(partner_id)
    valid, errors = await validate_batch(session, partner_id, items, rules)
    if errors:
        raise batch_invalid(errors, len(items))
    now = now or datetime.now(UTC)
    windows = await settlement_windows.configs(session)
    window_of = {rail.value: settlement_windows.queued_until(windows, rail, now) for rail in Rail}
    batch = TransferBatch(
        id=uuid.uuid4(),
        partner_id=partner_id,
        source=source.value,
        status=BatchStatus.PROCESSING.value,
        total_count=len(valid),
        pending_count=len(valid),
        succeeded_count=0,
        failed_count=0,
        cancelled_count=0,
        run_count=1,
        metadata_=metadata or {},
        created_by=actor.id,
    )
    session.add(batch)
    await session.flush()
    rows = []
    for item in valid:
        transfer_id = uuid.uuid4()
        rows.append(
            {
                "id": transfer_id,
                "batch_id": batch.id,
                "item_index": item.index,
                "partner_id": partner_id,
                "reference": item.reference,
                "destination": item.destination,
                "amount": item.amount,
                "currency": item.currency,
                "description": item.description,
                "rail": item.rail.value,
                "route_reason": item.route.reason,
                "status": (
                    TransferStatus.QUEUED.value
                    if window_of[item.rail.value]
                    else TransferStatus.PENDING.value
                ),
                "window_at": window_of[item.rail.value],
                "attempts": 0,
                "last_error": None,
                "key_run": 0,
                "idempotency_key": idempotency_key(transfer_id),
            }
        )
    # A reference another request stored since validation is left out, and refused below.
    # One statement given the rows (executemany): compiled once, sent in pages of values.
    inserted = set(
        await session.scalars(
            insert(Transfer)
            .on_conflict_do_nothing(constraint="uq_transfers_partner_reference")
            .returning(Transfer.reference),
            rows,
        )
    )
    if len(inserted) != len(rows):
        raise batch_invalid(
            [
                ItemError(
                    item.index + 1,
                    "reference",
                    "reference_used",
                    f"reference {item.reference!r} was used by an earlier transfer of {partner_id}",
                )
                for item in valid
                if item.reference not in inserted
            ],
            len(items),
        )
    rails: dict[str, int] = {}
    for item in valid:
        rails[item.rail.value] = rails.get(item.rail.value, 0) + 1
    queued = {rail: at.isoformat() for rail, at in window_of.items() if at and rail in rails}
    await _batch_changed(
        session,
        batch,
        "created",
        actor=actor,
        before=None,
        metadata={"rails": rails, "windows": queued},
    )
    return batch


async def create_single(
    session: AsyncSession,
    *,
    partner_id: str,
    reference: str,
    destination: str,
    amount: int,
    currency: str,
    description: str | None,
    rules: RoutingRules,
    actor: Actor,
    settles_account: str | None = None,
    now: datetime | None = None,
) -> Transfer:
    """One transfer outside any batch, routed and QUEUED for its rail's settlement window
    workflow: for the window a transfer submitted ``now`` settles in, or ``now`` itself on a
    rail without windows (the workflow sends it at once). ``ValidationError``
    ``batch_invalid`` (with the errors) when the item is invalid."""
    now = now or datetime.now(UTC)
    item = {
        "reference": reference,
        "destination": destination,
        "amount": amount,
        "currency": currency,
        "description": description,
    }
    valid, errors = await validate_batch(session, partner_id, [item], rules)
    if errors:
        raise batch_invalid(errors, 1)
    checked = valid[0]
    windows = await settlement_windows.configs(session)
    transfer_id = uuid.uuid4()
    created = Transfer(
        id=transfer_id,
        partner_id=partner_id,
        reference=checked.reference,
        destination=checked.destination,
        amount=checked.amount,
        currency=checked.currency,
        description=checked.description,
        rail=checked.rail.value,
        route_reason=checked.route.reason,
        status=TransferStatus.QUEUED.value,
        window_at=settlement_windows.queued_until(windows, checked.rail.value, now) or now,
        attempts=0,
        key_run=0,
        idempotency_key=idempotency_key(transfer_id),
        settles_account=settles_account,
    )
    session.add(created)
    await _changed(session, created, "created", actor=actor, before=None, announce=False)
    return created


# Reading


async def get(
    session: AsyncSession, transfer_id: uuid.UUID, *, for_update: bool = False
) -> Transfer:
    query = select(Transfer).where(Transfer.id == transfer_id)
    found: Transfer | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no transfer {transfer_id}", param="id")
    return found


async def get_batch(
    session: AsyncSession, batch_id: uuid.UUID, *, for_update: bool = False
) -> TransferBatch:
    query = select(TransferBatch).where(TransferBatch.id == batch_id)
    found: TransferBatch | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no transfer batch {batch_id}", param="id")
    return found


async def list_items(
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    limit: int,
    after: Transfer | None = None,
    status: str | None = None,
) -> Sequence[Transfer]:
    """A batch's transfers in item order, ``limit + 1`` rows (``has_more``)."""
    query = select(Transfer).where(Transfer.batch_id == batch_id)
    if after is not None and after.item_index is not None:
        query = query.where(Transfer.item_index > after.item_index)
    if status:
        query = query.where(Transfer.status == status)
    return list(await session.scalars(query.order_by(Transfer.item_index).limit(limit + 1)))


async def list_transfers(
    session: AsyncSession,
    *,
    limit: int,
    after: Transfer | None = None,
    partner_id: str | None = None,
    status: str | None = None,
    rail: str | None = None,
    batch_id: uuid.UUID | None = None,
    reference: str | None = None,
    currency: str | None = None,
) -> Sequence[Transfer]:
    """Newest first, ``limit + 1`` rows."""
    query = newest_first(select(Transfer), Transfer, after)
    if partner_id:
        query = query.where(Transfer.partner_id == partner_id)
    if status:
        query = query.where(Transfer.status == status)
    if rail:
        query = query.where(Transfer.rail == rail)
    if batch_id is not None:
        query = query.where(Transfer.batch_id == batch_id)
    if reference:
        query = query.where(Transfer.reference == reference)
    if currency:
        query = query.where(Transfer.currency == currency.upper())
    return list(await session.scalars(query.limit(limit + 1)))


async def list_batches(
    session: AsyncSession,
    *,
    limit: int,
    after: TransferBatch | None = None,
    partner_id: str | None = None,
    status: str | None = None,
) -> Sequence[TransferBatch]:
    query = newest_first(select(TransferBatch), TransferBatch, after)
    if partner_id:
        query = query.where(TransferBatch.partner_id == partner_id)
    if status:
        query = query.where(TransferBatch.status == status)
    return list(await session.scalars(query.limit(limit + 1)))


async def open_items(session: AsyncSession, batch_id: uuid.UUID) -> Sequence[Transfer]:
    """The batch's transfers to run: pending ones, and processing ones an earlier run left in
    flight (resumed under the same key). Those with a window (queued, or being sent by their
    window) belong to the rail's settlement window workflow."""
    return list(
        await session.scalars(
            select(Transfer)
            .where(
                Transfer.batch_id == batch_id,
                Transfer.window_at.is_(None),
                Transfer.status.in_(
                    [TransferStatus.PENDING.value, TransferStatus.PROCESSING.value]
                ),
            )
            .order_by(Transfer.item_index)
        )
    )


async def queued_windows(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID | None = None,
    transfer_ids: Sequence[uuid.UUID] = (),
) -> dict[str, datetime]:
    """The rails whose settlement windows hold some of a batch's transfers (or of
    ``transfer_ids``), and the earliest window of each: one query."""
    query = select(Transfer.rail, func.min(Transfer.window_at)).where(
        Transfer.status == TransferStatus.QUEUED.value
    )
    if batch_id is not None:
        query = query.where(Transfer.batch_id == batch_id)
    else:
        query = query.where(Transfer.id.in_(transfer_ids))
    rows = await session.execute(query.group_by(Transfer.rail))
    return {rail: window_at for rail, window_at in rows if window_at is not None}


# Moves of one transfer


async def _count(session: AsyncSession, batch_id: uuid.UUID | None, **deltas: int) -> None:
    """Moves the batch's counts by ``deltas`` (``pending=-1, succeeded=1``) in this
    transaction; the transfer's row is locked already (transfer, then batch)."""
    if batch_id is None:
        return
    columns = {
        f"{name}_count": getattr(TransferBatch, f"{name}_count") + delta
        for name, delta in deltas.items()
    }
    await session.execute(
        update(TransferBatch)
        .where(TransferBatch.id == batch_id)
        .values(**columns)
        .execution_options(synchronize_session="fetch")
    )


async def start(session: AsyncSession, transfer_id: uuid.UUID, *, actor: Actor) -> Transfer:
    """PENDING or QUEUED → PROCESSING. PROCESSING already is the same transfer resumed (a
    retried activity, a new run of the batch): nothing changes, so its key stays."""
    item = await get(session, transfer_id, for_update=True)
    status = TransferStatus(item.status)
    if status is TransferStatus.PROCESSING:
        return item
    check_transfer_move(status, TransferStatus.PROCESSING)
    before = transfer_view(item)
    item.status = TransferStatus.PROCESSING.value
    item.started_at = datetime.now(UTC)
    await _changed(session, item, "started", actor=actor, before=before, announce=False)
    return item


async def record_attempt_failure(
    session: AsyncSession, transfer_id: uuid.UUID, *, error: str, actor: Actor
) -> Transfer:
    """A failed attempt at the rail: counted and kept, status unchanged."""
    item = await get(session, transfer_id, for_update=True)
    if item.status != TransferStatus.PROCESSING.value:
        return item
    before = transfer_view(item)
    item.attempts += 1
    item.last_error = error[:2000]
    await _changed(session, item, "attempt_failed", actor=actor, before=before, announce=False)
    return item


async def succeed(
    session: AsyncSession, transfer_id: uuid.UUID, *, external_id: str, actor: Actor
) -> Transfer:
    """PROCESSING → SUCCEEDED with the ledger entry (rail float → external destination, or
    the liability it settles). SUCCEEDED already (a retried activity) is left as it is."""
    item = await get(session, transfer_id, for_update=True)
    if item.status == TransferStatus.SUCCEEDED.value:
        return item
    check_transfer_move(TransferStatus(item.status), TransferStatus.SUCCEEDED)
    before = transfer_view(item)
    source = float_account(item.rail, item.currency)
    await ledger.ensure_account(
        session,
        code=source,
        name=f"platform float on {item.rail}",
        type=AccountType.ASSET,
        actor=actor,
    )
    # A vendor's settlement pays what the platform owes the vendor (its payee account,
    # credited at capture); any other transfer moves money out to its destination.
    target = item.settles_account or external_account(item.rail, item.destination)
    if item.settles_account is None:
        await ledger.ensure_account(
            session,
            code=target,
            name=f"sent to {item.destination} on {item.rail}",
            type=AccountType.ASSET,
            actor=actor,
        )
    await ledger.post_transaction(
        session,
        postings=transfer(source, target, Money(item.amount, item.currency)),
        actor=actor,
        description=f"transfer {item.id} ({item.reference}) on {item.rail}: {external_id}",
        external_ref=f"transfer-{item.id}",
        metadata={
            "external_id": external_id,
            "partner_id": item.partner_id,
            "batch_id": str(item.batch_id) if item.batch_id else None,
            "reference": item.reference,
        },
    )
    item.status = TransferStatus.SUCCEEDED.value
    item.external_id = external_id
    item.last_error = None
    item.completed_at = datetime.now(UTC)
    await _changed(
        session,
        item,
        "succeeded",
        actor=actor,
        before=before,
        announce=True,
        metadata={"route_reason": item.route_reason},
    )
    await _count(session, item.batch_id, pending=-1, succeeded=1)
    return item


async def fail(
    session: AsyncSession, transfer_id: uuid.UUID, *, error: str, final: bool, actor: Actor
) -> Transfer:
    """PROCESSING (or PENDING, for an item that could not start) → FAILED with the error.
    ``final``: the rail refused it, so a retry takes a new idempotency key; after retries
    ran out on outages the key stays (one of those attempts may have paid). FAILED
    already is left as it is."""
    item = await get(session, transfer_id, for_update=True)
    if item.status == TransferStatus.FAILED.value:
        return item
    check_transfer_move(TransferStatus(item.status), TransferStatus.FAILED)
    before = transfer_view(item)
    item.status = TransferStatus.FAILED.value
    item.last_error = error[:2000]
    item.completed_at = datetime.now(UTC)
    if final:
        item.key_run += 1
        item.idempotency_key = idempotency_key(item.id, item.key_run)
    await _changed(
        session,
        item,
        "failed",
        actor=actor,
        before=before,
        announce=True,
        metadata={"final": final},
    )
    await _count(session, item.batch_id, pending=-1, failed=1)
    return item


# Batches


@dataclass(frozen=True)
class Retried:
    batch: TransferBatch
    transfer_ids: list[uuid.UUID]


async def retry_failed(
    session: AsyncSession, batch_id: uuid.UUID, *, actor: Actor, require: bool = True
) -> Retried:
    """The batch's FAILED transfers back to PENDING (attempts and error kept until the next
    try), and the batch PROCESSING again; the batch sends them at once, outside any window
    (a retry is an operator's decision). With ``require``, a batch without failed items is
    a 409 ``nothing_to_retry``."""
    batch = await get_batch(session, batch_id)
    moved = list(
        await session.scalars(
            update(Transfer)
            .where(Transfer.batch_id == batch_id, Transfer.status == TransferStatus.FAILED.value)
            .values(status=TransferStatus.PENDING.value, completed_at=None, window_at=None)
            .returning(Transfer.id)
            .execution_options(synchronize_session="fetch")
        )
    )
    if not moved:
        if require:
            raise Conflict(
                f"transfer batch {batch_id} has no failed transfers to retry",
                code="nothing_to_retry",
            )
        return Retried(batch, [])
    batch = await get_batch(session, batch_id, for_update=True)
    before = batch_view(batch)
    batch.failed_count -= len(moved)
    batch.pending_count += len(moved)
    batch.status = BatchStatus.PROCESSING.value
    batch.completed_at = None
    batch.run_count += 1
    await _batch_changed(
        session,
        batch,
        "retried",
        actor=actor,
        before=before,
        announce=False,
        metadata={"retried": len(moved)},
    )
    return Retried(batch, moved)


async def cancel_pending(session: AsyncSession, batch_id: uuid.UUID, *, actor: Actor) -> int:
    """The batch's PENDING and QUEUED transfers CANCELLED (those under way finish); how many."""
    await get_batch(session, batch_id)
    cancelled = list(
        await session.scalars(
            update(Transfer)
            .where(
                Transfer.batch_id == batch_id,
                Transfer.status.in_([TransferStatus.PENDING.value, TransferStatus.QUEUED.value]),
            )
            .values(status=TransferStatus.CANCELLED.value, completed_at=datetime.now(UTC))
            .returning(Transfer.id)
            .execution_options(synchronize_session="fetch")
        )
    )
    if cancelled:
        batch = await get_batch(session, batch_id, for_update=True)
        before = batch_view(batch)
        batch.pending_count -= len(cancelled)
        batch.cancelled_count += len(cancelled)
        await _batch_changed(
            session,
            batch,
            "items_cancelled",
            actor=actor,
            before=before,
            announce=False,
            metadata={"cancelled": len(cancelled)},
        )
    return len(cancelled)


async def finish(session: AsyncSession, batch_id: uuid.UUID, *, actor: Actor) -> TransferBatch:
    """A PROCESSING batch whose items are all final → COMPLETED, PARTIALLY_COMPLETED or
    FAILED, announced as ``transfer_batch.completed``. One with open items (a retry came in)
    or already finished is left as it is."""
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status != BatchStatus.PROCESSING.value or batch.pending_count > 0:
        return batch
    before = batch_view(batch)
    outcome = batch_outcome(batch.succeeded_count, batch.failed_count, batch.cancelled_count)
    batch.status = outcome.value
    batch.completed_at = datetime.now(UTC)
    await _batch_changed(
        session, batch, "completed", actor=actor, before=before, metadata={"outcome": outcome.value}
    )
    return batch


async def open_batches(session: AsyncSession) -> Sequence[TransferBatch]:
    """Batches whose workflow should be running (for a safety net)."""
    return list(
        await session.scalars(
            select(TransferBatch).where(TransferBatch.status == BatchStatus.PROCESSING.value)
        )
    )

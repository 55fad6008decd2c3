"""Escrow holds: funding, releases (whole or partial), refunds, cancellation, extension,
disputes and approvals. Money moves through the ledger: the payer's account → ``escrow`` →
the payee's payable account; each movement is keyed, so a retried activity never moves money
twice. Changes are compare-and-set on the locked row, audited, and announced in the outbox."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.escrow import HOLDING, HoldReason, HoldStatus, check_holding
from domain.ledger import AccountType, transfer
from domain.money import Money
from models.escrow import EscrowHold, EscrowMovement
from services import ledger, outbox
from services.locking import locked
from services.pagination import newest_first

ESCROW_ACCOUNT = "escrow"


def payer_account(payer_id: str) -> str:
    return f"payer:{payer_id}"


def payee_account(payee_id: str) -> str:
    return f"payee:{payee_id}"


def hold_view(hold: EscrowHold) -> dict[str, Any]:
    return {
        "status": hold.status,
        "amount": hold.amount,
        "currency": hold.currency,
        "released_amount": hold.released_amount,
        "refunded_amount": hold.refunded_amount,
        "release_at": hold.release_at.isoformat(),
        "dispute_reason": hold.dispute_reason,
        "approvals": list(hold.approvals),
    }


async def _changed(
    session: AsyncSession,
    hold: EscrowHold,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    event: bool = False,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="escrow_hold",
        entity_id=hold.id,
        action=action,
        actor=actor,
        before=before,
        after=hold_view(hold),
        announce=event,
        metadata=metadata,
    )


async def _ensure_accounts(session: AsyncSession, hold: EscrowHold, actor: Actor) -> None:
    for code, name in (
        (payer_account(hold.payer_id), f"funds of payer {hold.payer_id}"),
        (ESCROW_ACCOUNT, "money held in escrow"),
        (payee_account(hold.payee_id), f"payable to {hold.payee_id}"),
    ):
        await ledger.ensure_account(
            session, code=code, name=name, type=AccountType.LIABILITY, actor=actor
        )


async def create_hold(
    session: AsyncSession,
    *,
    payer_id: str,
    payee_id: str,
    money: Money,
    reason: HoldReason,
    release_at: datetime,
    actor: Actor,
    required_approvals: int = 0,
    placement_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    hold_id: uuid.UUID | None = None,
) -> EscrowHold:
    """An ACTIVE hold, funded from the payer's account in the same transaction."""
    if money.amount <= 0:
        raise ValidationError("a hold holds a positive amount", param="amount")
    if release_at.tzinfo is None:
        raise ValidationError("release_at needs a time zone", param="release_at")
    if required_approvals < 0:
        raise ValidationError("required_approvals cannot be negative", param="required_approvals")
    hold = EscrowHold(
        id=hold_id or uuid.uuid4(),
        payer_id=payer_id,
        payee_id=payee_id,
        amount=money.amount,
        currency=money.currency,
        released_amount=0,
        refunded_amount=0,
        reason=reason.value,
        release_at=release_at,
        status=HoldStatus.ACTIVE.value,
        required_approvals=required_approvals,
        approvals=[],
        placement_id=placement_id,
        metadata_=metadata or {},
    )
    session.add(hold)
    await session.flush()
    await _ensure_accounts(session, hold, actor)
    await ledger.post_transaction(
        session,
        postings=transfer(payer_account(payer_id), ESCROW_ACCOUNT, money),
        actor=actor,
        description=f"escrow hold {hold.id} funded",
        external_ref=f"escrow-hold-{hold.id}-fund",
    )
    await _changed(session, hold, "created", actor=actor, before=None, event=True)
    return hold


async def get(session: AsyncSession, hold_id: uuid.UUID, *, for_update: bool = False) -> EscrowHold:
    query = select(EscrowHold).where(EscrowHold.id == hold_id)
    hold: EscrowHold | None = await session.scalar(locked(query) if for_update else query)
    if hold is None:
        raise NotFound(f"no escrow hold {hold_id}", param="id")
    return hold


@dataclass(frozen=True)
class Moved:
    hold: EscrowHold
    amount: int
    repeated: bool


async def _previous_move(
    session: AsyncSession, hold: EscrowHold, key: str, kinds: tuple[str, ...]
) -> EscrowMovement | None:
    """The movement already made under ``key``; a key of another hold or kind is a conflict,
    not a repeat."""
    found: EscrowMovement | None = await session.scalar(
        select(EscrowMovement).where(EscrowMovement.key == key)
    )
    if found is not None and (found.hold_id != hold.id or found.kind not in kinds):
        raise Conflict(f"movement key {key} was used for another movement", param="key")
    return found


async def release(
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    key: str,
    actor: Actor,
    amount: int | None = None,
) -> Moved:
    """Release ``amount`` (default: all still held) to the payee, once per ``key``."""
    hold = await get(session, hold_id, for_update=True)
    previous = await _previous_move(session, hold, key, ("release",))
    if previous is not None:
        return Moved(hold, previous.amount, repeated=True)
    check_release(hold, amount)
    moved = hold.held_amount if amount is None else amount
    before = hold_view(hold)
    await _move(session, hold, key, "release", moved, actor)
    hold.released_amount += moved
    if hold.held_amount == 0:
        hold.status = HoldStatus.RELEASED.value
        hold.released_at = datetime.now(UTC)
    else:
        hold.status = HoldStatus.PARTIALLY_RELEASED.value
    await _changed(
        session,
        hold,
        "released",
        actor=actor,
        before=before,
        event=True,
        metadata={"released": moved},
    )
    return Moved(hold, moved, repeated=False)


def check_release(hold: EscrowHold, amount: int | None) -> None:
    """A release of ``amount`` (None: all still held) is allowed now: money is held, the
    amount is within it, and no dispute or missing approval stands in the way (only
    ``resolve`` and ``approve`` lift those)."""
    check_holding(HoldStatus(hold.status))
    if amount is not None and not 1 <= amount <= hold.held_amount:
        raise ValidationError(
            f"a release moves 1 to {hold.held_amount} (what is still held), not {amount}",
            param="amount",
        )
    check_releasable(hold)


def check_releasable(hold: EscrowHold) -> None:
    if hold.dispute_reason is not None:
        raise Conflict(
            f"the hold is disputed ({hold.dispute_reason}): resolve it first", code="hold_disputed"
        )
    if len(hold.approvals) < hold.required_approvals:
        raise Conflict(
            f"the hold needs {hold.required_approvals} approvals, has {len(hold.approvals)}",
            code="approvals_missing",
        )


async def give_back(
    session: AsyncSession, hold_id: uuid.UUID, *, key: str, actor: Actor, cancel: bool
) -> Moved:
    """Return everything still held to the payer: a refund, or (``cancel``) the hold's
    cancellation. Once per ``key``."""
    hold = await get(session, hold_id, for_update=True)
    previous = await _previous_move(session, hold, key, ("cancel",) if cancel else ("refund",))
    if previous is not None:
        return Moved(hold, previous.amount, repeated=True)
    check_holding(HoldStatus(hold.status))
    before = hold_view(hold)
    moved = hold.held_amount
    await _move(session, hold, key, "cancel" if cancel else "refund", moved, actor)
    hold.refunded_amount += moved
    if cancel:
        hold.status = HoldStatus.CANCELLED.value
        hold.cancelled_at = datetime.now(UTC)
    else:
        hold.status = HoldStatus.REFUNDED.value
    await _changed(
        session,
        hold,
        "cancelled" if cancel else "refunded",
        actor=actor,
        before=before,
        event=True,
        metadata={"returned": moved},
    )
    return Moved(hold, moved, repeated=False)


async def _move(
    session: AsyncSession, hold: EscrowHold, key: str, kind: str, amount: int, actor: Actor
) -> None:
    money = Money(amount, hold.currency)
    destination = (
        payee_account(hold.payee_id) if kind == "release" else payer_account(hold.payer_id)
    )
    txn = await ledger.post_transaction(
        session,
        postings=transfer(ESCROW_ACCOUNT, destination, money),
        actor=actor,
        description=f"escrow hold {hold.id}: {kind}",
        external_ref=f"escrow-{key}",
    )
    session.add(
        EscrowMovement(
            hold_id=hold.id, key=key, kind=kind, amount=amount, ledger_transaction_id=txn.id
        )
    )


async def extend(
    session: AsyncSession, hold_id: uuid.UUID, *, release_at: datetime, actor: Actor
) -> EscrowHold:
    """Move the release date later; an earlier date is what ``release_now`` is for."""
    hold = await get(session, hold_id, for_update=True)
    check_extend(hold, release_at)
    before = hold_view(hold)
    hold.release_at = release_at
    await _changed(session, hold, "extended", actor=actor, before=before)
    return hold


def check_extend(hold: EscrowHold, release_at: datetime) -> None:
    """``release_at`` may replace the hold's date: money is held and the date is later."""
    check_holding(HoldStatus(hold.status))
    if release_at.tzinfo is None:
        raise ValidationError("release_at needs a time zone", param="release_at")
    if release_at <= hold.release_at:
        raise ValidationError(
            f"extend moves the release later than {hold.release_at.isoformat()}",
            param="release_at",
        )


async def dispute(
    session: AsyncSession, hold_id: uuid.UUID, *, reason: str, actor: Actor
) -> EscrowHold:
    hold = await get(session, hold_id, for_update=True)
    check_holding(HoldStatus(hold.status))
    if not reason.strip():
        raise ValidationError("a dispute needs a reason", param="reason")
    before = hold_view(hold)
    hold.dispute_reason = reason.strip()
    await _changed(session, hold, "disputed", actor=actor, before=before)
    return hold


async def resolve(session: AsyncSession, hold_id: uuid.UUID, *, actor: Actor) -> EscrowHold:
    hold = await get(session, hold_id, for_update=True)
    if hold.dispute_reason is None:
        return hold
    before = hold_view(hold)
    hold.dispute_reason = None
    await _changed(session, hold, "resolved", actor=actor, before=before)
    return hold


async def approve(
    session: AsyncSession, hold_id: uuid.UUID, *, approver: str, actor: Actor
) -> EscrowHold:
    """Record ``approver`` once; approvals count distinct approvers."""
    hold = await get(session, hold_id, for_update=True)
    check_holding(HoldStatus(hold.status))
    if not approver.strip():
        raise ValidationError("an approval names its approver", param="approver")
    if approver in hold.approvals:
        return hold
    before = hold_view(hold)
    hold.approvals = [*hold.approvals, approver]
    await _changed(session, hold, "approved", actor=actor, before=before)
    return hold


async def list_holds(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    hold_id: uuid.UUID | None = None,
    status: str | None = None,
    payee_id: str | None = None,
    payer_id: str | None = None,
    due_before: datetime | None = None,
    holding_only: bool = False,
) -> Sequence[EscrowHold]:
    """Newest first, ``limit + 1`` rows so callers can tell ``has_more``. ``holding_only``:
    only holds still holding money (active or partly released)."""
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(select(EscrowHold), EscrowHold, after)
    if hold_id is not None:
        query = query.where(EscrowHold.id == hold_id)
    if status:
        query = query.where(EscrowHold.status == status)
    if payee_id:
        query = query.where(EscrowHold.payee_id == payee_id)
    if payer_id:
        query = query.where(EscrowHold.payer_id == payer_id)
    if due_before is not None:
        query = query.where(EscrowHold.release_at < due_before)
    if holding_only:
        query = query.where(EscrowHold.status.in_([status.value for status in HOLDING]))
    return list(await session.scalars(query.limit(limit + 1)))


async def holding(session: AsyncSession) -> Sequence[EscrowHold]:
    """Every hold still holding money (for the safety net that restarts missing workflows)."""
    query = select(EscrowHold).where(
        EscrowHold.status.in_([s.value for s in (HoldStatus.ACTIVE, HoldStatus.PARTIALLY_RELEASED)])
    )
    return list(await session.scalars(query))


async def stats(session: AsyncSession, *, now: datetime) -> dict[str, Any]:
    """Counts and amounts per status and currency, what is due, and what was released today."""
    by_status = await session.execute(
        select(
            EscrowHold.status,
            EscrowHold.currency,
            func.count(),
            func.sum(EscrowHold.amount - EscrowHold.released_amount - EscrowHold.refunded_amount),
        ).group_by(EscrowHold.status, EscrowHold.currency)
    )
    due = await session.scalar(
        select(func.count()).where(
            EscrowHold.status.in_([HoldStatus.ACTIVE.value, HoldStatus.PARTIALLY_RELEASED.value]),
            EscrowHold.release_at <= now,
        )
    )
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    released_today = await session.scalar(
        select(func.count()).where(
            EscrowMovement.created_at >= day_start, EscrowMovement.kind == "release"
        )
    )
    counts: dict[str, int] = {}
    held: dict[str, int] = {}
    for status, currency, count, amount in by_status:
        counts[status] = counts.get(status, 0) + int(count)
        if status in (HoldStatus.ACTIVE.value, HoldStatus.PARTIALLY_RELEASED.value):
            held[currency] = held.get(currency, 0) + int(amount or 0)
    return {
        "count_by_status": counts,
        "held_by_currency": held,
        "due_for_release": int(due or 0),
        "released_today": int(released_today or 0),
    }

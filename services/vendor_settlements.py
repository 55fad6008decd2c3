"""Vendor settlements: what a vendor is owed for a period's captured payments, computed once
per period, held, then processed into a transfer request for the rail router.

- ``compute`` gathers the vendor's split lines of payments completed in the period (one
  currency) into a settlement, ``pending_hold`` until ``period_end + hold_days``. The same
  period again returns the same row; a period overlapping another of the vendor's is
  refused; a split line belongs to at most one settlement (its primary key).
- Until it is processed a settlement's figures follow its payments: a repeated ``compute``
  and ``process`` re-read the lines (refunds completed during the hold are deducted, a
  payment whose completion committed late is added).
- ``release_due`` moves settlements whose hold passed to ``due``; ``process`` moves a due
  one to ``processing`` and records its transfer request (``settlement_transfers``, status
  ``requested``, idempotency key ``vendor-settlement-{id}``), or closes a settlement with
  nothing to pay as ``paid``.
- ``route`` hands a request to the rail router once the vendor has a payout account
  (``set_payout_account`` routes the requests that waited for one): a transfer queued for
  its rail's settlement window, which pays ``payee:{vendor}``; ``transfer_closed`` marks
  the settlement ``paid`` (or ``failed``) when that transfer is final.

Computation for one vendor and currency is serialized with a transaction-scoped advisory
lock, taken before the settlement's row lock."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.money import validate_currency
from domain.payments import PaymentStatus
from domain.rails import DEFAULT_RULES, RoutingRules, destination_rail
from domain.vendor_settlements import (
    SETTLEMENT_OPEN,
    SETTLEMENT_SETTLED,
    SettlementStatus,
    TransferStatus,
    check_period,
    check_processable,
    hold_until,
    line_figures,
)
from models.commissions import (
    SettlementTransfer,
    VendorPayoutAccount,
    VendorSettlement,
    VendorSettlementLine,
)
from models.payments import Payment, PaymentSplit
from models.transfers import Transfer
from services import outbox, transfers
from services.escrow import payee_account
from services.locking import locked
from services.pagination import newest_first


def settlement_view(settlement: VendorSettlement) -> dict[str, Any]:
    return {
        "vendor_id": settlement.vendor_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start.isoformat(),
        "period_end": settlement.period_end.isoformat(),
        "status": settlement.status,
        "gross_captured": settlement.gross_captured,
        "commission": settlement.commission,
        "refunded": settlement.refunded,
        "net_amount": settlement.net_amount,
        "payment_count": settlement.payment_count,
        "hold_until": settlement.hold_until.isoformat(),
    }


# The partner the platform's own transfers to vendors are stored under (their references,
# ``vendor-settlement-{id}``, are unique within it).
VENDOR_SETTLEMENTS_PARTNER = "tollgate:vendor-settlements"


def transfer_key(settlement_id: uuid.UUID) -> str:
    """The idempotency key of the settlement's transfer: from the entity, never an attempt."""
    return f"vendor-settlement-{settlement_id}"


async def _changed(
    session: AsyncSession,
    settlement: VendorSettlement,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    announce: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="vendor_settlement",
        entity_id=settlement.id,
        action=action,
        actor=actor,
        before=before,
        after=settlement_view(settlement),
        announce=announce,
        metadata=metadata,
    )


def _check_vendor(vendor_id: str) -> str:
    if not isinstance(vendor_id, str) or not vendor_id.strip() or len(vendor_id) > 200:
        raise ValidationError("vendor_id is 1 to 200 characters", param="vendor_id")
    return vendor_id


async def _lock_vendor(session: AsyncSession, vendor_id: str, currency: str) -> None:
    name = f"vendor-settlements:{vendor_id}:{currency}"
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


async def _gather(session: AsyncSession, settlement: VendorSettlement) -> bool:
    """Adds the period's lines not settled yet and refreshes the settlement's own, then its
    totals; True when a figure changed."""
    settled = VendorSettlementLine
    rows = await session.execute(
        select(PaymentSplit, Payment.amount, Payment.amount_captured, settled)
        .join(Payment, Payment.id == PaymentSplit.payment_id)
        .outerjoin(
            settled,
            and_(
                settled.payment_id == PaymentSplit.payment_id,
                settled.split_seq == PaymentSplit.seq,
            ),
        )
        .where(
            PaymentSplit.vendor_id == settlement.vendor_id,
            Payment.currency == settlement.currency,
            Payment.status == PaymentStatus.COMPLETED.value,
            Payment.completed_at >= settlement.period_start,
            Payment.completed_at < settlement.period_end,
            (settled.settlement_id.is_(None)) | (settled.settlement_id == settlement.id),
        )
        .order_by(Payment.completed_at, PaymentSplit.payment_id)
    )
    for split, payment_amount, payment_captured, line in rows.tuples():
        figures = line_figures(
            commission=split.commission,
            captured=split.captured,
            refunded=split.refunded,
            payment_amount=payment_amount,
            payment_captured=payment_captured,
        )
        if line is None:
            session.add(
                VendorSettlementLine(
                    payment_id=split.payment_id,
                    split_seq=split.seq,
                    settlement_id=settlement.id,
                    gross_captured=figures.gross_captured,
                    commission=figures.commission,
                    captured=figures.captured,
                    refunded=figures.refunded,
                )
            )
        else:
            line.gross_captured = figures.gross_captured
            line.commission = figures.commission
            line.captured = figures.captured
            line.refunded = figures.refunded
    await session.flush()
    totals = (
        await session.execute(
            select(
                func.coalesce(func.sum(settled.gross_captured), 0),
                func.coalesce(func.sum(settled.commission), 0),
                func.coalesce(func.sum(settled.refunded), 0),
                func.count(),
            ).where(settled.settlement_id == settlement.id)
        )
    ).one()
    gross, commission, refunded, count = (int(value) for value in totals)
    before = (
        settlement.gross_captured,
        settlement.commission,
        settlement.refunded,
        settlement.payment_count,
    )
    settlement.gross_captured = gross
    settlement.commission = commission
    settlement.refunded = refunded
    settlement.net_amount = gross - commission - refunded
    settlement.payment_count = count
    return before != (gross, commission, refunded, count)


async def _refresh(session: AsyncSession, settlement: VendorSettlement, actor: Actor) -> None:
    before = settlement_view(settlement)
    if await _gather(session, settlement):
        await _changed(
            session, settlement, "recomputed", actor=actor, before=before, announce=False
        )


async def compute(
    session: AsyncSession,
    *,
    vendor_id: str,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    hold_days: int,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[VendorSettlement, bool]:
    """The vendor's settlement of the period, and whether it was created now. A period
    that has not ended is a 400 ``period_not_ended``; one overlapping another settlement of
    the vendor in that currency is a 409 ``settlement_period_overlaps``."""
    now = now or datetime.now(UTC)
    vendor_id = _check_vendor(vendor_id)
    currency = validate_currency(currency)
    check_period(period_start, period_end, now)
    release = hold_until(period_end, hold_days)
    await _lock_vendor(session, vendor_id, currency)
    same_vendor = (VendorSettlement.vendor_id == vendor_id) & (
        VendorSettlement.currency == currency
    )
    existing = await session.scalar(
        locked(
            select(VendorSettlement).where(
                same_vendor,
                VendorSettlement.period_start == period_start,
                VendorSettlement.period_end == period_end,
            )
        )
    )
    if existing is not None:
        if SettlementStatus(existing.status) in SETTLEMENT_OPEN:
            await _refresh(session, existing, actor)
        return existing, False
    overlapping = (
        await session.scalars(
            select(VendorSettlement.id).where(
                same_vendor,
                VendorSettlement.period_start < period_end,
                VendorSettlement.period_end > period_start,
            )
        )
    ).all()
    if overlapping:
        ids = sorted(str(settlement_id) for settlement_id in overlapping)
        raise Conflict(
            f"the period overlaps settlement(s) {', '.join(ids)} of {vendor_id} in {currency}",
            code="settlement_period_overlaps",
            param="period_start",
            settlement_ids=ids,
        )
    settlement = VendorSettlement(
        id=uuid.uuid4(),
        vendor_id=vendor_id,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        gross_captured=0,
        commission=0,
        refunded=0,
        net_amount=0,
        payment_count=0,
        status=SettlementStatus.PENDING_HOLD.value,
        hold_until=release,
        created_by=actor.id,
    )
    session.add(settlement)
    await session.flush()
    await _gather(session, settlement)
    await _changed(session, settlement, "created", actor=actor, before=None)
    return settlement, True


async def get(
    session: AsyncSession, settlement_id: uuid.UUID, *, for_update: bool = False
) -> VendorSettlement:
    query = select(VendorSettlement).where(VendorSettlement.id == settlement_id)
    settlement = await session.scalar(locked(query) if for_update else query)
    if settlement is None:
        raise NotFound(f"no vendor settlement {settlement_id}", param="id")
    return settlement


async def list_settlements(
    session: AsyncSession,
    *,
    limit: int,
    after: VendorSettlement | None = None,
    vendor_id: str | None = None,
    status: SettlementStatus | None = None,
    currency: str | None = None,
) -> Sequence[VendorSettlement]:
    """Newest first; ``limit + 1`` rows."""
    query = select(VendorSettlement)
    if vendor_id is not None:
        query = query.where(VendorSettlement.vendor_id == vendor_id)
    if status is not None:
        query = query.where(VendorSettlement.status == status.value)
    if currency is not None:
        query = query.where(VendorSettlement.currency == validate_currency(currency))
    query = newest_first(query, VendorSettlement, after).limit(limit + 1)
    return (await session.scalars(query)).all()


async def due(
    session: AsyncSession,
    now: datetime,
    *,
    limit: int,
    after: VendorSettlement | None = None,
) -> Sequence[VendorSettlement]:
    """Settlements whose hold has passed and that are not processed yet (``due``, or still
    ``pending_hold`` until ``release_due`` runs), newest first; ``limit + 1`` rows."""
    query = select(VendorSettlement).where(
        VendorSettlement.status.in_([status.value for status in SETTLEMENT_OPEN]),
        VendorSettlement.hold_until <= now,
    )
    query = newest_first(query, VendorSettlement, after).limit(limit + 1)
    return (await session.scalars(query)).all()


async def release_due(
    session: AsyncSession, now: datetime, *, actor: Actor
) -> list[VendorSettlement]:
    """``pending_hold`` -> ``due`` for every settlement whose hold has passed by ``now``."""
    released = list(
        await session.scalars(
            locked(
                select(VendorSettlement)
                .where(
                    VendorSettlement.status == SettlementStatus.PENDING_HOLD.value,
                    VendorSettlement.hold_until <= now,
                )
                .order_by(VendorSettlement.id)
            )
        )
    )
    for settlement in released:
        before = settlement_view(settlement)
        settlement.status = SettlementStatus.DUE.value
        await _changed(session, settlement, "due", actor=actor, before=before)
    return released


async def process(
    session: AsyncSession,
    settlement_id: uuid.UUID,
    *,
    actor: Actor,
    rules: RoutingRules = DEFAULT_RULES,
    now: datetime | None = None,
) -> VendorSettlement:
    """A settlement whose hold has passed -> ``processing`` with its transfer request, routed
    at once when the vendor has a payout account (``route``), or ``paid`` at once when it
    has nothing to pay. Before the hold passes, or once failed,
    409 ``settlement_not_due``; one already processing (or paid) is returned as it is."""
    now = now or datetime.now(UTC)
    found = await get(session, settlement_id)
    await _lock_vendor(session, found.vendor_id, found.currency)
    settlement = await get(session, settlement_id, for_update=True)
    status = SettlementStatus(settlement.status)
    if status in SETTLEMENT_SETTLED:
        return settlement
    check_processable(status, settlement.hold_until, now)
    await _refresh(session, settlement, actor)
    if status is SettlementStatus.PENDING_HOLD:
        before = settlement_view(settlement)
        settlement.status = SettlementStatus.DUE.value
        await _changed(session, settlement, "due", actor=actor, before=before)
    before = settlement_view(settlement)
    settlement.processed_at = now
    if settlement.net_amount == 0:
        settlement.status = SettlementStatus.PAID.value
        settlement.closed_at = now
        await _changed(
            session,
            settlement,
            "paid",
            actor=actor,
            before=before,
            metadata={"transfer_id": None, "reason": "nothing to pay"},
        )
        return settlement
    transfer = SettlementTransfer(
        id=uuid.uuid4(),
        settlement_id=settlement.id,
        destination=settlement.vendor_id,
        amount=settlement.net_amount,
        currency=settlement.currency,
        status=TransferStatus.REQUESTED.value,
        rail=None,
        idempotency_key=transfer_key(settlement.id),
    )
    session.add(transfer)
    settlement.status = SettlementStatus.PROCESSING.value
    await _changed(
        session,
        settlement,
        "processing",
        actor=actor,
        before=before,
        metadata={"transfer_id": str(transfer.id), "idempotency_key": transfer.idempotency_key},
    )
    await route(session, transfer.id, rules=rules, actor=actor, now=now)
    return settlement


async def transfers_of(
    session: AsyncSession, settlement_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SettlementTransfer]:
    """The transfer requests of several settlements (a page), by settlement."""
    if not settlement_ids:
        return {}
    rows = await session.scalars(
        select(SettlementTransfer).where(SettlementTransfer.settlement_id.in_(settlement_ids))
    )
    return {row.settlement_id: row for row in rows}


async def requested_transfers(
    session: AsyncSession, *, limit: int, vendor_id: str | None = None
) -> Sequence[SettlementTransfer]:
    """Transfer requests waiting for the router, oldest first (what the router picks up)."""
    query = select(SettlementTransfer).where(
        SettlementTransfer.status == TransferStatus.REQUESTED.value
    )
    if vendor_id is not None:
        query = query.where(SettlementTransfer.destination == vendor_id)
    return (
        await session.scalars(
            query.order_by(SettlementTransfer.created_at, SettlementTransfer.id).limit(limit)
        )
    ).all()


# Payout accounts and routing


async def payout_account(session: AsyncSession, vendor_id: str) -> VendorPayoutAccount:
    found = await session.get(VendorPayoutAccount, _check_vendor(vendor_id))
    if found is None:
        raise NotFound(f"vendor {vendor_id} has no payout account", param="vendor_id")
    return found


async def set_payout_account(
    session: AsyncSession,
    vendor_id: str,
    destination: str,
    *,
    rules: RoutingRules,
    actor: Actor,
    now: datetime | None = None,
) -> tuple[VendorPayoutAccount, list[SettlementTransfer]]:
    """Where the vendor is paid from now on (a Stripe connected account or a chain address),
    and the vendor's transfer requests that were waiting for it, routed now."""
    vendor_id = _check_vendor(vendor_id)
    if not isinstance(destination, str) or destination_rail(destination.strip()) is None:
        raise ValidationError(
            "destination must be a Stripe connected account (acct_...) or a chain address"
            " (0x and 40 hex digits)",
            code="invalid_destination",
            param="destination",
        )
    destination = destination.strip()
    account = await session.scalar(
        locked(select(VendorPayoutAccount).where(VendorPayoutAccount.vendor_id == vendor_id))
    )
    before = {"destination": account.destination} if account is not None else None
    if account is None:
        account = VendorPayoutAccount(
            vendor_id=vendor_id, destination=destination, updated_by=actor.id
        )
        session.add(account)
    else:
        account.destination = destination
        account.updated_by = actor.id
    await outbox.record_change(
        session,
        entity_type="vendor_payout_account",
        entity_id=vendor_id,
        action="set",
        actor=actor,
        before=before,
        after={"vendor_id": vendor_id, "destination": destination},
        announce=False,
    )
    waiting = await requested_transfers(session, limit=1000, vendor_id=vendor_id)
    routed = [
        await route(session, request.id, rules=rules, actor=actor, now=now) for request in waiting
    ]
    return account, [request for request in routed if request.status == TransferStatus.ROUTED]


async def route(
    session: AsyncSession,
    request_id: uuid.UUID,
    *,
    rules: RoutingRules,
    actor: Actor,
    now: datetime | None = None,
) -> SettlementTransfer:
    """A ``requested`` settlement transfer → ``routed``: the router picks the rail for the
    vendor's payout account and a transfer is queued for that rail's settlement window
    (``transfers.create_single``); paying it settles ``payee:{vendor}``. Without an account,
    or when no rail can carry it there, it stays requested with the reason."""
    request = await session.scalar(
        locked(select(SettlementTransfer).where(SettlementTransfer.id == request_id))
    )
    if request is None:
        raise NotFound(f"no settlement transfer {request_id}", param="id")
    if request.status != TransferStatus.REQUESTED.value:
        return request
    account = await session.get(VendorPayoutAccount, request.destination)
    if account is None:
        request.failure_reason = f"vendor {request.destination} has no payout account"
        return request
    try:
        async with session.begin_nested():
            sent = await transfers.create_single(
                session,
                partner_id=VENDOR_SETTLEMENTS_PARTNER,
                reference=request.idempotency_key,
                destination=account.destination,
                amount=request.amount,
                currency=request.currency,
                description=f"settlement {request.settlement_id} of vendor {request.destination}",
                rules=rules,
                actor=actor,
                settles_account=payee_account(request.destination),
                now=now,
            )
    except ValidationError as refused:
        problems = refused.details.get("errors") or [{"message": refused.message}]
        request.failure_reason = "; ".join(str(problem["message"]) for problem in problems)
        return request
    request.status = TransferStatus.ROUTED.value
    request.rail = sent.rail
    request.transfer_id = sent.id
    request.failure_reason = None
    request.routed_at = now or datetime.now(UTC)
    await outbox.record_change(
        session,
        entity_type="settlement_transfer",
        entity_id=request.id,
        action="routed",
        actor=actor,
        before=None,
        after={
            "settlement_id": str(request.settlement_id),
            "rail": sent.rail,
            "route_reason": sent.route_reason,
            "transfer_id": str(sent.id),
            "window_at": sent.window_at.isoformat() if sent.window_at else None,
        },
        announce=False,
    )
    return request


async def transfer_closed(
    session: AsyncSession, transfer: Transfer, *, actor: Actor
) -> VendorSettlement | None:
    """The settlement a final transfer paid (or failed to pay) follows it: ``paid`` with the
    rail's reference, or ``failed`` with the error. None for a transfer of no settlement."""
    request = await session.scalar(
        locked(select(SettlementTransfer).where(SettlementTransfer.transfer_id == transfer.id))
    )
    if request is None or request.status != TransferStatus.ROUTED.value:
        return None
    paid = transfer.status == "succeeded"
    if not paid and transfer.status not in ("failed", "cancelled"):
        return None
    now = datetime.now(UTC)
    request.status = (TransferStatus.PAID if paid else TransferStatus.FAILED).value
    request.external_id = transfer.external_id
    request.failure_reason = None if paid else transfer.last_error
    request.closed_at = now
    settlement = await get(session, request.settlement_id, for_update=True)
    before = settlement_view(settlement)
    settlement.status = (SettlementStatus.PAID if paid else SettlementStatus.FAILED).value
    settlement.closed_at = now
    await _changed(
        session,
        settlement,
        "paid" if paid else "failed",
        actor=actor,
        before=before,
        metadata={
            "transfer_id": str(transfer.id),
            "rail": transfer.rail,
            "external_id": transfer.external_id,
            "error": request.failure_reason,
        },
    )
    return settlement


@dataclass(frozen=True)
class CurrencySummary:
    """A vendor's figures in one currency, over every completed payment. ``pending`` is
    what is owed and not yet handed to a transfer (``net - settled``); ``in_settlement`` is
    the part of it already in a settlement waiting for its hold or its processing."""

    currency: str
    gross_captured: int
    commission: int
    refunded: int
    net: int
    settled: int
    in_settlement: int
    payment_count: int

    @property
    def pending(self) -> int:
        return self.net - self.settled


async def summary(session: AsyncSession, vendor_id: str) -> list[CurrencySummary]:
    """Per currency (alphabetical): captured, commission, refunded and net of the vendor's
    completed payments (as settlements count them), and what settlements hold of it."""
    taken = func.round(
        cast(PaymentSplit.commission, Numeric) * Payment.amount_captured / Payment.amount
    )
    lines = (
        await session.execute(
            select(
                Payment.currency,
                func.sum(PaymentSplit.captured),
                func.sum(taken),
                func.sum(PaymentSplit.refunded),
                func.count(),
            )
            .join(Payment, Payment.id == PaymentSplit.payment_id)
            .where(
                PaymentSplit.vendor_id == vendor_id,
                Payment.status == PaymentStatus.COMPLETED.value,
            )
            .group_by(Payment.currency)
        )
    ).all()
    settled_statuses = [status.value for status in SETTLEMENT_SETTLED]
    open_statuses = [status.value for status in SETTLEMENT_OPEN]
    settlements = (
        await session.execute(
            select(
                VendorSettlement.currency,
                func.sum(
                    case(
                        (
                            VendorSettlement.status.in_(settled_statuses),
                            VendorSettlement.net_amount,
                        ),
                        else_=0,
                    )
                ),
                func.sum(
                    case(
                        (VendorSettlement.status.in_(open_statuses), VendorSettlement.net_amount),
                        else_=0,
                    )
                ),
            )
            .where(VendorSettlement.vendor_id == vendor_id)
            .group_by(VendorSettlement.currency)
        )
    ).all()
    held = {currency: (int(done), int(waiting)) for currency, done, waiting in settlements}
    found = []
    for currency, captured, commission, refunded, count in lines:
        done, waiting = held.pop(currency, (0, 0))
        found.append(
            CurrencySummary(
                currency=currency,
                gross_captured=int(captured) + int(commission),
                commission=int(commission),
                refunded=int(refunded),
                net=int(captured) - int(refunded),
                settled=done,
                in_settlement=waiting,
                payment_count=int(count),
            )
        )
    for currency, (done, waiting) in held.items():  # settlements of nothing captured
        found.append(CurrencySummary(currency, 0, 0, 0, 0, done, waiting, 0))
    return sorted(found, key=lambda item: item.currency)

"""Vendor settlements: what a vendor is owed for a period's captured payments (minus
commission and refunds), computed once per period, held ``TOLLGATE_VENDOR_SETTLEMENT_HOLD_DAYS``
after it, then processed into a transfer request that the rail router sends to the vendor's
payout account, in its rail's settlement window. Admins compute, list and process; a vendor
reads its own settlements and summary and sets its payout account."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.customers import ADMIN_ROLES
from api.deps import Admin, CurrentActor, Session, get_settings
from api.fields import Currency, Party
from api.pagination import Page, PageQuery, paginate, row_cursor
from api.transfer_workflows import enqueue_after_commit
from domain.actors import Actor, Role
from domain.errors import NotFound, PermissionDenied
from domain.vendor_settlements import SettlementStatus, TransferStatus
from models.commissions import SettlementTransfer, VendorSettlement
from services import transfers, vendor_settlements
from settings import Settings

router = APIRouter(prefix="/vendor-settlements", tags=["vendor settlements"])

AppSettings = Annotated[Settings, Depends(get_settings)]
VendorPath = Annotated[str, Path(min_length=1, max_length=200)]


class ComputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor_id: Party
    currency: Currency
    period_start: AwareDatetime = Field(description="Inclusive")
    period_end: AwareDatetime = Field(description="Exclusive; the period must have ended")


class TransferOut(BaseModel):
    id: uuid.UUID
    object: str = "settlement_transfer"
    destination: str = Field(description="The vendor paid")
    amount: int
    currency: str
    status: TransferStatus
    rail: str | None = Field(description="None until the router routes it")
    idempotency_key: str
    external_id: str | None
    transfer_id: uuid.UUID | None = Field(description="The transfer sending it, once routed")
    failure_reason: str | None = Field(
        description="Why it is not routed (no payout account) or why it failed"
    )
    created_at: datetime


class SettlementOut(BaseModel):
    id: uuid.UUID
    object: str = "vendor_settlement"
    vendor_id: str
    currency: str
    period_start: datetime
    period_end: datetime
    gross_captured: int
    commission: int
    refunded: int
    net_amount: int = Field(description="gross_captured - commission - refunded")
    payment_count: int
    status: SettlementStatus
    hold_until: datetime
    processed_at: datetime | None
    closed_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    transfer: TransferOut | None


def transfer_out(transfer: SettlementTransfer) -> TransferOut:
    return TransferOut(
        id=transfer.id,
        destination=transfer.destination,
        amount=transfer.amount,
        currency=transfer.currency,
        status=TransferStatus(transfer.status),
        rail=transfer.rail,
        idempotency_key=transfer.idempotency_key,
        external_id=transfer.external_id,
        transfer_id=transfer.transfer_id,
        failure_reason=transfer.failure_reason,
        created_at=transfer.created_at,
    )


def settlement_out(
    settlement: VendorSettlement, transfer: SettlementTransfer | None
) -> SettlementOut:
    return SettlementOut(
        id=settlement.id,
        vendor_id=settlement.vendor_id,
        currency=settlement.currency,
        period_start=settlement.period_start,
        period_end=settlement.period_end,
        gross_captured=settlement.gross_captured,
        commission=settlement.commission,
        refunded=settlement.refunded,
        net_amount=settlement.net_amount,
        payment_count=settlement.payment_count,
        status=SettlementStatus(settlement.status),
        hold_until=settlement.hold_until,
        processed_at=settlement.processed_at,
        closed_at=settlement.closed_at,
        created_by=settlement.created_by,
        created_at=settlement.created_at,
        updated_at=settlement.updated_at,
        transfer=transfer_out(transfer) if transfer else None,
    )


async def _out(session: AsyncSession, settlement: VendorSettlement) -> SettlementOut:
    transfers = await vendor_settlements.transfers_of(session, [settlement.id])
    return settlement_out(settlement, transfers.get(settlement.id))


async def _page(
    session: AsyncSession, rows: list[VendorSettlement], limit: int
) -> Page[SettlementOut]:
    transfers = await vendor_settlements.transfers_of(session, [row.id for row in rows[:limit]])
    return paginate(
        rows, limit, lambda row: settlement_out(row, transfers.get(row.id)), lambda s: s.id
    )


def _visible(actor: Actor, settlement: VendorSettlement) -> bool:
    return actor.role in ADMIN_ROLES or (
        actor.role is Role.VENDOR and actor.id == settlement.vendor_id
    )


def _check_vendor(actor: Actor, vendor_id: str | None) -> str | None:
    """Admins see any vendor; a vendor only itself (its own id by default)."""
    if actor.role in ADMIN_ROLES:
        return vendor_id
    if actor.role is Role.VENDOR and vendor_id in (None, actor.id):
        return actor.id
    raise PermissionDenied("only admins, or a vendor about itself, may see vendor settlements")


@router.post("", status_code=201)
async def compute_settlement(
    body: ComputeIn, response: Response, session: Session, actor: Admin, settings: AppSettings
) -> SettlementOut:
    """Compute the vendor's settlement of the period (201), held until ``period_end`` plus
    the hold days. The same period again answers the same settlement (200), its figures
    brought up to date while it is not processed. A period that has not ended is a 400
    ``period_not_ended``, one overlapping another settlement of the vendor a 409
    ``settlement_period_overlaps``."""
    settlement, created = await vendor_settlements.compute(
        session,
        vendor_id=body.vendor_id,
        currency=body.currency,
        period_start=body.period_start,
        period_end=body.period_end,
        hold_days=settings.vendor_settlement_hold_days,
        actor=actor,
    )
    if not created:
        response.status_code = 200
    return await _out(session, settlement)


@router.get("")
async def list_settlements(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    vendor_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    status: SettlementStatus | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=8)] = None,
) -> Page[SettlementOut]:
    """Newest first, filtered; a vendor sees its own."""
    vendor_id = _check_vendor(actor, vendor_id)
    after = await row_cursor(
        params.starting_after,
        lambda settlement_id: vendor_settlements.get(session, settlement_id),
        lambda row: _visible(actor, row),
    )
    rows = await vendor_settlements.list_settlements(
        session,
        limit=params.limit,
        after=after,
        vendor_id=vendor_id,
        status=status,
        currency=currency,
    )
    return await _page(session, list(rows), params.limit)


@router.get("/due")
async def due_settlements(session: Session, actor: Admin, params: PageQuery) -> Page[SettlementOut]:
    """Settlements whose hold has passed, not processed yet; those still ``pending_hold``
    become ``due`` first (what the hold's end decided already)."""
    now = datetime.now(UTC)
    await vendor_settlements.release_due(session, now, actor=actor)
    after = await row_cursor(
        params.starting_after,
        lambda settlement_id: vendor_settlements.get(session, settlement_id),
        lambda _: True,
    )
    rows = await vendor_settlements.due(session, now, limit=params.limit, after=after)
    return await _page(session, list(rows), params.limit)


class CurrencySummaryOut(BaseModel):
    currency: str
    gross_captured: int
    commission: int
    refunded: int
    net: int = Field(description="gross_captured - commission - refunded")
    settled: int = Field(description="In settlements processing or paid")
    in_settlement: int = Field(description="In settlements waiting for their hold or process")
    pending: int = Field(description="net - settled: owed, not yet handed to a transfer")
    payment_count: int


class SummaryOut(BaseModel):
    object: str = "vendor_settlement_summary"
    vendor_id: str
    currencies: list[CurrencySummaryOut]


@router.get("/vendors/{vendor_id}/summary")
async def vendor_summary(
    vendor_id: VendorPath, session: Session, actor: CurrentActor
) -> SummaryOut:
    """Per currency, over the vendor's completed payments: captured, commission, refunded,
    net, and how much of it is settled or pending (admins, or the vendor itself)."""
    _check_vendor(actor, vendor_id)
    figures = await vendor_settlements.summary(session, vendor_id)
    return SummaryOut(
        vendor_id=vendor_id,
        currencies=[
            CurrencySummaryOut(
                currency=item.currency,
                gross_captured=item.gross_captured,
                commission=item.commission,
                refunded=item.refunded,
                net=item.net,
                settled=item.settled,
                in_settlement=item.in_settlement,
                pending=item.pending,
                payment_count=item.payment_count,
            )
            for item in figures
        ],
    )


@router.get("/{settlement_id}")
async def get_settlement(
    settlement_id: uuid.UUID, session: Session, actor: CurrentActor
) -> SettlementOut:
    settlement = await vendor_settlements.get(session, settlement_id)
    if not _visible(actor, settlement):
        raise NotFound(f"no vendor settlement {settlement_id}", param="id")
    return await _out(session, settlement)


@router.post("/{settlement_id}/process")
async def process_settlement(
    settlement_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: Admin,
    settings: AppSettings,
) -> SettlementOut:
    """A settlement whose hold has passed -> ``processing``, with its transfer request,
    routed at once when the vendor has a payout account (a transfer queued for its rail's
    settlement window; else rail None until the vendor sets one); one with nothing to pay
    -> ``paid``. Before the hold passes a 409 ``settlement_not_due``; one already processing
    is answered as it is."""
    settlement = await vendor_settlements.process(
        session, settlement_id, actor=actor, rules=settings.rail_routing
    )
    out = await _out(session, settlement)
    await _enqueue_routed(request, session, settings, [out.transfer] if out.transfer else [])
    return out


async def _enqueue_routed(
    request: Request, session: Session, settings: Settings, routed: list[TransferOut]
) -> None:
    """Wake the window workflow of each routed request's rail, once committed."""
    sent = [item.transfer_id for item in routed if item.transfer_id is not None]
    if sent:
        windows = await transfers.queued_windows(session, transfer_ids=sent)
        for rail, window_at in windows.items():
            enqueue_after_commit(request, settings, rail, window_at)


class PayoutAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination: str = Field(
        min_length=1,
        max_length=200,
        description="A Stripe connected account (acct_...) or a chain address (0x...)",
    )


class PayoutAccountOut(BaseModel):
    object: str = "vendor_payout_account"
    vendor_id: str
    destination: str
    updated_by: str
    updated_at: datetime
    routed_transfers: list[TransferOut] = Field(
        default_factory=list,
        description="Transfer requests that waited for the account, routed by this change",
    )


@router.put("/vendors/{vendor_id}/payout-account")
async def set_payout_account(
    vendor_id: VendorPath,
    body: PayoutAccountIn,
    request: Request,
    session: Session,
    actor: CurrentActor,
    settings: AppSettings,
) -> PayoutAccountOut:
    """Where the vendor is paid (admins, or the vendor itself); its transfer requests that
    waited for an account are routed now."""
    _check_vendor(actor, vendor_id)
    account, routed = await vendor_settlements.set_payout_account(
        session, vendor_id, body.destination, rules=settings.rail_routing, actor=actor
    )
    routed_out = [transfer_out(item) for item in routed]
    await _enqueue_routed(request, session, settings, routed_out)
    return PayoutAccountOut(
        vendor_id=account.vendor_id,
        destination=account.destination,
        updated_by=account.updated_by,
        updated_at=account.updated_at,
        routed_transfers=routed_out,
    )


@router.get("/vendors/{vendor_id}/payout-account")
async def get_payout_account(
    vendor_id: VendorPath, session: Session, actor: CurrentActor
) -> PayoutAccountOut:
    _check_vendor(actor, vendor_id)
    account = await vendor_settlements.payout_account(session, vendor_id)
    return PayoutAccountOut(
        vendor_id=account.vendor_id,
        destination=account.destination,
        updated_by=account.updated_by,
        updated_at=account.updated_at,
    )

"""Prediction markets: token grants and balances, markets, commitments, and the resolution
signals (resolve, dispute, uphold, rollback). The resolution is made by the market's
workflow: the API checks a signal against the market first, so a refused one is a 4xx and
nothing is sent, then signals ``market-resolution-{id}`` (starting it) and answers 202 with
the market as it is now."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, CurrentActor, PlatformAdmin, Session, get_settings, require_roles
from api.fields import Amount, Party
from api.pagination import (
    Page,
    PageQuery,
    int_cursor,
    paginate,
    uuid_cursor,
)
from api.workflow_calls import WorkflowStart, signal
from domain.actors import Actor, Role
from domain.errors import NotFound, PermissionDenied
from domain.markets import MarketKind, MarketStatus, NoWinners, Position
from models.audit import AuditEvent
from models.markets import Market, MarketCommitment, MarketPayout, MarketResolution
from services import markets
from settings import Settings
from workflows.types import (
    DisputeMarket,
    MarketResolutionInput,
    MarketSignal,
    ResolveMarket,
    RollbackMarket,
)

router = APIRouter(prefix="/markets", tags=["markets"])

AppSettings = Annotated[Settings, Depends(get_settings)]
Customer = Annotated[Actor, Depends(require_roles(Role.CUSTOMER))]
Bps = Annotated[int, Field(ge=0, le=10_000, description="Basis points of the pool")]


def workflow_id(market_id: uuid.UUID) -> str:
    return f"market-resolution-{market_id}"


def resolution_workflow(market: Market, settings: Settings) -> WorkflowStart:
    return WorkflowStart(
        workflow="MarketResolution",
        id=workflow_id(market.id),
        arg=MarketResolutionInput(
            market_id=market.id,
            dispute_window_seconds=settings.market_dispute_window_hours * 3600,
        ),
        task_queue=settings.task_queue,
    )


def _own_or_admin(actor: Actor, user_id: str) -> None:
    if not actor.is_admin and actor.id != user_id:
        raise PermissionDenied("customers see only their own tokens, commitments and payouts")


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Party
    amount: Amount
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class GrantOut(BaseModel):
    object: str = "token_grant"
    user_id: str
    amount: int
    balance: int
    ledger_transaction_id: uuid.UUID


@router.post("/token-grants", status_code=201)
async def grant_tokens(body: GrantIn, session: Session, actor: PlatformAdmin) -> GrantOut:
    """Issue tokens to a user's balance (audited; a ledger transaction from
    ``token-issuance``)."""
    grant = await markets.grant_tokens(
        session, user_id=body.user_id, amount=body.amount, reason=body.reason, actor=actor
    )
    return GrantOut(
        user_id=grant.user_id,
        amount=grant.amount,
        balance=grant.balance,
        ledger_transaction_id=grant.ledger_transaction_id,
    )


class BalanceOut(BaseModel):
    object: str = "token_balance"
    user_id: str
    balance: int


@router.get("/token-balances/{user_id}")
async def token_balance(user_id: str, session: Session, actor: CurrentActor) -> BalanceOut:
    _own_or_admin(actor, user_id)
    return BalanceOut(user_id=user_id, balance=await markets.token_balance(session, user_id))


class PayoutOut(BaseModel):
    id: int
    object: str = "market_payout"
    market_id: uuid.UUID
    resolution_id: uuid.UUID
    user_id: str
    staked: int
    amount: int
    profit: int
    status: str
    created_at: datetime


def payout_out(payout: MarketPayout) -> PayoutOut:
    return PayoutOut(
        id=payout.id,
        market_id=payout.market_id,
        resolution_id=payout.resolution_id,
        user_id=payout.user_id,
        staked=payout.staked,
        amount=payout.amount,
        profit=payout.profit,
        status=payout.status,
        created_at=payout.created_at,
    )


@router.get("/payouts")
async def payout_history(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    user_id: Annotated[str | None, Query(max_length=200, description="Default: the caller")] = None,
) -> Page[PayoutOut]:
    """A user's payouts over every market, newest first (rolled-back ones included)."""
    who = user_id or actor.id
    _own_or_admin(actor, who)
    rows = await markets.list_payouts(
        session,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "a payout id"),
        user_id=who,
    )
    return paginate(rows, params.limit, payout_out, lambda item: item.id)


class MarketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=500, pattern=r"\S")
    kind: MarketKind
    options: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description="Labels; binary markets: none (Yes, No) or two (yes first)",
    )
    creator_id: Party
    house_fee_bps: Bps = 0
    creator_fee_bps: Bps = 0
    no_winners: NoWinners = Field(
        NoWinners.REFUND, description="Nobody backed the winner: refund everyone, or the house"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class OptionOut(BaseModel):
    id: uuid.UUID
    label: str
    position: Position | None
    committed: int


class MarketOut(BaseModel):
    id: uuid.UUID
    object: str = "market"
    question: str
    kind: MarketKind
    status: MarketStatus
    creator_id: str
    house_fee_bps: int
    creator_fee_bps: int
    no_winners: NoWinners
    winning_option_id: uuid.UUID | None
    options: list[OptionOut] | None = Field(None, description="With a single market only")
    pool: int | None = Field(None, description="With a single market only")
    metadata: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    settled_at: datetime | None
    workflow_id: str


def market_out(market: Market) -> MarketOut:
    return MarketOut(
        id=market.id,
        question=market.question,
        kind=MarketKind(market.kind),
        status=MarketStatus(market.status),
        creator_id=market.creator_id,
        house_fee_bps=market.house_fee_bps,
        creator_fee_bps=market.creator_fee_bps,
        no_winners=NoWinners(market.no_winners),
        winning_option_id=market.winning_option_id,
        metadata=market.metadata_,
        created_at=market.created_at,
        resolved_at=market.resolved_at,
        settled_at=market.settled_at,
        workflow_id=workflow_id(market.id),
    )


async def market_detail(session: AsyncSession, market: Market) -> MarketOut:
    totals = await markets.option_totals(session, market.id)
    out = market_out(market)
    out.options = [
        OptionOut(
            id=option.id,
            label=option.label,
            position=Position(option.position) if option.position else None,
            committed=totals.get(option.id, 0),
        )
        for option in await markets.options_of(session, market.id)
    ]
    out.pool = sum(totals.values())
    return out


@router.post("", status_code=201)
async def create_market(body: MarketIn, session: Session, actor: PlatformAdmin) -> MarketOut:
    market = await markets.create_market(
        session,
        question=body.question,
        kind=body.kind,
        options=body.options,
        creator_id=body.creator_id,
        house_fee_bps=body.house_fee_bps,
        creator_fee_bps=body.creator_fee_bps,
        no_winners=body.no_winners,
        actor=actor,
        metadata=body.metadata,
    )
    return await market_detail(session, market)


@router.get("")
async def list_markets(
    session: Session,
    _: CurrentActor,
    params: PageQuery,
    status: MarketStatus | None = None,
) -> Page[MarketOut]:
    """Newest first."""
    rows = await markets.list_markets(
        session,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
        status=status.value if status else None,
    )
    return paginate(rows, params.limit, market_out, lambda item: item.id)


@router.get("/{market_id}")
async def get_market(market_id: uuid.UUID, session: Session, _: CurrentActor) -> MarketOut:
    return await market_detail(session, await markets.get(session, market_id))


class CommitmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    option_id: uuid.UUID | None = Field(None, description="The option, or:")
    position: Position | None = Field(None, description="yes/no, in a binary market")


class CommitmentOut(BaseModel):
    id: int
    object: str = "market_commitment"
    market_id: uuid.UUID
    option_id: uuid.UUID
    user_id: str
    amount: int
    matched_by: str
    status: str
    payout: int | None
    profit: int | None
    share: Decimal | None
    resolution_id: uuid.UUID | None
    created_at: datetime


def commitment_out(commitment: MarketCommitment) -> CommitmentOut:
    return CommitmentOut(
        id=commitment.id,
        market_id=commitment.market_id,
        option_id=commitment.option_id,
        user_id=commitment.user_id,
        amount=commitment.amount,
        matched_by=commitment.matched_by,
        status=commitment.status,
        payout=commitment.payout,
        profit=commitment.profit,
        share=commitment.share,
        resolution_id=commitment.resolution_id,
        created_at=commitment.created_at,
    )


@router.post("/{market_id}/commitments", status_code=201)
async def commit(
    market_id: uuid.UUID, body: CommitmentIn, session: Session, actor: Customer
) -> CommitmentOut:
    """Commit the caller's tokens to an option (by id, or yes/no in a binary market)."""
    commitment = await markets.commit(
        session,
        market_id,
        user_id=actor.id,
        amount=body.amount,
        option_id=body.option_id,
        position=body.position,
        actor=actor,
    )
    return commitment_out(commitment)


@router.get("/{market_id}/commitments")
async def list_commitments(
    market_id: uuid.UUID,
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[CommitmentOut]:
    """Oldest first; a customer sees their own only."""
    await markets.get(session, market_id)
    if not actor.is_admin:
        _own_or_admin(actor, user_id or actor.id)
        user_id = actor.id
    rows = await markets.list_commitments(
        session,
        market_id,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "a commitment id"),
        user_id=user_id,
    )
    return paginate(rows, params.limit, commitment_out, lambda item: item.id)


class TrailEvent(BaseModel):
    id: int
    action: str
    actor: str
    actor_role: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    metadata: dict[str, Any]
    occurred_at: datetime


class TrailOut(BaseModel):
    object: str = "market_commitment_trail"
    commitment: CommitmentOut
    matched_by: str = Field(description="option_id, or position (binary yes/no)")
    events: list[TrailEvent]


def trail_event(event: AuditEvent) -> TrailEvent:
    return TrailEvent(
        id=event.id,
        action=event.action,
        actor=event.actor,
        actor_role=event.actor_role,
        before=event.before,
        after=event.after,
        metadata=event.metadata_,
        occurred_at=event.occurred_at,
    )


@router.get("/{market_id}/commitments/{commitment_id}/audit")
async def commitment_trail(
    market_id: uuid.UUID, commitment_id: int, session: Session, actor: CurrentActor
) -> TrailOut:
    """Every audited change of the commitment: how it was matched, settled, rolled back."""
    commitment = await markets.get_commitment(session, market_id, commitment_id)
    _own_or_admin(actor, commitment.user_id)
    events = await markets.commitment_trail(session, commitment.id)
    return TrailOut(
        commitment=commitment_out(commitment),
        matched_by=commitment.matched_by,
        events=[trail_event(event) for event in events],
    )


class DistributionOut(BaseModel):
    id: uuid.UUID
    object: str = "market_distribution"
    market_id: uuid.UUID
    attempt: int
    status: str
    winning_option_id: uuid.UUID
    outcome: str | None
    pool: int
    house_fee: int
    creator_fee: int
    paid_out: int
    winning_commitments: int
    ledger_transaction_id: uuid.UUID | None
    reversal_transaction_id: uuid.UUID | None
    resolved_by: str
    dispute_reason: str | None
    rollback_reason: str | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    rolled_back_at: datetime | None


def distribution_out(resolution: MarketResolution) -> DistributionOut:
    return DistributionOut(
        id=resolution.id,
        market_id=resolution.market_id,
        attempt=resolution.attempt,
        status=resolution.status,
        winning_option_id=resolution.winning_option_id,
        outcome=resolution.outcome,
        pool=resolution.pool,
        house_fee=resolution.house_fee,
        creator_fee=resolution.creator_fee,
        paid_out=resolution.paid_out,
        winning_commitments=resolution.winning_commitments,
        ledger_transaction_id=resolution.ledger_transaction_id,
        reversal_transaction_id=resolution.reversal_transaction_id,
        resolved_by=resolution.resolved_by,
        dispute_reason=resolution.dispute_reason,
        rollback_reason=resolution.rollback_reason,
        error=resolution.error,
        created_at=resolution.created_at,
        completed_at=resolution.completed_at,
        rolled_back_at=resolution.rolled_back_at,
    )


@router.get("/{market_id}/distribution")
async def distribution(market_id: uuid.UUID, session: Session, _: Admin) -> DistributionOut:
    """The market's latest resolution: its fees, what it paid and its status."""
    await markets.get(session, market_id)
    latest = await markets.latest_resolution(session, market_id)
    if latest is None:
        raise NotFound(f"market {market_id} has not been resolved", param="id")
    return distribution_out(latest)


@router.get("/{market_id}/distributions")
async def distributions(market_id: uuid.UUID, session: Session, _: Admin) -> list[DistributionOut]:
    """Every resolution of the market, first first (rolled back and failed ones too)."""
    await markets.get(session, market_id)
    return [distribution_out(r) for r in await markets.list_resolutions(session, market_id)]


@router.get("/{market_id}/distribution/payouts")
async def distribution_payouts(
    market_id: uuid.UUID,
    session: Session,
    _: Admin,
    params: PageQuery,
    resolution_id: Annotated[uuid.UUID | None, Query(description="Default: the latest")] = None,
) -> Page[PayoutOut]:
    """What each user staked and received in one resolution."""
    latest = await markets.latest_resolution(session, market_id)
    chosen = resolution_id or (latest.id if latest else None)
    if chosen is None:
        raise NotFound(f"market {market_id} has not been resolved", param="id")
    if (await markets.get_resolution(session, chosen)).market_id != market_id:
        raise NotFound(f"no resolution {chosen} of market {market_id}", param="resolution_id")
    rows = await markets.list_payouts(
        session,
        limit=params.limit,
        starting_after=int_cursor(params.starting_after, "a payout id"),
        resolution_id=chosen,
    )
    return paginate(rows, params.limit, payout_out, lambda item: item.id)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    option_id: uuid.UUID | None = Field(None, description="The winning option, or:")
    position: Position | None = Field(None, description="yes/no, in a binary market")


@router.post("/{market_id}/resolve", status_code=202)
async def resolve(
    market_id: uuid.UUID,
    body: ResolveIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> MarketOut:
    """Resolve with the winning option: the workflow distributes the pool once."""
    market = await markets.get(session, market_id)
    markets.check_resolvable(market)
    winner = await markets.winning_option(
        session, market, option_id=body.option_id, position=body.position
    )
    start = resolution_workflow(market, settings)
    await signal(request, start, "resolve", ResolveMarket(option_id=winner, by=actor.id))
    return market_out(market)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


@router.post("/{market_id}/dispute", status_code=202)
async def dispute(
    market_id: uuid.UUID,
    body: ReasonIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> MarketOut:
    """Hold the completed distribution (it stands until upheld or rolled back)."""
    market = await markets.get(session, market_id)
    markets.check_disputable(market)
    dispute = DisputeMarket(reason=body.reason.strip(), by=actor.id)
    await signal(request, resolution_workflow(market, settings), "dispute", dispute)
    return market_out(market)


@router.post("/{market_id}/uphold", status_code=202)
async def uphold(
    market_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> MarketOut:
    """Reject the dispute: the distribution stands."""
    market = await markets.get(session, market_id)
    markets.check_upholdable(market)
    await signal(
        request, resolution_workflow(market, settings), "uphold", MarketSignal(by=actor.id)
    )
    return market_out(market)


@router.post("/{market_id}/rollback", status_code=202)
async def rollback(
    market_id: uuid.UUID,
    body: ReasonIn,
    request: Request,
    session: Session,
    actor: PlatformAdmin,
    settings: AppSettings,
) -> MarketOut:
    """Reverse the distribution with compensating ledger entries; the market may then be
    resolved again."""
    market = await markets.get(session, market_id)
    markets.check_rollbackable(market)
    rollback = RollbackMarket(reason=body.reason.strip(), by=actor.id)
    await signal(request, resolution_workflow(market, settings), "rollback", rollback)
    return market_out(market)

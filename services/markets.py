"""Prediction markets: token grants, markets and commitments, and each resolution's
distribution, dispute and rollback.

Tokens are ledger money in the currency ``TOKEN``: a grant moves them from
``token-issuance`` to the user's ``tokens:{user}``, a commitment from there to the market's
``market:{id}:pool``, and a distribution from the pool to the winners, the creator and
``market-fees`` in one transaction keyed ``market-distribution-{resolution id}``; a rollback
posts its reversal. Status changes are compare-and-set on locked rows (always the market,
then its resolution), audited, and announced in the outbox. A market's resolution that is
live (distributing, completed or disputed) is unique in the database, so a market is never
paid out twice.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.ledger import AccountType, PostingLine, transfer
from domain.markets import (
    TOKEN,
    CommitmentStatus,
    MarketKind,
    MarketStatus,
    NoWinners,
    OptionRef,
    Position,
    ResolutionStatus,
    Stake,
    check_fees,
    check_market_move,
    check_option_labels,
    check_resolution_move,
    distribute,
    match_option,
    per_user,
)
from domain.money import Money
from models.audit import AuditEvent
from models.ledger import LedgerAccount
from models.markets import (
    Market,
    MarketCommitment,
    MarketOption,
    MarketPayout,
    MarketResolution,
)
from services import audit, ledger, outbox
from services.locking import locked
from services.pagination import newest_first

ISSUANCE_ACCOUNT = "token-issuance"
HOUSE_ACCOUNT = "market-fees"
LIVE = (ResolutionStatus.DISTRIBUTING, ResolutionStatus.COMPLETED, ResolutionStatus.DISPUTED)


def token_account(user_id: str) -> str:
    return f"tokens:{user_id}"


def pool_account(market_id: uuid.UUID) -> str:
    return f"market:{market_id}:pool"


def market_view(market: Market) -> dict[str, Any]:
    return {
        "status": market.status,
        "winning_option_id": str(market.winning_option_id) if market.winning_option_id else None,
    }


def resolution_view(resolution: MarketResolution) -> dict[str, Any]:
    return {
        "market_id": str(resolution.market_id),
        "status": resolution.status,
        "attempt": resolution.attempt,
        "winning_option_id": str(resolution.winning_option_id),
        "outcome": resolution.outcome,
        "pool": resolution.pool,
        "house_fee": resolution.house_fee,
        "creator_fee": resolution.creator_fee,
        "paid_out": resolution.paid_out,
    }


async def _market_changed(
    session: AsyncSession,
    market: Market,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="market",
        entity_id=market.id,
        action=action,
        actor=actor,
        before=before,
        after=market_view(market),
        announce=True,
        metadata=metadata,
    )


async def _resolution_changed(
    session: AsyncSession,
    resolution: MarketResolution,
    action: str,
    *,
    actor: Actor,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    await outbox.record_change(
        session,
        entity_type="market_resolution",
        entity_id=resolution.id,
        action=action,
        actor=actor,
        before=before,
        after=resolution_view(resolution),
        announce=True,
        metadata=metadata,
    )


async def _token_account(session: AsyncSession, user_id: str, actor: Actor) -> LedgerAccount:
    return await ledger.ensure_account(
        session,
        code=token_account(user_id),
        name=f"tokens of {user_id}",
        type=AccountType.LIABILITY,
        actor=actor,
    )


async def token_balance(session: AsyncSession, user_id: str) -> int:
    """The user's spendable tokens (0 for a user never granted any)."""
    try:
        return (await ledger.balances(session, token_account(user_id))).get(TOKEN, 0)
    except NotFound:
        return 0


@dataclass(frozen=True)
class Grant:
    user_id: str
    amount: int
    balance: int
    ledger_transaction_id: uuid.UUID


async def grant_tokens(
    session: AsyncSession, *, user_id: str, amount: int, reason: str, actor: Actor
) -> Grant:
    """Credit ``amount`` new tokens to the user, issued by the platform."""
    if amount <= 0:
        raise ValidationError("a grant is a positive number of tokens", param="amount")
    await ledger.ensure_account(
        session,
        code=ISSUANCE_ACCOUNT,
        name="tokens issued by the platform",
        type=AccountType.EQUITY,
        actor=actor,
    )
    await _token_account(session, user_id, actor)
    txn = await ledger.post_transaction(
        session,
        postings=transfer(ISSUANCE_ACCOUNT, token_account(user_id), Money(amount, TOKEN)),
        actor=actor,
        description=f"token grant to {user_id}: {reason}",
    )
    balance = await token_balance(session, user_id)
    await outbox.record_change(
        session,
        entity_type="token_grant",
        entity_id=txn.id,
        action="granted",
        actor=actor,
        before=None,
        after={"user_id": user_id, "amount": amount, "balance": balance},
        announce=True,
        metadata={"reason": reason},
    )
    return Grant(user_id, amount, balance, txn.id)


async def create_market(
    session: AsyncSession,
    *,
    question: str,
    kind: MarketKind,
    options: Sequence[str],
    creator_id: str,
    house_fee_bps: int,
    creator_fee_bps: int,
    no_winners: NoWinners,
    actor: Actor,
    metadata: dict[str, Any] | None = None,
) -> Market:
    """An OPEN market with its options (a binary one: yes, then no) and its pool account."""
    if not question.strip():
        raise ValidationError("a market asks a question", param="question")
    check_fees(house_fee_bps, creator_fee_bps)
    labels = check_option_labels(kind, options)
    market = Market(
        id=uuid.uuid4(),
        question=question.strip(),
        kind=kind.value,
        creator_id=creator_id,
        house_fee_bps=house_fee_bps,
        creator_fee_bps=creator_fee_bps,
        no_winners=no_winners.value,
        status=MarketStatus.OPEN.value,
        metadata_=metadata or {},
    )
    session.add(market)
    await session.flush()
    positions = (Position.YES, Position.NO) if kind is MarketKind.BINARY else (None,) * len(labels)
    session.add_all(
        MarketOption(
            market_id=market.id,
            seq=seq,
            label=label,
            position=position.value if position else None,
        )
        for seq, (label, position) in enumerate(zip(labels, positions, strict=True))
    )
    await ledger.ensure_account(
        session,
        code=pool_account(market.id),
        name=f"pool of market {market.id}",
        type=AccountType.LIABILITY,
        actor=actor,
    )
    await _market_changed(
        session,
        market,
        "created",
        actor=actor,
        before=None,
        metadata={"kind": kind.value, "options": labels},
    )
    return market


async def get(session: AsyncSession, market_id: uuid.UUID, *, for_update: bool = False) -> Market:
    query = select(Market).where(Market.id == market_id)
    market: Market | None = await session.scalar(locked(query) if for_update else query)
    if market is None:
        raise NotFound(f"no market {market_id}", param="id")
    return market


async def options_of(session: AsyncSession, market_id: uuid.UUID) -> list[MarketOption]:
    query = select(MarketOption).where(MarketOption.market_id == market_id)
    return list(await session.scalars(query.order_by(MarketOption.seq)))


async def option_totals(session: AsyncSession, market_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Tokens committed to each option (those with none are absent)."""
    rows = await session.execute(
        select(MarketCommitment.option_id, func.sum(MarketCommitment.amount))
        .where(MarketCommitment.market_id == market_id)
        .group_by(MarketCommitment.option_id)
    )
    return {option_id: int(total) for option_id, total in rows}


def _refs(options: Sequence[MarketOption]) -> list[OptionRef]:
    return [
        OptionRef(option.id, Position(option.position) if option.position else None)
        for option in options
    ]


async def list_markets(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    status: str | None = None,
) -> Sequence[Market]:
    """Newest first, ``limit + 1`` rows so callers can tell ``has_more``."""
    after = await get(session, starting_after) if starting_after is not None else None
    query = newest_first(select(Market), Market, after)
    if status:
        query = query.where(Market.status == status)
    return list(await session.scalars(query.limit(limit + 1)))


def commitment_view(commitment: MarketCommitment) -> dict[str, Any]:
    return {
        "market_id": str(commitment.market_id),
        "option_id": str(commitment.option_id),
        "user_id": commitment.user_id,
        "amount": commitment.amount,
        "matched_by": commitment.matched_by,
        "status": commitment.status,
    }


async def commit(
    session: AsyncSession,
    market_id: uuid.UUID,
    *,
    user_id: str,
    amount: int,
    option_id: uuid.UUID | None,
    position: Position | None,
    actor: Actor,
) -> MarketCommitment:
    """Move ``amount`` of the user's tokens into the market's pool on one option.

    The market is locked FOR SHARE (commitments run side by side; a resolution, FOR UPDATE,
    waits for them), then the user's token account FOR UPDATE so two commitments of one user
    cannot both spend the same balance.
    """
    if amount <= 0:
        raise ValidationError("a commitment is a positive number of tokens", param="amount")
    market = await session.scalar(
        select(Market).where(Market.id == market_id).with_for_update(read=True)
    )
    if market is None:
        raise NotFound(f"no market {market_id}", param="id")
    if market.status != MarketStatus.OPEN:
        raise Conflict(
            f"the market is {market.status}: it takes no more commitments",
            code="market_closed",
            status=market.status,
        )
    option, matched_by = match_option(
        MarketKind(market.kind),
        _refs(await options_of(session, market_id)),
        option_id=option_id,
        position=position,
    )
    account = await _token_account(session, user_id, actor)
    await session.execute(
        select(LedgerAccount.id).where(LedgerAccount.id == account.id).with_for_update()
    )
    balance = await token_balance(session, user_id)
    if balance < amount:
        raise Conflict(
            f"{user_id} has {balance} tokens, fewer than {amount}",
            code="insufficient_tokens",
            param="amount",
        )
    # The id first, so the ledger transaction is keyed by the commitment it funds.
    commitment_id = int(
        await session.scalar(
            text("SELECT nextval(pg_get_serial_sequence('market_commitments', 'id'))")
        )
    )
    txn = await ledger.post_transaction(
        session,
        postings=transfer(token_account(user_id), pool_account(market_id), Money(amount, TOKEN)),
        actor=actor,
        description=f"commitment to market {market_id}",
        external_ref=f"market-commitment-{commitment_id}",
    )
    commitment = MarketCommitment(
        id=commitment_id,
        market_id=market_id,
        option_id=option.id,
        user_id=user_id,
        amount=amount,
        matched_by=matched_by.value,
        status=CommitmentStatus.OPEN.value,
        ledger_transaction_id=txn.id,
    )
    session.add(commitment)
    await session.flush()
    matched = (
        {"option_id": str(option_id)} if option_id is not None else {"position": str(position)}
    )
    after = commitment_view(commitment)
    await audit.record(
        session,
        action="market_commitment.created",
        entity_type="market_commitment",
        entity_id=str(commitment.id),
        actor=actor,
        after=after,
        metadata={"matched_by": matched_by.value, "requested": matched},
    )
    await outbox.emit(
        session,
        "market_commitment.created",
        entity_type="market_commitment",
        entity_id=str(commitment.id),
        payload={"id": commitment.id, **after},
    )
    return commitment


async def get_commitment(
    session: AsyncSession, market_id: uuid.UUID, commitment_id: int
) -> MarketCommitment:
    commitment = await session.get(MarketCommitment, commitment_id)
    if commitment is None or commitment.market_id != market_id:
        raise NotFound(f"no commitment {commitment_id} in market {market_id}", param="id")
    return commitment


async def list_commitments(
    session: AsyncSession,
    market_id: uuid.UUID,
    *,
    limit: int,
    starting_after: int | None = None,
    user_id: str | None = None,
) -> Sequence[MarketCommitment]:
    """Oldest first (the order they were made in)."""
    query = select(MarketCommitment).where(MarketCommitment.market_id == market_id)
    if starting_after is not None:
        query = query.where(MarketCommitment.id > starting_after)
    if user_id is not None:
        query = query.where(MarketCommitment.user_id == user_id)
    return list(await session.scalars(query.order_by(MarketCommitment.id).limit(limit + 1)))


async def commitment_trail(session: AsyncSession, commitment_id: int) -> Sequence[AuditEvent]:
    """Every audited change of a commitment, oldest first."""
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.entity_type == "market_commitment",
            AuditEvent.entity_id == str(commitment_id),
        )
        .order_by(AuditEvent.id)
    )
    return list(await session.scalars(query))


# Resolution


def check_resolvable(market: Market) -> None:
    if MarketStatus(market.status) not in (MarketStatus.OPEN, MarketStatus.ROLLED_BACK):
        raise Conflict(
            f"the market is {market.status}: it cannot be resolved now",
            code="market_not_resolvable",
            status=market.status,
        )


async def winning_option(
    session: AsyncSession,
    market: Market,
    *,
    option_id: uuid.UUID | None,
    position: Position | None,
) -> uuid.UUID:
    option, _ = match_option(
        MarketKind(market.kind),
        _refs(await options_of(session, market.id)),
        option_id=option_id,
        position=position,
    )
    return option.id


async def get_resolution(
    session: AsyncSession, resolution_id: uuid.UUID, *, for_update: bool = False
) -> MarketResolution:
    query = select(MarketResolution).where(MarketResolution.id == resolution_id)
    found: MarketResolution | None = await session.scalar(locked(query) if for_update else query)
    if found is None:
        raise NotFound(f"no market resolution {resolution_id}", param="resolution_id")
    return found


async def latest_resolution(session: AsyncSession, market_id: uuid.UUID) -> MarketResolution | None:
    query = (
        select(MarketResolution)
        .where(MarketResolution.market_id == market_id)
        .order_by(MarketResolution.attempt.desc())
        .limit(1)
    )
    latest: MarketResolution | None = await session.scalar(query)
    return latest


async def list_resolutions(
    session: AsyncSession, market_id: uuid.UUID
) -> Sequence[MarketResolution]:
    query = select(MarketResolution).where(MarketResolution.market_id == market_id)
    return list(await session.scalars(query.order_by(MarketResolution.attempt)))


async def start_resolution(
    session: AsyncSession,
    market_id: uuid.UUID,
    *,
    option_id: uuid.UUID,
    key: str,
    actor: Actor,
) -> MarketResolution:
    """Reserve the market for a resolution (RESOLVING) and record it DISTRIBUTING; once per
    ``key``. A market already resolving or resolved is a conflict: it is paid once."""
    found = await session.scalar(select(MarketResolution).where(MarketResolution.key == key))
    if found is not None:
        if found.market_id != market_id:
            raise Conflict(f"resolution key {key} belongs to another market", param="key")
        return found
    market = await get(session, market_id, for_update=True)
    check_resolvable(market)
    winner = await winning_option(session, market, option_id=option_id, position=None)
    attempts = await session.scalar(
        select(func.count()).where(MarketResolution.market_id == market_id)
    )
    resolution = MarketResolution(
        id=uuid.uuid4(),
        market_id=market_id,
        attempt=int(attempts or 0) + 1,
        key=key,
        winning_option_id=winner,
        status=ResolutionStatus.DISTRIBUTING.value,
        pool=0,
        house_fee=0,
        creator_fee=0,
        paid_out=0,
        winning_commitments=0,
        resolved_by=actor.id,
    )
    session.add(resolution)
    before = market_view(market)
    check_market_move(MarketStatus(market.status), MarketStatus.RESOLVING)
    market.status = MarketStatus.RESOLVING.value
    market.winning_option_id = winner
    await session.flush()
    await _resolution_changed(session, resolution, "started", actor=actor, before=None)
    await _market_changed(
        session, market, "resolving", actor=actor, before=before, metadata={"key": key}
    )
    return resolution


async def _locked(
    session: AsyncSession, resolution_id: uuid.UUID
) -> tuple[Market, MarketResolution]:
    """The resolution's market, then the resolution, both locked (the fixed order)."""
    resolution = await get_resolution(session, resolution_id)
    market = await get(session, resolution.market_id, for_update=True)
    return market, await get_resolution(session, resolution_id, for_update=True)


# Per-commitment audit rows, written by the database from the rows themselves: a market may
# hold a hundred thousand commitments, and one statement is far faster than as many inserts.
_COMMITMENT_STATE = """jsonb_build_object('status', c.status, 'payout', c.payout,
    'profit', c.profit, 'share', c.share, 'option_id', c.option_id,
    'matched_by', c.matched_by, 'amount', c.amount)"""
_AUDIT_COMMITMENTS = """
INSERT INTO audit_events (action, entity_type, entity_id, actor, actor_role, before, after,
                          metadata)
SELECT :action, 'market_commitment', c.id::text, :actor, :role, {before}, {after},
       jsonb_build_object('resolution_id', CAST(:resolution_id AS text))
FROM market_commitments c
WHERE c.resolution_id = :resolution_id
"""
_AUDIT_SETTLED = _AUDIT_COMMITMENTS.format(
    before="jsonb_build_object('status', 'open')", after=_COMMITMENT_STATE
)
_AUDIT_ROLLED_BACK = _AUDIT_COMMITMENTS.format(
    before=_COMMITMENT_STATE, after="jsonb_build_object('status', 'open')"
)

_SETTLE_COMMITMENTS = """
UPDATE market_commitments AS c
SET status = v.status, payout = v.payout, profit = v.profit, share = v.share,
    resolution_id = :resolution_id
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:payouts AS bigint[]),
            CAST(:profits AS bigint[]), CAST(:shares AS numeric[]))
     AS v(id, status, payout, profit, share)
WHERE c.id = v.id AND c.status = 'open'
"""


async def distribute_resolution(
    session: AsyncSession, resolution_id: uuid.UUID, *, actor: Actor
) -> MarketResolution:
    """Share the pool in one transaction: one ledger transaction, every commitment marked
    won, lost or refunded, a payout row per user, the resolution COMPLETED and the market
    RESOLVED. A resolution no longer DISTRIBUTING is returned as it is, so a retry after a
    commit whose answer was lost pays nothing more."""
    market, resolution = await _locked(session, resolution_id)
    if resolution.status != ResolutionStatus.DISTRIBUTING:
        return resolution
    rows = await session.execute(
        select(
            MarketCommitment.id,
            MarketCommitment.user_id,
            MarketCommitment.option_id,
            MarketCommitment.amount,
        )
        .where(
            MarketCommitment.market_id == market.id,
            MarketCommitment.status == CommitmentStatus.OPEN.value,
        )
        .order_by(MarketCommitment.id)
    )
    stakes = [Stake(row.id, row.user_id, row.option_id, row.amount) for row in rows]
    result = distribute(
        stakes,
        resolution.winning_option_id,
        house_fee_bps=market.house_fee_bps,
        creator_fee_bps=market.creator_fee_bps,
        no_winners=NoWinners(market.no_winners),
    )
    totals = per_user(result.allocations)
    postings = [
        PostingLine(token_account(total.user_id), Money(total.payout, TOKEN))
        for total in totals
        if total.payout
    ]
    if result.house_fee:
        await ledger.ensure_account(
            session,
            code=HOUSE_ACCOUNT,
            name="house fees of prediction markets",
            type=AccountType.REVENUE,
            actor=actor,
        )
        postings.append(PostingLine(HOUSE_ACCOUNT, Money(result.house_fee, TOKEN)))
    if result.creator_fee:
        await _token_account(session, market.creator_id, actor)
        postings.append(
            PostingLine(token_account(market.creator_id), Money(result.creator_fee, TOKEN))
        )
    if postings:
        postings.append(PostingLine(pool_account(market.id), Money(-result.pool, TOKEN)))
        txn = await ledger.post_transaction(
            session,
            postings=postings,
            actor=actor,
            description=f"market {market.id} distribution {resolution.attempt}",
            external_ref=f"market-distribution-{resolution.id}",
            metadata={"market_id": str(market.id), "resolution_id": str(resolution.id)},
        )
        resolution.ledger_transaction_id = txn.id
    allocations = result.allocations
    await session.execute(
        text(_SETTLE_COMMITMENTS),
        {
            "resolution_id": resolution.id,
            "ids": [a.commitment_id for a in allocations],
            "statuses": [a.status.value for a in allocations],
            "payouts": [a.payout for a in allocations],
            "profits": [a.profit for a in allocations],
            "shares": [a.share for a in allocations],
        },
    )
    if totals:
        await session.execute(
            insert(MarketPayout),
            [
                {
                    "resolution_id": resolution.id,
                    "market_id": market.id,
                    "user_id": total.user_id,
                    "staked": total.staked,
                    "amount": total.payout,
                    "profit": total.profit,
                    "status": "completed",
                }
                for total in totals
            ],
        )
    await _audit_commitments(
        session, resolution, _AUDIT_SETTLED, "market_commitment.settled", actor
    )
    before = resolution_view(resolution)
    check_resolution_move(ResolutionStatus(resolution.status), ResolutionStatus.COMPLETED)
    resolution.status = ResolutionStatus.COMPLETED.value
    resolution.outcome = result.outcome.value
    resolution.pool = result.pool
    resolution.house_fee = result.house_fee
    resolution.creator_fee = result.creator_fee
    resolution.paid_out = result.paid_out
    resolution.winning_commitments = result.winners
    resolution.completed_at = datetime.now(UTC)
    market_before = market_view(market)
    check_market_move(MarketStatus(market.status), MarketStatus.RESOLVED)
    market.status = MarketStatus.RESOLVED.value
    market.resolved_at = resolution.completed_at
    await _resolution_changed(session, resolution, "completed", actor=actor, before=before)
    await _market_changed(session, market, "resolved", actor=actor, before=market_before)
    return resolution


async def _audit_commitments(
    session: AsyncSession, resolution: MarketResolution, statement: str, action: str, actor: Actor
) -> None:
    """One audit event per commitment the resolution settled (each commitment's trail)."""
    await session.execute(
        text(statement),
        {
            "action": action,
            "actor": actor.id,
            "role": actor.role.value,
            "resolution_id": resolution.id,
        },
    )


async def abandon_resolution(
    session: AsyncSession, resolution_id: uuid.UUID, *, error: str, actor: Actor
) -> MarketResolution:
    """Compensate a started resolution whose distribution failed for good: the resolution is
    FAILED with the error and the market goes back to what it was (open, or rolled back).
    A distribution that did complete is kept as it is."""
    market, resolution = await _locked(session, resolution_id)
    if resolution.status != ResolutionStatus.DISTRIBUTING:
        return resolution
    before = resolution_view(resolution)
    resolution.status = ResolutionStatus.FAILED.value
    resolution.error = error
    earlier = await session.scalar(
        select(func.count()).where(
            MarketResolution.market_id == market.id,
            MarketResolution.status == ResolutionStatus.ROLLED_BACK.value,
        )
    )
    target = MarketStatus.ROLLED_BACK if earlier else MarketStatus.OPEN
    market_before = market_view(market)
    check_market_move(MarketStatus(market.status), target)
    market.status = target.value
    market.winning_option_id = None
    await _resolution_changed(
        session, resolution, "failed", actor=actor, before=before, metadata={"error": error}
    )
    await _market_changed(
        session, market, "resolution_abandoned", actor=actor, before=market_before
    )
    return resolution


def check_disputable(market: Market) -> None:
    if market.status != MarketStatus.RESOLVED:
        raise Conflict(
            f"the market is {market.status}: only a resolved market can be disputed",
            code="market_not_disputable",
            status=market.status,
        )


def check_upholdable(market: Market) -> None:
    if market.status != MarketStatus.DISPUTED:
        raise Conflict(
            f"the market is {market.status}: only a disputed market can be upheld",
            code="market_not_disputed",
            status=market.status,
        )


def check_rollbackable(market: Market) -> None:
    if market.status not in (MarketStatus.RESOLVED, MarketStatus.DISPUTED):
        raise Conflict(
            f"the market is {market.status}: only a resolved or disputed market rolls back",
            code="market_not_rollbackable",
            status=market.status,
        )


async def _move(
    session: AsyncSession,
    resolution_id: uuid.UUID,
    *,
    target: ResolutionStatus,
    market_target: MarketStatus,
    action: str,
    actor: Actor,
    reason: str | None = None,
) -> MarketResolution:
    """A status change of a resolution and its market; already there is a repeat."""
    market, resolution = await _locked(session, resolution_id)
    if resolution.status == target:
        return resolution
    check_resolution_move(ResolutionStatus(resolution.status), target)
    before, market_before = resolution_view(resolution), market_view(market)
    resolution.status = target.value
    if target is ResolutionStatus.DISPUTED:
        resolution.dispute_reason = reason
    check_market_move(MarketStatus(market.status), market_target)
    market.status = market_target.value
    metadata = {"reason": reason} if reason else None
    await _resolution_changed(
        session, resolution, action, actor=actor, before=before, metadata=metadata
    )
    await _market_changed(
        session, market, action, actor=actor, before=market_before, metadata=metadata
    )
    return resolution


async def dispute(
    session: AsyncSession, resolution_id: uuid.UUID, *, reason: str, actor: Actor
) -> MarketResolution:
    """Hold a completed distribution: it stands until upheld or rolled back."""
    if not reason.strip():
        raise ValidationError("a dispute needs a reason", param="reason")
    return await _move(
        session,
        resolution_id,
        target=ResolutionStatus.DISPUTED,
        market_target=MarketStatus.DISPUTED,
        action="disputed",
        actor=actor,
        reason=reason.strip(),
    )


async def uphold(
    session: AsyncSession, resolution_id: uuid.UUID, *, actor: Actor
) -> MarketResolution:
    """The dispute is rejected: the distribution stands (COMPLETED again)."""
    return await _move(
        session,
        resolution_id,
        target=ResolutionStatus.COMPLETED,
        market_target=MarketStatus.RESOLVED,
        action="upheld",
        actor=actor,
    )


async def settle(
    session: AsyncSession, resolution_id: uuid.UUID, *, actor: Actor
) -> MarketResolution:
    """The dispute window passed: the market is SETTLED and its distribution final."""
    market, resolution = await _locked(session, resolution_id)
    if market.status == MarketStatus.SETTLED:
        return resolution
    if resolution.status != ResolutionStatus.COMPLETED:
        raise Conflict(
            f"a {resolution.status} distribution cannot be settled",
            code="distribution_state_conflict",
        )
    before = market_view(market)
    check_market_move(MarketStatus(market.status), MarketStatus.SETTLED)
    market.status = MarketStatus.SETTLED.value
    market.settled_at = datetime.now(UTC)
    await _market_changed(session, market, "settled", actor=actor, before=before)
    return resolution


async def rollback(
    session: AsyncSession, resolution_id: uuid.UUID, *, reason: str, actor: Actor
) -> MarketResolution:
    """Reverse a completed or disputed distribution in one transaction: the ledger's
    compensating entries (the pool is whole again, even if a winner's balance goes below
    zero), the commitments open again, the payouts ROLLED_BACK, the resolution ROLLED_BACK
    and the market ROLLED_BACK, ready for a new resolution. Once: a repeat is answered
    with the rolled-back resolution."""
    if not reason.strip():
        raise ValidationError("a rollback needs a reason", param="reason")
    market, resolution = await _locked(session, resolution_id)
    if resolution.status == ResolutionStatus.ROLLED_BACK:
        return resolution
    check_resolution_move(ResolutionStatus(resolution.status), ResolutionStatus.ROLLED_BACK)
    if resolution.ledger_transaction_id is not None:
        reversal = await ledger.reverse_transaction(
            session, txn_id=resolution.ledger_transaction_id, actor=actor, reason=reason
        )
        resolution.reversal_transaction_id = reversal.id
    await _audit_commitments(
        session, resolution, _AUDIT_ROLLED_BACK, "market_commitment.rolled_back", actor
    )
    await session.execute(
        update(MarketCommitment)
        .where(MarketCommitment.resolution_id == resolution.id)
        .values(
            status=CommitmentStatus.OPEN.value,
            payout=None,
            profit=None,
            share=None,
            resolution_id=None,
        )
    )
    await session.execute(
        update(MarketPayout)
        .where(MarketPayout.resolution_id == resolution.id)
        .values(status="rolled_back")
    )
    before, market_before = resolution_view(resolution), market_view(market)
    resolution.status = ResolutionStatus.ROLLED_BACK.value
    resolution.rollback_reason = reason.strip()
    resolution.rolled_back_at = datetime.now(UTC)
    check_market_move(MarketStatus(market.status), MarketStatus.ROLLED_BACK)
    market.status = MarketStatus.ROLLED_BACK.value
    market.winning_option_id = None
    market.resolved_at = None
    metadata = {"reason": reason.strip()}
    await _resolution_changed(
        session, resolution, "rolled_back", actor=actor, before=before, metadata=metadata
    )
    await _market_changed(
        session, market, "rolled_back", actor=actor, before=market_before, metadata=metadata
    )
    return resolution


async def list_payouts(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: int | None = None,
    resolution_id: uuid.UUID | None = None,
    user_id: str | None = None,
) -> Sequence[MarketPayout]:
    """A distribution's payouts (by user) or a user's payout history (newest first)."""
    query = select(MarketPayout)
    if resolution_id is not None:
        query = query.where(MarketPayout.resolution_id == resolution_id)
    if user_id is not None:
        query = query.where(MarketPayout.user_id == user_id)
    if starting_after is not None:
        query = query.where(MarketPayout.id < starting_after)
    return list(await session.scalars(query.order_by(MarketPayout.id.desc()).limit(limit + 1)))

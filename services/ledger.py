"""Ledger postings: accounts, balanced transactions, reversals and balances."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import Conflict, NotFound, ValidationError
from domain.ledger import AccountType, PostingLine, check_transaction
from domain.money import Money
from models.ledger import LedgerAccount, LedgerPosting, LedgerTransaction
from services import audit
from services.pagination import newest_first


def account_view(account: LedgerAccount) -> dict[str, Any]:
    return {"code": account.code, "name": account.name, "type": account.type}


async def create_account(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    type: AccountType,
    actor: Actor,
    metadata: dict[str, Any] | None = None,
) -> LedgerAccount:
    existing = await session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if existing is not None:
        raise Conflict(f"Account {code!r} already exists", code="account_exists", param="code")
    account = LedgerAccount(code=code, name=name, type=type.value, metadata_=metadata or {})
    session.add(account)
    await session.flush()
    await _audit_opened(session, account, actor)
    return account


async def _audit_opened(session: AsyncSession, account: LedgerAccount, actor: Actor) -> None:
    await audit.record(
        session,
        action="ledger.account.created",
        entity_type="ledger_account",
        entity_id=account.id,
        actor=actor,
        after=account_view(account),
    )


async def ensure_account(
    session: AsyncSession, *, code: str, name: str, type: AccountType, actor: Actor
) -> LedgerAccount:
    """The account with ``code``, created if missing; safe under concurrent callers."""
    inserted = await session.execute(
        insert(LedgerAccount)
        .values(id=uuid.uuid4(), code=code, name=name, type=type.value, metadata={})
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(LedgerAccount.id)
    )
    new_id = inserted.scalar()
    account = await get_account(session, code)
    if new_id is not None:
        await _audit_opened(session, account, actor)
    return account


async def get_account(session: AsyncSession, code: str) -> LedgerAccount:
    account = await session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if account is None:
        raise NotFound(f"No ledger account {code!r}", param="account")
    return account


async def _accounts_by_code(session: AsyncSession, codes: set[str]) -> dict[str, LedgerAccount]:
    rows = await session.scalars(select(LedgerAccount).where(LedgerAccount.code.in_(codes)))
    found = {account.code: account for account in rows}
    missing = sorted(codes - found.keys())
    if missing:
        raise ValidationError(
            f"Unknown ledger accounts: {', '.join(missing)}",
            code="unknown_account",
            param="postings",
        )
    return found


def transaction_view(txn: LedgerTransaction, codes: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "external_ref": txn.external_ref,
        "postings": [
            {"account": codes[p.account_id], "amount": p.amount, "currency": p.currency}
            for p in txn.postings
        ],
    }


async def post_transaction(
    session: AsyncSession,
    *,
    postings: Sequence[PostingLine],
    actor: Actor,
    description: str = "",
    external_ref: str | None = None,
    metadata: dict[str, Any] | None = None,
    reverses_id: uuid.UUID | None = None,
) -> LedgerTransaction:
    """Record a balanced transaction once per ``external_ref``.

    Posting again with the same ``external_ref`` and the same postings returns the first
    transaction (a retried activity); with other postings it is a conflict.
    """
    check_transaction(postings)
    accounts = await _accounts_by_code(session, {p.account_code for p in postings})
    if external_ref is not None:
        existing = await session.scalar(
            select(LedgerTransaction).where(LedgerTransaction.external_ref == external_ref)
        )
        if existing is not None:
            return await _same_or_conflict(session, existing, postings)
    txn = LedgerTransaction(
        external_ref=external_ref,
        description=description,
        metadata_=metadata or {},
        reverses_id=reverses_id,
    )
    try:
        async with session.begin_nested():
            session.add(txn)
            await session.flush()
    except IntegrityError:
        # A concurrent caller posted the same external_ref first.
        existing = await session.scalar(
            select(LedgerTransaction).where(LedgerTransaction.external_ref == external_ref)
        )
        if existing is None:
            raise
        return await _same_or_conflict(session, existing, postings)
    for seq, line in enumerate(postings):
        session.add(
            LedgerPosting(
                transaction_id=txn.id,
                seq=seq,
                account_id=accounts[line.account_code].id,
                amount=line.money.amount,
                currency=line.money.currency,
            )
        )
    await session.flush()
    await session.refresh(txn, ["postings"])
    codes = {account.id: code for code, account in accounts.items()}
    await audit.record(
        session,
        action="ledger.transaction.posted",
        entity_type="ledger_transaction",
        entity_id=txn.id,
        actor=actor,
        after=transaction_view(txn, codes),
        metadata={
            "description": description,
            **({"reverses": str(reverses_id)} if reverses_id else {}),
        },
    )
    return txn


async def _same_or_conflict(
    session: AsyncSession, existing: LedgerTransaction, postings: Sequence[PostingLine]
) -> LedgerTransaction:
    codes = await account_codes(session, {p.account_id for p in existing.postings})
    recorded = [(codes[p.account_id], p.amount, p.currency) for p in existing.postings]
    requested = [(p.account_code, p.money.amount, p.money.currency) for p in postings]
    if recorded != requested:
        raise Conflict(
            f"Transaction {existing.external_ref!r} was already posted with other postings",
            code="external_ref_reused",
            param="external_ref",
        )
    return existing


async def account_codes(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(LedgerAccount.id, LedgerAccount.code).where(LedgerAccount.id.in_(ids))
    )
    return {row.id: row.code for row in rows}


async def get_transaction(session: AsyncSession, txn_id: uuid.UUID) -> LedgerTransaction:
    txn = await session.get(LedgerTransaction, txn_id)
    if txn is None:
        raise NotFound(f"No ledger transaction {txn_id}", param="id")
    return txn


async def reverse_transaction(
    session: AsyncSession, *, txn_id: uuid.UUID, actor: Actor, reason: str
) -> LedgerTransaction:
    """Correct a transaction with a new one that negates it; entries are never edited."""
    original = await get_transaction(session, txn_id)
    if original.reverses_id is not None:
        raise Conflict("A reversal cannot itself be reversed", code="reversal_of_reversal")
    codes = await account_codes(session, {p.account_id for p in original.postings})
    lines = [
        PostingLine(codes[p.account_id], Money(-p.amount, p.currency)) for p in original.postings
    ]
    return await post_transaction(
        session,
        postings=lines,
        actor=actor,
        description=f"Reversal: {reason}",
        external_ref=f"reversal-{original.id}",
        reverses_id=original.id,
    )


async def balances(session: AsyncSession, code: str) -> dict[str, int]:
    """Balance per currency of one account: debits minus credits."""
    account = await get_account(session, code)
    rows = await session.execute(
        select(LedgerPosting.currency, func.sum(LedgerPosting.amount))
        .where(LedgerPosting.account_id == account.id)
        .group_by(LedgerPosting.currency)
        .order_by(LedgerPosting.currency)
    )
    return {currency: int(total) for currency, total in rows}


async def totals_by_currency(session: AsyncSession) -> dict[str, int]:
    """Sum of every posting per currency: zero in a healthy ledger."""
    rows = await session.execute(
        select(LedgerPosting.currency, func.sum(LedgerPosting.amount)).group_by(
            LedgerPosting.currency
        )
    )
    return {currency: int(total) for currency, total in rows}


async def list_accounts(
    session: AsyncSession, *, limit: int, starting_after: str | None = None
) -> Sequence[LedgerAccount]:
    query = select(LedgerAccount).order_by(LedgerAccount.code).limit(limit + 1)
    if starting_after is not None:
        query = query.where(LedgerAccount.code > starting_after)
    return (await session.scalars(query)).all()


async def list_transactions(
    session: AsyncSession,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    account_code: str | None = None,
) -> Sequence[LedgerTransaction]:
    """Newest first, paged by (created_at, id)."""
    after = await get_transaction(session, starting_after) if starting_after is not None else None
    query = newest_first(select(LedgerTransaction), LedgerTransaction, after).limit(limit + 1)
    if account_code is not None:
        account = await get_account(session, account_code)
        query = query.where(
            LedgerTransaction.id.in_(
                select(LedgerPosting.transaction_id).where(LedgerPosting.account_id == account.id)
            )
        )
    return (await session.scalars(query)).all()

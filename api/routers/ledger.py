"""Ledger: accounts, balanced transactions, reversals and balances."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Admin, PlatformAdmin, Session
from api.pagination import Page, PageQuery, paginate, uuid_cursor
from domain.ledger import AccountType, PostingLine
from domain.money import Money
from models.ledger import LedgerAccount, LedgerTransaction
from services import ledger

router = APIRouter(prefix="/ledger", tags=["ledger"])

Code = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-/]+$")]


class AccountIn(BaseModel):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    type: AccountType
    metadata: dict[str, Any] = Field(default_factory=dict)


class Account(BaseModel):
    id: uuid.UUID
    object: str = "ledger_account"
    code: str
    name: str
    type: AccountType
    metadata: dict[str, Any]
    created_at: datetime


class AccountWithBalances(Account):
    balances: dict[str, int]


class PostingIn(BaseModel):
    account: Code
    amount: int = Field(description="Minor units; positive debits the account, negative credits")
    currency: str = Field(min_length=3, max_length=8)


class TransactionIn(BaseModel):
    description: str = Field("", max_length=500)
    external_ref: str | None = Field(None, min_length=1, max_length=200)
    postings: list[PostingIn] = Field(min_length=2, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Posting(BaseModel):
    account: str
    amount: int
    currency: str


class Transaction(BaseModel):
    id: uuid.UUID
    object: str = "ledger_transaction"
    description: str
    external_ref: str | None
    reverses: uuid.UUID | None
    postings: list[Posting]
    metadata: dict[str, Any]
    created_at: datetime


class ReversalIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def account_out(account: LedgerAccount) -> Account:
    return Account(
        id=account.id,
        code=account.code,
        name=account.name,
        type=AccountType(account.type),
        metadata=account.metadata_,
        created_at=account.created_at,
    )


async def transactions_out(session: Session, txns: list[LedgerTransaction]) -> list[Transaction]:
    codes = await ledger.account_codes(
        session, {p.account_id for txn in txns for p in txn.postings}
    )
    return [
        Transaction(
            id=txn.id,
            description=txn.description,
            external_ref=txn.external_ref,
            reverses=txn.reverses_id,
            postings=[
                Posting(account=codes[p.account_id], amount=p.amount, currency=p.currency)
                for p in txn.postings
            ],
            metadata=txn.metadata_,
            created_at=txn.created_at,
        )
        for txn in txns
    ]


@router.post("/accounts", status_code=201)
async def create_account(body: AccountIn, session: Session, actor: Admin) -> Account:
    account = await ledger.create_account(
        session, code=body.code, name=body.name, type=body.type, actor=actor, metadata=body.metadata
    )
    return account_out(account)


@router.get("/accounts")
async def list_accounts(session: Session, _: Admin, params: PageQuery) -> Page[Account]:
    rows = await ledger.list_accounts(
        session, limit=params.limit, starting_after=params.starting_after
    )
    return paginate(rows, params.limit, account_out, lambda item: item.code)


@router.get("/accounts/{code}")
async def get_account(code: str, session: Session, _: Admin) -> AccountWithBalances:
    account = await ledger.get_account(session, code)
    return AccountWithBalances(
        **account_out(account).model_dump(), balances=await ledger.balances(session, code)
    )


@router.post("/transactions", status_code=201)
async def post_transaction(
    body: TransactionIn, session: Session, actor: PlatformAdmin
) -> Transaction:
    lines = [PostingLine(p.account, Money(p.amount, p.currency)) for p in body.postings]
    txn = await ledger.post_transaction(
        session,
        postings=lines,
        actor=actor,
        description=body.description,
        external_ref=body.external_ref,
        metadata=body.metadata,
    )
    return (await transactions_out(session, [txn]))[0]


@router.get("/transactions")
async def list_transactions(
    session: Session,
    _: Admin,
    params: PageQuery,
    account: Annotated[str | None, Query(description="Only transactions touching it")] = None,
) -> Page[Transaction]:
    rows = await ledger.list_transactions(
        session,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
        account_code=account,
    )
    views = await transactions_out(session, list(rows))
    by_id = {view.id: view for view in views}
    return paginate(rows, params.limit, lambda txn: by_id[txn.id], lambda item: item.id)


@router.get("/transactions/{txn_id}")
async def get_transaction(txn_id: uuid.UUID, session: Session, _: Admin) -> Transaction:
    return (await transactions_out(session, [await ledger.get_transaction(session, txn_id)]))[0]


@router.post("/transactions/{txn_id}/reverse", status_code=201)
async def reverse_transaction(
    txn_id: uuid.UUID, body: ReversalIn, session: Session, actor: PlatformAdmin
) -> Transaction:
    txn = await ledger.reverse_transaction(session, txn_id=txn_id, actor=actor, reason=body.reason)
    return (await transactions_out(session, [txn]))[0]


@router.get("/totals")
async def totals(session: Session, _: Admin) -> dict[str, int]:
    """Sum of all postings per currency; anything but zero means the ledger is broken."""
    return await ledger.totals_by_currency(session)

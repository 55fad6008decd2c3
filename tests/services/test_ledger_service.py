"""The ledger on a real PostgreSQL: conservation, refusal of unbalanced or edited entries."""

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import SYSTEM
from domain.errors import Conflict, ValidationError
from domain.ledger import AccountType, PostingLine, transfer
from domain.money import Money
from models.audit import AuditEvent
from models.ledger import LedgerPosting, LedgerTransaction
from services import ledger

CODES = ["cash", "escrow", "vendor:1", "vendor:2", "fees"]


async def open_accounts(session: AsyncSession) -> None:
    for code in CODES:
        await ledger.ensure_account(
            session, code=code, name=code, type=AccountType.ASSET, actor=SYSTEM
        )


MOVES = st.lists(
    st.tuples(
        st.sampled_from(CODES),
        st.sampled_from(CODES),
        st.integers(1, 10**12),
        st.sampled_from(["USD", "EUR", "JPY"]),
    ),
    min_size=1,
    max_size=15,
)


@hypothesis_settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=MOVES)
async def test_any_sequence_of_transfers_conserves_money_per_currency(
    session: AsyncSession, moves: list
) -> None:
    savepoint = await session.begin_nested()
    try:
        await open_accounts(session)
        expected: dict[tuple[str, str], int] = defaultdict(int)
        for source, destination, amount, currency in moves:
            await ledger.post_transaction(
                session,
                postings=transfer(source, destination, Money(amount, currency)),
                actor=SYSTEM,
            )
            expected[(destination, currency)] += amount
            expected[(source, currency)] -= amount
        # The deferred balance trigger runs now, as it would at commit.
        await session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        assert set((await ledger.totals_by_currency(session)).values()) <= {0}
        for code in CODES:
            balances = await ledger.balances(session, code)
            wanted = {c: v for (a, c), v in expected.items() if a == code and v != 0}
            assert {c: v for c, v in balances.items() if v != 0} == wanted
    finally:
        await savepoint.rollback()


async def test_unbalanced_transaction_is_refused_by_the_code(session: AsyncSession) -> None:
    await open_accounts(session)
    with pytest.raises(ValidationError):
        await ledger.post_transaction(
            session,
            postings=[
                PostingLine("cash", Money(100, "USD")),
                PostingLine("fees", Money(-90, "USD")),
            ],
            actor=SYSTEM,
        )
    assert await session.scalar(select(LedgerTransaction).limit(1)) is None


async def test_unbalanced_transaction_is_refused_by_the_database(session: AsyncSession) -> None:
    await open_accounts(session)
    cash = await ledger.get_account(session, "cash")
    txn = LedgerTransaction(description="bypassing the service", metadata_={})
    session.add(txn)
    await session.flush()
    session.add(
        LedgerPosting(transaction_id=txn.id, seq=0, account_id=cash.id, amount=500, currency="USD")
    )
    await session.flush()
    with pytest.raises(DBAPIError, match="unbalanced"):
        await session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))


async def test_entries_are_immutable_in_the_database(session: AsyncSession) -> None:
    await open_accounts(session)
    txn = await ledger.post_transaction(
        session, postings=transfer("cash", "fees", Money(300, "EUR")), actor=SYSTEM
    )
    savepoint = await session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        await session.execute(
            update(LedgerPosting).where(LedgerPosting.transaction_id == txn.id).values(amount=1)
        )
    await savepoint.rollback()
    savepoint = await session.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        await session.execute(text("DELETE FROM audit_events"))
    await savepoint.rollback()


async def test_reversal_is_a_new_entry_that_negates_the_original(session: AsyncSession) -> None:
    await open_accounts(session)
    txn = await ledger.post_transaction(
        session, postings=transfer("cash", "vendor:1", Money(2500, "USD")), actor=SYSTEM
    )
    reversal = await ledger.reverse_transaction(
        session, txn_id=txn.id, actor=SYSTEM, reason="paid to the wrong vendor"
    )
    assert reversal.reverses_id == txn.id and reversal.id != txn.id
    assert await ledger.balances(session, "vendor:1") == {"USD": 0}
    again = await ledger.reverse_transaction(session, txn_id=txn.id, actor=SYSTEM, reason="again")
    assert again.id == reversal.id  # keyed by the original: reversed once only
    with pytest.raises(Conflict):
        await ledger.reverse_transaction(session, txn_id=reversal.id, actor=SYSTEM, reason="x")


async def test_external_ref_posts_once_and_refuses_other_postings(session: AsyncSession) -> None:
    await open_accounts(session)
    first = await ledger.post_transaction(
        session,
        postings=transfer("escrow", "vendor:2", Money(700, "USD")),
        actor=SYSTEM,
        external_ref="payout-42",
    )
    retry = await ledger.post_transaction(
        session,
        postings=transfer("escrow", "vendor:2", Money(700, "USD")),
        actor=SYSTEM,
        external_ref="payout-42",
    )
    assert retry.id == first.id
    assert await ledger.balances(session, "vendor:2") == {"USD": 700}
    with pytest.raises(Conflict):
        await ledger.post_transaction(
            session,
            postings=transfer("escrow", "vendor:2", Money(701, "USD")),
            actor=SYSTEM,
            external_ref="payout-42",
        )


async def test_every_posting_is_audited_with_actor_and_after_state(session: AsyncSession) -> None:
    await open_accounts(session)
    txn = await ledger.post_transaction(
        session, postings=transfer("cash", "fees", Money(9, "JPY")), actor=SYSTEM
    )
    event = await session.scalar(
        select(AuditEvent).where(
            AuditEvent.entity_type == "ledger_transaction", AuditEvent.entity_id == str(txn.id)
        )
    )
    assert event is not None
    assert (event.action, event.actor, event.actor_role) == (
        "ledger.transaction.posted",
        "system",
        "system",
    )
    assert event.after == {
        "external_ref": None,
        "postings": [
            {"account": "fees", "amount": 9, "currency": "JPY"},
            {"account": "cash", "amount": -9, "currency": "JPY"},
        ],
    }

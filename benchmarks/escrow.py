"""Escrow release figures, measured in one run on a fresh embedded stack (`tollgate dev`):

10,000 holds (``TOLLGATE_BENCH_HOLDS``) all due at the same instant, each released by its own
workflow's durable timer on the stack's one worker:

- how many were released, and how many twice (escrow movements and ledger transactions of
  kind release per hold: goal 0);
- release lateness p50/p99/max: the release's database time (``escrow_movements.created_at``)
  minus ``release_at`` (goal p99 <= 5 s; a daily sweep job releases up to 24 h late).

The holds are made as the API makes them (``services.escrow.create_hold``, then the
``EscrowHold`` workflow started), in batches straight on the stack's database, so the set is
in place well before the instant.
"""

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from benchmarks.figures import Figure, emit
from devstack.ephemeral import ephemeral_stack
from domain.actors import Actor, Role
from domain.escrow import HoldReason
from domain.ledger import AccountType
from domain.money import Money
from integrations.temporal import connect
from models.engine import make_engine, make_sessionmaker
from models.escrow import EscrowHold, EscrowMovement
from models.ledger import LedgerTransaction
from services import escrow, ledger
from settings import Settings
from workflows.escrow import EscrowHoldWorkflow
from workflows.types import EscrowHoldInput

HOLDS = int(os.environ.get("TOLLGATE_BENCH_HOLDS", "10000"))
BATCH = 50  # holds per database transaction
DB_LANES = 4  # batches written at once
STARTS = 32  # workflow starts in flight at once
PARTIES = 100  # payers and payees the holds are spread over
PROBE = 200  # holds made first, due far later, to measure the creation rate
MARGIN = timedelta(seconds=30)
GOAL_P99_SECONDS = 5.0
ACTOR = Actor("bench-escrow", Role.PLATFORM_ADMIN)


class Creator:
    """Makes holds as the API does: the row and its funding in one transaction, then the
    workflow, started once committed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        temporal: Client,
        settings: Settings,
        run: str,
    ) -> None:
        self.sessions = sessions
        self.temporal = temporal
        self.settings = settings
        self.run = run
        self.starts = asyncio.Semaphore(STARTS)

    def payer(self, index: int) -> str:
        return f"bench-{self.run}-payer-{index % PARTIES}"

    def payee(self, index: int, group: str) -> str:
        return f"bench-{self.run}-{group}-payee-{index % PARTIES}"

    async def open_accounts(self, group: str) -> None:
        """The ledger accounts first, in one transaction: batches opening the same accounts
        at once would wait on each other, and could deadlock."""
        codes = [escrow.ESCROW_ACCOUNT]
        for index in range(PARTIES):
            codes += [escrow.payer_account(self.payer(index))]
            codes += [escrow.payee_account(self.payee(index, group))]
        async with self.sessions() as session, session.begin():
            for code in codes:
                await ledger.ensure_account(
                    session, code=code, name=code, type=AccountType.LIABILITY, actor=ACTOR
                )

    async def create(self, count: int, release_at: datetime, group: str) -> float:
        """Creates ``count`` holds due at ``release_at``; the seconds it took."""
        started = time.perf_counter()
        await self.open_accounts(group)
        batches = iter(range(0, count, BATCH))

        async def lane() -> None:
            for first in batches:
                await self.batch(range(first, min(first + BATCH, count)), release_at, group)

        await asyncio.gather(*(lane() for _ in range(DB_LANES)))
        return time.perf_counter() - started

    async def batch(self, indexes: range, release_at: datetime, group: str) -> None:
        async with self.sessions() as session, session.begin():
            holds = [
                await escrow.create_hold(
                    session,
                    payer_id=self.payer(index),
                    payee_id=self.payee(index, group),
                    money=Money(1000 + index % 500, "USD"),
                    reason=HoldReason.GUARANTEE_PERIOD,
                    release_at=release_at,
                    actor=ACTOR,
                )
                for index in indexes
            ]
        await asyncio.gather(*(self.start(hold) for hold in holds))

    async def start(self, hold: EscrowHold) -> None:
        async with self.starts:
            await self.temporal.start_workflow(
                EscrowHoldWorkflow.run,
                EscrowHoldInput(hold_id=hold.id, release_at=hold.release_at),
                id=f"escrow-hold-{hold.id}",
                task_queue=self.settings.task_queue,
            )


def percentile(ordered: Sequence[float], share: float) -> float:
    return ordered[max(0, int(len(ordered) * share) - 1)]


async def released_count(sessions: async_sessionmaker[AsyncSession], prefix: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(EscrowMovement)
            .join(EscrowHold, EscrowHold.id == EscrowMovement.hold_id)
            .where(EscrowHold.payee_id.like(f"{prefix}%"), EscrowMovement.kind == "release")
        )
    return int(count or 0)


async def wait_for_releases(
    sessions: async_sessionmaker[AsyncSession], prefix: str, release_at: datetime
) -> None:
    """Until every hold is released, or nothing more was released for a minute."""
    await asyncio.sleep(max(0.0, (release_at - datetime.now(UTC)).total_seconds()))
    last, last_change = -1, time.monotonic()
    while True:
        released = await released_count(sessions, prefix)
        if released != last:
            last, last_change = released, time.monotonic()
        if released >= HOLDS or time.monotonic() - last_change > 60:
            return
        await asyncio.sleep(1.0)


async def figures(sessions: async_sessionmaker[AsyncSession], prefix: str) -> None:
    async with sessions() as session:
        holds = await session.execute(
            select(
                EscrowHold.id, EscrowHold.status, EscrowHold.release_at, EscrowHold.created_at
            ).where(EscrowHold.payee_id.like(f"{prefix}%"))
        )
        rows = holds.all()
        ids = {row.id for row in rows}
        moves = await session.execute(
            select(EscrowMovement.hold_id, EscrowMovement.created_at)
            .join(EscrowHold, EscrowHold.id == EscrowMovement.hold_id)
            .where(EscrowHold.payee_id.like(f"{prefix}%"), EscrowMovement.kind == "release")
        )
        movements = moves.all()
        # The ledger side, counted on its own: one release transaction per hold.
        posted = await session.execute(
            select(LedgerTransaction.description, func.count())
            .where(LedgerTransaction.description.like("escrow hold %: release"))
            .group_by(LedgerTransaction.description)
        )
        ledger_counts = {
            uuid.UUID(description.removeprefix("escrow hold ").removesuffix(": release")): count
            for description, count in posted
        }
    release_at = {row.id: row.release_at for row in rows}
    late_created = sum(1 for row in rows if row.created_at > row.release_at)
    per_hold: dict[uuid.UUID, int] = {}
    for movement in movements:
        per_hold[movement.hold_id] = per_hold.get(movement.hold_id, 0) + 1
    released = sum(1 for row in rows if row.status == "released")
    twice = sum(1 for count in per_hold.values() if count > 1)
    ledger_twice = sum(1 for hold, count in ledger_counts.items() if hold in ids and count > 1)
    lateness = sorted(
        (movement.created_at - release_at[movement.hold_id]).total_seconds()
        for movement in movements
    )
    emit(
        f"escrow: {released:,} of {len(rows):,} holds due at one instant released"
        f" ({len(rows) - released:,} not), {late_created} created after the instant",
        Figure("holds due at one instant not released", len(rows) - released, "holds", goal=0),
    )
    emit(
        f"escrow: holds released twice: {twice} (escrow movements),"
        f" {ledger_twice} (ledger transactions) (goal 0)",
        Figure("holds released twice", max(twice, ledger_twice), "holds", goal=0),
    )
    if movements:
        first = min(m.created_at for m in movements)
        span = (max(m.created_at for m in movements) - first).total_seconds()
        emit(
            f"escrow: release lateness p50 {statistics.median(lateness):.1f} s,"
            f" p99 {percentile(lateness, 0.99):.1f} s, max {lateness[-1]:.1f} s"
            f" (goal p99 <= {GOAL_P99_SECONDS:.0f} s; a daily sweep can be up to 24 h late)",
            Figure("release lateness p50", statistics.median(lateness), "s"),
            Figure("release lateness p99", percentile(lateness, 0.99), "s", goal=GOAL_P99_SECONDS),
        )
        emit(
            f"escrow: releases ran at {len(movements) / max(span, 0.001):,.0f} per second"
            f" over {span:.1f} s on the stack's one worker",
            Figure("releases", len(movements) / max(span, 0.001), "/s", better="higher"),
        )


async def measure(settings: Settings) -> None:
    temporal = await connect(settings.temporal_address, settings.temporal_namespace)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_sessionmaker(engine)
    run = uuid.uuid4().hex[:8]
    creator = Creator(sessions, temporal, settings, run)
    try:
        # The probe holds are due tomorrow: they only measure how fast holds are made.
        probe_seconds = await creator.create(PROBE, datetime.now(UTC) + timedelta(days=1), "probe")
        rate = PROBE / probe_seconds
        lead = timedelta(seconds=HOLDS / rate * 1.2) + MARGIN
        release_at = datetime.now(UTC) + lead
        print(
            f"escrow: creating {HOLDS:,} holds at ~{rate:,.0f} per second,"
            f" all due in {lead.total_seconds():.0f} s",
            flush=True,
        )
        seconds = await creator.create(HOLDS, release_at, "due")
        print(
            f"escrow: {HOLDS:,} holds and workflows created in {seconds:.1f} s"
            f" ({HOLDS / seconds:,.0f} per second),"
            f" {(release_at - datetime.now(UTC)).total_seconds():.0f} s before the instant",
            flush=True,
        )
        prefix = f"bench-{run}-due-"
        await wait_for_releases(sessions, prefix, release_at)
        await figures(sessions, prefix)
    finally:
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, ephemeral_stack(Path(scratch)) as stack:
        asyncio.run(measure(stack.settings))


if __name__ == "__main__":
    main()

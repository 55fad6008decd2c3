"""Settlement figures, measured in one run:

- validation of a 1,000-item batch (``services.transfers.validate_batch``: every item checked
  and routed, and the one query for references the partner used already) on a real
  PostgreSQL 16 whose ``transfers`` table already holds ``TOLLGATE_BENCH_STORED_TRANSFERS``
  (20,000) rows of the partner: the median of ``RUNS`` runs, against the goal of 100 ms and
  the 2 s the system this replaces allowed; with its parts (the pure checks, the query) and
  the CSV parse of the same batch;
- end to end on a fresh embedded stack (`tollgate dev`): a ``TOLLGATE_BENCH_BATCH_ITEMS``
  (1,000) item CSV uploaded to ``POST /api/v1/transfers/batch`` (validated and stored in
  that request), run by ``transfer-batch-{id}`` against the Stripe sandbox until the batch
  completes: the POST's latency, the time from the POST to the batch completed, transfers
  per second, and Stripe transfers per item (goal: exactly one, no duplicates). Stripe calls
  are rate-limited by Temporal (``TOLLGATE_STRIPE_REQUESTS_PER_SECOND``), which bounds the
  rate from above.
- reconciliation of ``TOLLGATE_BENCH_RECONCILED_TRANSFERS`` (100,000) succeeded ledger
  transfers (one in ten on the chain) of one day, on a real PostgreSQL 16, against the
  providers' records of them (as Stripe's balance transactions and the token's ``Transfer``
  events read back, with 0.1% made to disagree): each source's step as its activity runs it
  (the ledger read, the matching, the discrepancies stored) and the run completed, the
  median of ``RECONCILIATION_RUNS`` runs against the goal of 5 s, with its parts. Reading
  the providers is left out: it is paging over the network (1,000 Stripe pages of 100).
"""

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from devstack import postgres
from devstack.ephemeral import ephemeral_stack
from devstack.net import free_port
from domain.actors import SYSTEM, Role
from domain.rails import RoutingRules, chain_amount
from domain.reconciliation import CHAIN_UNIT, ExternalRecord, RunTrigger, Source, reconcile
from domain.transfers import TransferStatus, check_items, idempotency_key, item_references
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from models.transfers import Transfer
from services import reconciliation, transfers
from services.transfer_csv import parse_transfer_csv
from settings import Settings

ITEMS = int(os.environ.get("TOLLGATE_BENCH_BATCH_ITEMS", "1000"))
STORED = int(os.environ.get("TOLLGATE_BENCH_STORED_TRANSFERS", "20000"))
RUNS = 9
GOAL_MS = 100.0
REPLACED_MS = 2000.0
PARTNER = "bench-partner"
STALL_SECONDS = 120.0


def batch_csv(items: int, prefix: str) -> bytes:
    """A CSV of ``items`` Stripe and chain transfers (one in ten to a chain address)."""
    rows = ["reference,destination,amount,currency,description"]
    for i in range(items):
        if i % 10 == 9:
            rows.append(f"{prefix}-{i},0x{uuid.uuid4().hex}{i:08x},{1_000_000 + i},USDC,")
        else:
            rows.append(f"{prefix}-{i},acct_{uuid.uuid4().hex[:16]},{100 + i % 900},USD,item {i}")
    return ("\n".join(rows) + "\n").encode()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def validation_figures(url: str) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    rules = RoutingRules(partners={PARTNER: {"USD": "stripe"}})
    async with sessions() as session, session.begin():
        rows = []
        for i in range(STORED):
            transfer_id = uuid.uuid4()
            rows.append(
                {
                    "id": transfer_id,
                    "partner_id": PARTNER,
                    "reference": f"stored-{i}",
                    "destination": "acct_bench",
                    "amount": 100,
                    "currency": "USD",
                    "rail": "stripe",
                    "route_reason": "USD to a Stripe connected account",
                    "status": TransferStatus.SUCCEEDED.value,
                    "attempts": 1,
                    "key_run": 0,
                    "idempotency_key": idempotency_key(transfer_id),
                    "external_id": f"tr_bench_{i}",
                }
            )
        for start in range(0, len(rows), 2000):
            await session.execute(insert(Transfer), rows[start : start + 2000])
    data = batch_csv(ITEMS, "new")
    parse, checks, query, whole = [], [], [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        items = parse_transfer_csv(data)
        parse.append(time.perf_counter() - started)
        started = time.perf_counter()
        _, errors = check_items(items, PARTNER, rules)
        checks.append(time.perf_counter() - started)
        assert not errors, errors[:3]
        async with sessions() as session:
            started = time.perf_counter()
            await transfers.used_references(session, PARTNER, item_references(items))
            query.append(time.perf_counter() - started)
        async with sessions() as session:
            started = time.perf_counter()
            valid, errors = await transfers.validate_batch(session, PARTNER, items, rules)
            whole.append(time.perf_counter() - started)
        assert len(valid) == ITEMS and not errors
    await engine.dispose()
    took = median_ms(whole)
    emit(
        f"settlement: validation of a {ITEMS:,}-item batch: median {took:.1f} ms of {RUNS} runs"
        f" (goal <= {GOAL_MS:.0f} ms: {'met' if took <= GOAL_MS else 'MISSED'};"
        f" {REPLACED_MS / took:,.0f}x faster than the {REPLACED_MS / 1000:.0f} s the replaced"
        f" system allowed), {STORED:,} transfers of the partner stored",
        Figure(f"validation of a {ITEMS:,}-item batch, median", took, "ms", goal=GOAL_MS),
    )
    print(
        f"settlement: of which the item checks and routing {median_ms(checks):.1f} ms, the"
        f" reference query {median_ms(query):.1f} ms; parsing the {len(data) / 1024:.0f} KiB"
        f" CSV {median_ms(parse):.1f} ms"
    )


async def execution_figures(settings: Settings) -> None:
    """A batch of Stripe transfers only: the chain rail is measured with the chain."""
    api = f"http://127.0.0.1:{settings.api_port}"
    headers = bearer(settings, Role.PLATFORM_ADMIN, "bench-settlement")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    rows = ["reference,destination,amount,currency"]
    rows += [f"{prefix}-{i},acct_{uuid.uuid4().hex[:16]},{100 + i % 900},USD" for i in range(ITEMS)]
    data = ("\n".join(rows) + "\n").encode()
    async with httpx.AsyncClient(timeout=120) as http:
        funded = await http.post(
            f"{settings.stripe_api_base}/_sandbox/fund",
            json={"amount": 1000 * ITEMS, "currency": "usd"},
        )
        funded.raise_for_status()
        started = time.perf_counter()
        created = await http.post(
            f"{api}/api/v1/transfers/batch",
            data={"partner_id": prefix},
            files={"file": ("batch.csv", data, "text/csv")},
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        posted = time.perf_counter() - started
        if created.status_code != 201:
            raise RuntimeError(f"POST batch -> {created.status_code}: {created.text}")
        batch: dict[str, Any] = created.json()
        progress, moved_at = batch, time.monotonic()
        while progress["status"] == "processing":
            await asyncio.sleep(0.5)
            answer = await http.get(f"{api}/api/v1/transfers/batch/{batch['id']}", headers=headers)
            answer.raise_for_status()
            if answer.json()["pending_count"] != progress["pending_count"]:
                moved_at = time.monotonic()
            progress = answer.json()
            if time.monotonic() - moved_at > STALL_SECONDS:
                print(f"settlement: stalled for {STALL_SECONDS:.0f} s at {progress}")
                break
        whole = time.perf_counter() - started
        movements = await http.get(
            f"{settings.stripe_api_base}/_sandbox/movements", params={"kind": "transfer"}
        )
        movements.raise_for_status()
    keys = Counter(
        row["idempotency_key"]
        for row in movements.json()["data"]
        if str(row["idempotency_key"]).startswith("transfer-")
    )
    emit(
        f"settlement: POST of a {ITEMS:,}-item CSV batch (validated and stored):"
        f" {posted * 1000:,.0f} ms",
        Figure(f"POST of a {ITEMS:,}-item CSV batch", posted * 1000, "ms"),
    )
    emit(
        f"settlement: end to end, POST -> batch {progress['status']}: {whole:.1f} s,"
        f" {progress['succeeded_count'] / whole:,.1f} transfers per second"
        f" ({progress['succeeded_count']:,} succeeded, {progress['failed_count']} failed;"
        f" {settings.transfer_concurrency} items at a time, Stripe limited to"
        f" {settings.stripe_requests_per_second:g} calls per second)",
        Figure(
            "batch transfers, end to end",
            progress["succeeded_count"] / whole,
            "/s",
            better="higher",
        ),
    )
    paid_twice = sum(1 for count in keys.values() if count > 1)
    emit(
        f"settlement: Stripe transfers {sum(keys.values()):,} for {len(keys):,} keys;"
        f" keys paid twice: {paid_twice} (goal 0)",
        Figure("transfer keys paid twice", paid_twice, "keys", goal=0),
    )


RECONCILED = int(os.environ.get("TOLLGATE_BENCH_RECONCILED_TRANSFERS", "100000"))
RECONCILIATION_RUNS = 3
RECONCILIATION_GOAL_S = 5.0
RECONCILED_DAY = datetime(2026, 1, 15, tzinfo=UTC)


async def seed_reconciled_day(url: str) -> dict[Source, list[ExternalRecord]]:
    """``RECONCILED`` succeeded transfers over one day (every tenth on the chain), and what
    each provider reports of them: all of them, but of every thousand one missing, one
    with another amount and one the ledger does not know."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    external: dict[Source, list[ExternalRecord]] = {Source.STRIPE: [], Source.CHAIN: []}
    step = timedelta(days=1) / RECONCILED
    rows = []
    for i in range(RECONCILED):
        transfer_id = uuid.uuid4()
        chain = i % 10 == 9
        external_id = f"0x{transfer_id.hex}{transfer_id.hex}" if chain else f"tr_{transfer_id.hex}"
        amount = 100 + i % 900
        rows.append(
            {
                "id": transfer_id,
                "partner_id": PARTNER,
                "reference": f"reconciled-{i}",
                "destination": "0x" + "ab" * 20 if chain else "acct_bench",
                "amount": amount,
                "currency": "USD",
                "rail": "chain" if chain else "stripe",
                "route_reason": "bench",
                "status": TransferStatus.SUCCEEDED.value,
                "attempts": 1,
                "key_run": 0,
                "idempotency_key": idempotency_key(transfer_id),
                "external_id": external_id,
                "completed_at": RECONCILED_DAY + step * i,
            }
        )
        if i % 1000 == 1:
            continue  # the provider lost it: missing_settlement
        seen = chain_amount(amount, "USD") if chain else amount
        if i % 1000 == 2:
            seen += 1  # amount_mismatch
        source = Source.CHAIN if chain else Source.STRIPE
        external[source].append(
            ExternalRecord(external_id, seen, CHAIN_UNIT if chain else "USD", f"ref-{i}")
        )
        if i % 1000 == 3:
            stray = f"0x{uuid.uuid4().hex * 2}" if chain else f"tr_stray_{i}"
            external[source].append(ExternalRecord(stray, 7, CHAIN_UNIT if chain else "USD"))
    async with sessions() as session, session.begin():
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Transfer), rows[start : start + 5000])
    await engine.dispose()
    return external


async def reconciliation_run(url: str, external: dict[Source, list[ExternalRecord]]) -> Any:
    """One run of the seeded day as the workflow's steps run it; the times of its parts."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    parts: dict[str, float] = {"read": 0.0, "match": 0.0, "store": 0.0}
    counts = Counter[str]()
    started = time.perf_counter()
    async with sessions() as session, session.begin():
        run = await reconciliation.create_run(
            session,
            period_start=RECONCILED_DAY,
            period_end=RECONCILED_DAY + timedelta(days=1),
            trigger=RunTrigger.MANUAL,
            sources=["stripe", "chain"],
            actor=SYSTEM,
        )
    for source in (Source.STRIPE, Source.CHAIN):
        async with sessions() as session, session.begin():
            start, end = reconciliation.window(run, timedelta(hours=1))
            mark = time.perf_counter()
            records = await reconciliation.ledger_records(
                session,
                source,
                window_start=start,
                window_end=end,
                period_start=run.period_start,
                period_end=run.period_end,
            )
            parts["read"] += time.perf_counter() - mark
            mark = time.perf_counter()
            outcome = reconcile(records, external[source])
            parts["match"] += time.perf_counter() - mark
            mark = time.perf_counter()
            await reconciliation.store_source(session, run.id, source, outcome)
        parts["store"] += time.perf_counter() - mark
        counts["ledger"] += outcome.ledger_count
        counts["discrepancies"] += outcome.discrepancy_count
    async with sessions() as session, session.begin():
        done = await reconciliation.complete_run(session, run.id, actor=SYSTEM)
    whole = time.perf_counter() - started
    await engine.dispose()
    return whole, parts, counts, done.match_rate


async def measure_reconciliation(url: str) -> None:
    external = await seed_reconciled_day(url)
    runs = [await reconciliation_run(url, external) for _ in range(RECONCILIATION_RUNS)]
    took = statistics.median(run[0] for run in runs)
    _, parts, counts, rate = runs[-1]
    emit(
        f"settlement: reconciliation time for {counts['ledger']:,} ledger transfers:"
        f" median {took:.2f} s of {RECONCILIATION_RUNS} runs (goal <= {RECONCILIATION_GOAL_S:.0f}"
        f" s: {'met' if took <= RECONCILIATION_GOAL_S else 'MISSED'}), Stripe and chain"
        f" steps and the run completed; {counts['discrepancies']:,} discrepancies found,"
        f" match rate {rate}%",
        Figure(
            f"reconciliation of {counts['ledger']:,} transfers, median",
            took,
            "s",
            goal=RECONCILIATION_GOAL_S,
        ),
    )
    print(
        f"settlement: of which reading the ledger {parts['read']:.2f} s, matching"
        f" {parts['match']:.2f} s, storing the discrepancies and counts {parts['store']:.2f} s"
        " (reading the providers, over the network, not included)"
    )


def reconciliation_figures() -> None:
    """Reconciliation of a day of ``RECONCILED`` ledger transfers against the providers'
    records, on a PostgreSQL of its own."""
    port = free_port()
    with postgres.temporary_server(port):
        postgres.ensure_database(port, "bench_reconciliation")
        url = postgres.url(port, "bench_reconciliation")
        upgrade(url)
        asyncio.run(measure_reconciliation(url))


def main() -> None:
    port = free_port()
    with postgres.temporary_server(port):
        postgres.ensure_database(port, "bench_settlement")
        url = postgres.url(port, "bench_settlement")
        upgrade(url)
        asyncio.run(validation_figures(url))
    with tempfile.TemporaryDirectory() as scratch, ephemeral_stack(Path(scratch)) as stack:
        asyncio.run(execution_figures(stack.settings))
    reconciliation_figures()


if __name__ == "__main__":
    main()

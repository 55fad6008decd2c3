"""Load figures: a mixed workload through the HTTP API of a fresh embedded stack (`tollgate dev`)
for ``TOLLGATE_BENCH_LOAD_SECONDS`` (60) seconds, ``TOLLGATE_BENCH_LOAD_CLIENTS`` (16) clients
at once, each sending its next request as soon as the last one answered:

- 40% ticket verifications (``POST /api/v1/tickets/verify``), each of a ticket issued to that
  client's driver and not scanned yet; when none is left, a scan of one already used (it
  answers 200 ``valid: false``, counted apart as a repeat scan);
- 20% ticket issues (``POST /api/v1/tickets``), each to a random client's driver;
- 20% payments (``POST /api/v1/payments``) of the client's customer with a Visa test card,
  captured by their workflows as soon as authorized (``capture_delay_seconds`` 0);
- 15% escrow holds (``POST /api/v1/escrow-holds``) due ``HOLD_RELEASE_SECONDS`` (10) later,
  so the holds made early in the run can be released by their workflows during it;
- 5% transfer batches (``POST /api/v1/transfers/batch``) of ``BATCH_ITEMS`` (5) Stripe
  transfers.

Printed: requests and throughput overall and per endpoint, errors (non-2xx by status, and
transport errors by type) and p50/p95/p99 latency per endpoint (of the 2xx answers, measured by
the client: the request sent -> the whole answer read); the CPU each part of the stack and
this process used during the run; what the run created still in flight when it stopped, and
how long after it all of it settled (``TOLLGATE_BENCH_LOAD_DRAIN_SECONDS``, 600, at most); the
resident memory (RSS) of the API and of the worker processes at the start of the timed run, at
its end, at its peak (sampled every second) and after the wait for the backlog. Memory that
keeps growing over longer runs is a leak; some growth in a short run is caches filling, above
all the worker's workflow cache (``TOLLGATE_WORKER_MAX_CACHED_WORKFLOWS``), which holds every
running workflow it has seen.

Before the timed run each client adds its customer's card, ``PREISSUED_PER_CLIENT`` (32)
tickets are issued to its driver, and each client makes one request of every kind (the
ledger accounts opened, connections made); none of that is counted.

Identities and limits: every client has its own bearer tokens (a ``platform_admin`` subject,
and its own ``driver`` subject for the scans), its own customer, payer, payee and partner, so
per-client limits apply per client and clients do not contend for each other's rows. Every
``TOLLGATE_RATE_LIMIT_*`` setting the stack has is lifted for it (numbers set to
``LIFTED_LIMIT``, switches off) unless given in the environment, and the fraud rules' velocity
limits are raised past the run (every Visa test card has the same fingerprint): the benchmark
measures the system's throughput, not its limits. Stripe calls stay limited by Temporal
(``TOLLGATE_STRIPE_REQUESTS_PER_SECOND``), so payments and transfers may finish after the run.

The load is made by this process, with httpx (one pooled ``AsyncClient``), on the same machine
as the stack: its CPU is taken from the stack's.
"""

import asyncio
import json
import math
import os
import random
import tempfile
import time
import types
import typing
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import func, select
from temporalio.client import Client as TemporalClient

from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from devstack.ephemeral import RunningStack, ephemeral_stack
from domain.actors import Role
from integrations.temporal import connect
from models.engine import make_engine, make_sessionmaker
from models.escrow import EscrowHold
from models.payments import Payment
from models.transfers import Transfer
from settings import Settings

SECONDS = float(os.environ.get("TOLLGATE_BENCH_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("TOLLGATE_BENCH_LOAD_CLIENTS", "16"))
PREISSUED_PER_CLIENT = 32
BATCH_ITEMS = 5
HOLD_RELEASE_SECONDS = 10
LIFTED_LIMIT = 1_000_000
REQUEST_TIMEOUT = 30.0
SAMPLE_SECONDS = 1.0
# After the load: how long to wait for what it made to settle, and for anything to move.
DRAIN_SECONDS = float(os.environ.get("TOLLGATE_BENCH_LOAD_DRAIN_SECONDS", "600"))
STALL_SECONDS = 60.0
MIB = 1024 * 1024

# (name, path, share of the requests)
ENDPOINTS: tuple[tuple[str, str, int], ...] = (
    ("ticket verify", "/api/v1/tickets/verify", 40),
    ("ticket issue", "/api/v1/tickets", 20),
    ("payment create", "/api/v1/payments", 20),
    ("escrow hold create", "/api/v1/escrow-holds", 15),
    ("transfer batch", "/api/v1/transfers/batch", 5),
)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank; NaN of no samples."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds, of 2xx answers
    errors: Counter[str] = field(default_factory=Counter)  # "503", "ReadTimeout"

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())


@dataclass
class Run:
    """Shared by the clients: the tallies, and the tickets waiting to be scanned."""

    id: str
    counting: bool = False
    stats: dict[str, Stats] = field(default_factory=lambda: {e[0]: Stats() for e in ENDPOINTS})
    unscanned: dict[int, deque[str]] = field(default_factory=dict)
    scanned: dict[int, list[str]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    # Errors before the timed run: any of them stops the benchmark.
    setup_errors: Counter[str] = field(default_factory=Counter)
    # The first answer of each kind of error in the run, to show.
    examples: dict[tuple[str, str], str] = field(default_factory=dict)


class Client:
    """One client of the API, as a marketplace's backend and one driver's scanner are."""

    def __init__(self, index: int, run: Run, http: httpx.AsyncClient, settings: Settings) -> None:
        self.index = index
        self.run = run
        self.http = http
        self.name = f"load-{run.id}-{index}"
        self.driver = f"{self.name}-driver"
        self.customer = f"{self.name}-customer"
        self.admin = bearer(settings, Role.PLATFORM_ADMIN, f"{self.name}-admin")
        self.scanner = bearer(settings, Role.DRIVER, self.driver)
        self.random = random.Random(f"{run.id}-{index}")
        self.sent = 0
        run.unscanned[index] = deque()
        run.scanned[index] = []

    async def post(
        self, endpoint: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response | None:
        """The answer when 2xx; otherwise None, the error counted."""
        self.sent += 1
        started = time.perf_counter()
        try:
            response = await self.http.post(path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self.failed(endpoint, type(exc).__name__, repr(exc))
            return None
        took = time.perf_counter() - started
        if not response.is_success:
            self.failed(endpoint, str(response.status_code), response.text[:300])
            return None
        if self.run.counting:
            self.run.stats[endpoint].latencies.append(took)
        return response

    def failed(self, endpoint: str, kind: str, detail: str) -> None:
        if self.run.counting:
            self.run.stats[endpoint].errors[kind] += 1
            self.run.examples.setdefault((endpoint, kind), detail)
        else:
            self.run.setup_errors[f"{endpoint} {kind}: {detail}"] += 1

    def keyed(self) -> dict[str, str]:
        return {**self.admin, "Idempotency-Key": uuid.uuid4().hex}

    async def add_card(self) -> None:
        response = await self.post(
            "payment create",  # not counted: before the run
            "/api/v1/payment-methods",
            self.keyed(),
            json={"customer_id": self.customer, "token": "pm_card_visa", "set_default": True},
        )
        if response is None:
            raise RuntimeError(f"could not add a card for {self.customer}")

    async def issue(self) -> None:
        owner = self.random.randrange(CLIENTS)
        now = datetime.now(UTC)
        response = await self.post(
            "ticket issue",
            "/api/v1/tickets",
            self.admin,
            json={
                "booking_id": f"{self.name}-booking-{self.sent}",
                "user_id": f"{self.name}-rider-{self.sent}",
                "driver_id": f"load-{self.run.id}-{owner}-driver",
                "trip": {"from": "A", "to": "B"},
                "valid_from": (now - timedelta(minutes=1)).isoformat(),
                "valid_until": (now + timedelta(hours=2)).isoformat(),
            },
        )
        if response is not None:
            self.run.unscanned[owner].append(response.json()["qr_payload"])

    async def verify(self) -> None:
        waiting, used = self.run.unscanned[self.index], self.run.scanned[self.index]
        if waiting:
            payload, fresh = waiting.popleft(), True
        elif used:
            payload, fresh = self.random.choice(used), False
        else:
            await self.issue()  # nothing to scan yet
            return
        response = await self.post(
            "ticket verify",
            "/api/v1/tickets/verify",
            self.scanner,
            json={"payload": payload, "driver_id": self.driver},
        )
        if response is None:
            return
        if fresh:
            used.append(payload)
        if self.run.counting:
            valid = response.json()["valid"]
            if fresh:
                self.run.outcomes["valid" if valid else "wrong"] += 1
            else:
                self.run.outcomes["wrong" if valid else "repeat"] += 1

    async def pay(self) -> None:
        amount = 1_000 + self.random.randrange(5_000)
        await self.post(
            "payment create",
            "/api/v1/payments",
            self.keyed(),
            json={
                "customer_id": self.customer,
                "amount": amount,
                "currency": "USD",
                "order_id": f"{self.name}-order-{self.sent}",
                "capture_delay_seconds": 0,
                "allocations": [{"vendor_id": f"{self.name}-vendor", "amount": amount}],
            },
        )

    async def hold(self) -> None:
        release_at = datetime.now(UTC) + timedelta(seconds=HOLD_RELEASE_SECONDS)
        await self.post(
            "escrow hold create",
            "/api/v1/escrow-holds",
            self.keyed(),
            json={
                "payer_id": f"{self.name}-payer",
                "payee_id": f"{self.name}-payee",
                "amount": 500 + self.random.randrange(5_000),
                "currency": "USD",
                "reason": "guarantee_period",
                "release_at": release_at.isoformat(),
            },
        )

    async def batch(self) -> None:
        first = self.sent
        await self.post(
            "transfer batch",
            "/api/v1/transfers/batch",
            self.keyed(),
            json={
                "partner_id": f"{self.name}-partner",
                "items": [
                    {
                        "reference": f"{self.name}-{first}-{item}",
                        "destination": f"acct_{uuid.uuid4().hex[:16]}",
                        "amount": 100 + self.random.randrange(900),
                        "currency": "USD",
                    }
                    for item in range(BATCH_ITEMS)
                ],
            },
        )

    def operations(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {
            "ticket verify": self.verify,
            "ticket issue": self.issue,
            "payment create": self.pay,
            "escrow hold create": self.hold,
            "transfer batch": self.batch,
        }

    async def work(self, deadline: float) -> None:
        operations = self.operations()
        names = [name for name, _, _ in ENDPOINTS]
        weights = [share for _, _, share in ENDPOINTS]
        while time.monotonic() < deadline:
            await operations[self.random.choices(names, weights)[0]]()


# Memory


def part_name(command: list[str]) -> str | None:
    """Which part of the stack a child of ``tollgate dev`` is, from its command line."""
    if command[-3:] in (["-m", "cli", "api"], ["-m", "cli", "worker"]):
        return command[-1]
    if "devstack.stripe_sandbox" in command:
        return "stripe sandbox"
    program = Path(command[0]).name if command else ""
    return {"postgres": "postgres", "temporal": "temporal", "anvil": "anvil"}.get(program)


def stack_processes(stack: RunningStack) -> dict[str, psutil.Process]:
    """The parts the stack's supervisor started (``python -m cli api``, ``postgres``, ...)."""
    found: dict[str, psutil.Process] = {}
    for child in psutil.Process(stack.process.pid).children():
        try:
            name = part_name(child.cmdline())
        except psutil.Error:
            continue
        if name is not None:
            found[name] = child
    return found


def rss(process: psutil.Process) -> float:
    """Resident memory of the process and its children, in bytes; NaN once it is gone."""
    try:
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return float(total)
    except psutil.Error:
        return math.nan


def cpu_seconds(process: psutil.Process, *, tree: bool = True) -> float:
    """CPU time (user and system) the process has used so far, with ``tree`` its children's
    too, those that ended included (PostgreSQL's backends); NaN once it is gone."""
    try:
        times = process.cpu_times()
        total = times.user + times.system
        if not tree:
            return float(total)
        total += times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return float(total)
    except psutil.Error:
        return math.nan


MEASURED = ("api", "worker")  # whose memory is sampled


@dataclass
class Memory:
    """RSS samples of the API and the worker, and the CPU time every part and this process
    used."""

    processes: dict[str, psutil.Process]
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def sample(self) -> None:
        for name in MEASURED:
            if name in self.processes:
                self.samples.setdefault(name, []).append(rss(self.processes[name]))

    def mark_cpu(self) -> None:
        for name, process in self.processes.items():
            self.cpu.setdefault(name, []).append(cpu_seconds(process))
        # This process alone: the stack is its child.
        self.cpu.setdefault("load generator", []).append(cpu_seconds(psutil.Process(), tree=False))

    def cores(self, name: str, seconds: float) -> float:
        """Cores the process used on average between the first two marks."""
        marks = self.cpu.get(name, [])
        return (marks[1] - marks[0]) / seconds if len(marks) >= 2 else math.nan

    async def every(self, seconds: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except TimeoutError:
                pass
        self.sample()


# Environment of the stack


def _numeric(annotation: Any) -> bool:
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    return annotation in (int, float) or any(option in (int, float) for option in options)


def lifted_rate_limits() -> dict[str, str]:
    """Every ``TOLLGATE_RATE_LIMIT_*`` setting not given in the environment, lifted."""
    lifted = {}
    for name, info in Settings.model_fields.items():
        variable = f"TOLLGATE_{name.upper()}"
        if not name.startswith("rate_limit") or variable in os.environ:
            continue
        if info.annotation is bool:
            lifted[variable] = "false"
        elif _numeric(info.annotation):
            ceilings = [getattr(bound, "le", None) for bound in info.metadata]
            ceiling = min((c for c in ceilings if c is not None), default=LIFTED_LIMIT)
            lifted[variable] = str(min(LIFTED_LIMIT, ceiling))
    return lifted


def fraud_rules() -> str:
    rules = json.loads(os.environ.get("TOLLGATE_FRAUD_RULES") or "{}")
    past = 10**9
    return json.dumps({**rules, "customer_velocity_limit": past, "card_velocity_limit": past})


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment (the stack's children inherit it), then put
    back as they were for the benchmarks that follow."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# The run


# Statuses of what the run made, and which of them are still moving.
TRACKED: tuple[tuple[str, Any, Any, frozenset[str]], ...] = (
    (
        "payments",
        Payment.status,
        Payment.customer_id,
        frozenset({"pending", "authorizing", "authorized", "capturing"}),
    ),
    (
        "escrow holds",
        EscrowHold.status,
        EscrowHold.payer_id,
        frozenset({"active", "partially_released"}),
    ),
    ("transfers", Transfer.status, Transfer.partner_id, frozenset({"pending", "processing"})),
)


class Backlog:
    def __init__(self, settings: Settings, run_id: str) -> None:
        self.engine = make_engine(settings.sqlalchemy_url)
        self.sessions = make_sessionmaker(self.engine)
        self.prefix = f"load-{run_id}-"

    async def counts(self) -> dict[str, Counter[str]]:
        counts = {}
        async with self.sessions() as session:
            for name, column, owner, _ in TRACKED:
                rows = await session.execute(
                    select(column, func.count())
                    .where(owner.like(f"{self.prefix}%"))
                    .group_by(column)
                )
                counts[name] = Counter({str(status): int(count) for status, count in rows})
        return counts

    async def close(self) -> None:
        await self.engine.dispose()


def moving(counts: dict[str, Counter[str]]) -> int:
    return sum(
        count
        for name, _, _, statuses in TRACKED
        for status, count in counts[name].items()
        if status in statuses
    )


def shown(counts: dict[str, Counter[str]]) -> str:
    return "; ".join(
        f"{name} "
        + (", ".join(f"{status} {count:,}" for status, count in sorted(by.items())) or "none")
        for name, by in counts.items()
    )


async def drain(backlog: Backlog) -> tuple[dict[str, Counter[str]], float, bool]:
    """Until nothing the run made is moving (the counts, the seconds, True), or
    ``DRAIN_SECONDS`` passed or nothing moved for ``STALL_SECONDS`` (..., False)."""
    started = last_change = time.monotonic()
    last: dict[str, Counter[str]] | None = None
    while True:
        counts = await backlog.counts()
        now = time.monotonic()
        if not moving(counts):
            return counts, now - started, True
        if counts != last:
            last, last_change = counts, now
        if now - started > DRAIN_SECONDS or now - last_change > STALL_SECONDS:
            return counts, now - started, False
        await asyncio.sleep(1.0)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def mib(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value / MIB:,.1f} MiB"


async def prepare(clients: list[Client], run: Run) -> float:
    """Cards, tickets to scan and one request of each kind per client; the seconds it took."""
    started = time.perf_counter()
    await asyncio.gather(*(client.add_card() for client in clients))

    async def tickets(client: Client) -> None:
        for _ in range(PREISSUED_PER_CLIENT):
            await client.issue()

    await asyncio.gather(*(tickets(client) for client in clients))

    async def one_of_each(client: Client) -> None:
        for operation in client.operations().values():
            await operation()

    await asyncio.gather(*(one_of_each(client) for client in clients))
    if run.setup_errors:
        raise RuntimeError(f"errors before the timed run: {dict(run.setup_errors)}")
    return time.perf_counter() - started


async def measure(stack: RunningStack, lifted: dict[str, str]) -> None:
    settings = stack.settings
    run = Run(uuid.uuid4().hex[:8])
    temporal = await connect(settings.temporal_address, settings.temporal_namespace)
    memory = Memory(stack_processes(stack))
    backlog = Backlog(settings, run.id)
    try:
        await load(stack, run, lifted, temporal, memory, backlog)
    finally:
        await backlog.close()


async def load(
    stack: RunningStack,
    run: Run,
    lifted: dict[str, str],
    temporal: TemporalClient,
    memory: Memory,
    backlog: Backlog,
) -> None:
    settings = stack.settings
    api = f"http://127.0.0.1:{settings.api_port}"
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=REQUEST_TIMEOUT) as http:
        funded = await http.post(
            f"{settings.stripe_api_base}/_sandbox/fund",
            json={"amount": 10**12, "currency": "usd"},
        )
        funded.raise_for_status()
        clients = [Client(index, run, http, settings) for index in range(CLIENTS)]
        prepared = await prepare(clients, run)
        print(
            f"load: prepared in {prepared:.1f} s (cards, {PREISSUED_PER_CLIENT * CLIENTS:,}"
            f" tickets to scan, one request of each kind per client; not counted)",
            flush=True,
        )
        running_before = (await temporal.count_workflows("ExecutionStatus='Running'")).count
        stop = asyncio.Event()
        sampler = asyncio.create_task(memory.every(SAMPLE_SECONDS, stop))
        run.counting = True
        memory.mark_cpu()
        started = time.monotonic()
        await asyncio.gather(*(client.work(started + SECONDS) for client in clients))
        elapsed = time.monotonic() - started
        memory.mark_cpu()
        run.counting = False
        stop.set()
        await sampler
        running_after = (await temporal.count_workflows("ExecutionStatus='Running'")).count

    requests = sum(stats.requests for stats in run.stats.values())
    errors = sum(sum(stats.errors.values()) for stats in run.stats.values())
    emit(
        f"load: {CLIENTS} clients for {elapsed:.1f} s on a fresh embedded stack: {requests:,}"
        f" requests, {requests / elapsed:,.1f} per second, {errors:,} errors"
        f" (mix {', '.join(f'{share}% {name}' for name, _, share in ENDPOINTS)})",
        Figure("throughput, mixed", requests / elapsed, "req/s", better="higher"),
        Figure("errors, mixed", errors, "requests", goal=0),
    )
    width = max(len(name) for name, _, _ in ENDPOINTS)
    for name, path, _ in ENDPOINTS:
        stats = run.stats[name]
        ordered = sorted(stats.latencies)
        p50, p95, p99 = (percentile(ordered, share) for share in (0.5, 0.95, 0.99))
        failed = ", ".join(f"{kind} x{count:,}" for kind, count in sorted(stats.errors.items()))
        emit(
            f"load: {name:<{width}} POST {path}: {stats.requests:,} requests,"
            f" {stats.requests / elapsed:,.1f} per second; p50 {ms(p50)}, p95 {ms(p95)},"
            f" p99 {ms(p99)}; errors {sum(stats.errors.values()):,}"
            + (f" ({failed})" if failed else ""),
            Figure(f"{name}: throughput", stats.requests / elapsed, "req/s", better="higher"),
            Figure(f"{name}: p50", p50 * 1000, "ms"),
            Figure(f"{name}: p99", p99 * 1000, "ms"),
        )
    for (name, kind), detail in sorted(run.examples.items()):
        print(f"load: first {kind} of {name}: {detail}")
    outcomes = run.outcomes
    emit(
        f"load: scans: {outcomes['valid']:,} of fresh tickets valid, {outcomes['repeat']:,}"
        f" repeat scans of used tickets refused (the tickets to scan ran out);"
        f" wrong answers: {outcomes['wrong']} (goal 0)",
        Figure("scans answered wrongly", outcomes["wrong"], "scans", goal=0),
    )
    used = ", ".join(
        f"{name} {memory.cores(name, elapsed) * 100:.0f}%"
        for name in (*sorted(memory.processes), "load generator")
    )
    print(
        f"load: CPU used during the load, in % of one core: {used}"
        f" ({psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, shared with"
        f" whatever else runs on the machine)"
    )
    in_flight = await backlog.counts()
    print(
        f"load: when the load stopped, in flight: {shown(in_flight)}; running workflows"
        f" {running_before:,} at the start, {running_after:,} at the end",
        flush=True,
    )
    final, drained, settled = await drain(backlog)
    emit(
        (
            f"load: what the run made settled {drained:.1f} s after the load stopped"
            if settled
            else f"load: what the run made NOT settled {drained:.1f} s after the load stopped"
        )
        + f" (holds fall due up to {HOLD_RELEASE_SECONDS} s after it): {shown(final)}",
        Figure("backlog settled after the load", drained if settled else math.nan, "s"),
    )
    memory.sample()  # after the backlog
    for part in MEASURED:
        samples = memory.samples.get(part, [])
        if not samples:
            print(f"load: {part} process not found: no memory figures")
            continue
        start, end, after = samples[0], samples[-2], samples[-1]
        growth = end - start
        emit(
            f"load: {part} RSS {mib(start)} at the start, {mib(end)} at the end"
            f" ({growth / MIB:+,.1f} MiB, {growth / start * 100:+.1f}%), peak"
            f" {mib(max(samples[:-1]))} ({len(samples) - 1} samples);"
            f" {mib(after)} after the wait for the backlog (pid {memory.processes[part].pid})",
            Figure(f"{part} RSS at the end", end / MIB, "MiB"),
            Figure(f"{part} RSS growth", growth / MIB, "MiB"),
        )
    print(
        f"load: the worker caches up to {settings.worker_max_cached_workflows:,} workflows"
        " (TOLLGATE_WORKER_MAX_CACHED_WORKFLOWS): its memory grows with the running ones"
    )
    print(
        "load: rate limits: "
        + (
            ", ".join(f"{name}={value}" for name, value in sorted(lifted.items()))
            if lifted
            else "the stack has no TOLLGATE_RATE_LIMIT_* setting to lift"
        )
        + f"; every client its own identities; Stripe limited to"
        f" {settings.stripe_requests_per_second:g} calls per second by Temporal"
    )


def main() -> None:
    lifted = lifted_rate_limits()
    with (
        environment({**lifted, "TOLLGATE_FRAUD_RULES": fraud_rules()}),
        tempfile.TemporaryDirectory() as scratch,
        ephemeral_stack(Path(scratch)) as stack,
    ):
        asyncio.run(measure(stack, lifted))


if __name__ == "__main__":
    main()

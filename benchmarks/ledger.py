"""Ledger and API figures on a real PostgreSQL 16, measured in one run.

- posting throughput through ``services.ledger`` (one DB transaction per posting);
- balance lookup latency on an account with many postings;
- the cost of ``Idempotency-Key`` on an API POST, as a ratio to the same POST without it,
  and the latency of a replay.
"""

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from httpx import ASGITransport, AsyncClient

from api.app import create_app
from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from devstack import postgres
from devstack.net import free_port
from domain.actors import SYSTEM, Role
from domain.ledger import AccountType, transfer
from domain.money import Money
from models.engine import make_engine, make_sessionmaker
from models.migrate import upgrade
from services import ledger
from settings import Settings

POSTINGS = 2000
API_REQUESTS = 300


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def posting_figures(url: str) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        for code in ("cash", "vendor"):
            await ledger.ensure_account(
                session, code=code, name=code, type=AccountType.ASSET, actor=SYSTEM
            )

    async def post_one() -> None:
        async with sessions() as session, session.begin():
            await ledger.post_transaction(
                session, postings=transfer("cash", "vendor", Money(125, "USD")), actor=SYSTEM
            )

    started = time.perf_counter()
    samples = await _timed(post_one, POSTINGS)
    elapsed = time.perf_counter() - started
    emit(
        f"ledger: {POSTINGS} postings, {POSTINGS / elapsed:,.0f} per second ({_ms(samples)})",
        Figure("postings", POSTINGS / elapsed, "/s", better="higher"),
        Figure("posting, median", _median_ms(samples), "ms"),
    )

    async def balance() -> None:
        async with sessions() as session:
            await ledger.balances(session, "vendor")

    balances = await _timed(balance, 200)
    emit(
        f"ledger: balance of an account with {POSTINGS} postings: {_ms(balances)}",
        Figure(
            f"balance of an account with {POSTINGS} postings, median", _median_ms(balances), "ms"
        ),
    )
    await engine.dispose()


async def idempotency_figures(url: str) -> None:
    settings = Settings(database_url=url, _env_file=None)
    headers = bearer(settings, Role.PLATFORM_ADMIN, "bench")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://b") as client:
            counter = iter(range(10**9))

            def create(with_key: bool) -> Callable[[], Awaitable[object]]:
                async def call() -> None:
                    n = next(counter)
                    extra = {"Idempotency-Key": f"bench-{n}"} if with_key else {}
                    response = await client.post(
                        "/api/v1/ledger/accounts",
                        json={"code": f"acct-{n}", "name": "bench", "type": "asset"},
                        headers={**headers, **extra},
                    )
                    assert response.status_code == 201, response.text

                return call

            # Interleaved rounds, so drift of the machine affects both sides alike.
            plain: list[float] = []
            keyed: list[float] = []
            for _ in range(API_REQUESTS // 50):
                plain += await _timed(create(False), 50)
                keyed += await _timed(create(True), 50)
            ratio = statistics.median(keyed) / statistics.median(plain)
            emit(
                f"api: POST without Idempotency-Key: {_ms(plain)}",
                Figure("POST without Idempotency-Key, median", _median_ms(plain), "ms"),
            )
            emit(
                f"api: POST with Idempotency-Key:    {_ms(keyed)} (ratio {ratio:.2f}x)",
                Figure("POST with Idempotency-Key, median", _median_ms(keyed), "ms"),
                Figure("POST with/without Idempotency-Key", ratio, "x"),
            )

            replay_headers = {**headers, "Idempotency-Key": "bench-replay"}
            body = {"code": "acct-replay", "name": "bench", "type": "asset"}
            await client.post("/api/v1/ledger/accounts", json=body, headers=replay_headers)

            async def replay() -> None:
                response = await client.post(
                    "/api/v1/ledger/accounts", json=body, headers=replay_headers
                )
                assert response.headers["idempotent-replayed"] == "true"

            replays = await _timed(replay, 200)
            emit(
                f"api: replay of a stored response: {_ms(replays)}",
                Figure("replay of a stored response, median", _median_ms(replays), "ms"),
            )


async def main() -> None:
    port = free_port()
    with postgres.temporary_server(port):
        await asyncio.to_thread(postgres.ensure_database, port, "bench")
        url = postgres.url(port, "bench")
        await asyncio.to_thread(upgrade, url)
        await posting_figures(url)
        await idempotency_figures(url)

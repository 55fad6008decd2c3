"""Ticket figures, measured in one run on a fresh embedded stack (`tollgate dev`):

- tickets issued per second through the HTTP API, against the bare rate of starting an
  equivalent trivial workflow, as a ratio (goal >= 0.8);
- verification latency p50/p99 with 50 concurrent clients (goal p99 <= 10 ms).
"""

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from temporalio.client import Client

from benchmarks.auth import bearer
from benchmarks.figures import Figure, emit
from devstack.ephemeral import ephemeral_stack
from domain.actors import Role
from integrations.temporal import connect
from settings import Settings

TICKETS = 400
CONCURRENCY = 20
VERIFY_CLIENTS = 50


async def shifted(call: Callable[[int], Awaitable[None]], offset: int, index: int) -> None:
    await call(offset + index)


async def rate(count: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Calls per second of ``one(i)`` for i in range(count), ``concurrency`` at a time."""
    queue = iter(range(count))

    async def lane() -> None:
        for index in queue:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def measure(settings: Settings) -> None:
    api = f"http://127.0.0.1:{settings.api_port}"
    admin = bearer(settings, Role.PLATFORM_ADMIN, "booking-svc")
    temporal: Client = await connect(settings.temporal_address, settings.temporal_namespace)
    now = datetime.now(UTC)
    window = {
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(hours=2)).isoformat(),
    }
    issued: list[dict[str, Any]] = []
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=30) as http:

        async def issue(index: int) -> None:
            response = await http.post(
                "/api/v1/tickets",
                json={
                    "booking_id": f"bk-{run}-{index}",
                    "user_id": f"rider-{index}",
                    "driver_id": f"drv-{index % VERIFY_CLIENTS}",
                    **window,
                },
                headers=admin,
            )
            response.raise_for_status()
            issued.append(response.json())

        async def bare_start(index: int) -> None:
            # What issuing does at its core: start one workflow with a fresh id.
            await temporal.start_workflow(
                "BenchTrivial",
                id=f"bench-{run}-{index}",
                task_queue=f"bench-unpolled-{run}",
                execution_timeout=timedelta(minutes=1),
            )

        # Two interleaved rounds each, so drift of the machine falls on both sides.
        half = TICKETS // 2
        issue_rates, start_rates = [], []
        for offset in (0, half):
            issue_rates.append(await rate(half, CONCURRENCY, partial(shifted, issue, offset)))
            start_rates.append(await rate(half, CONCURRENCY, partial(shifted, bare_start, offset)))
        issue_rate, start_rate = statistics.mean(issue_rates), statistics.mean(start_rates)
        emit(
            f"tickets: issued through the API: {issue_rate:,.0f} per second",
            Figure("issued through the API", issue_rate, "/s", better="higher"),
        )
        emit(
            f"tickets: bare workflow starts:    {start_rate:,.0f} per second",
            Figure("bare workflow starts", start_rate, "/s", better="higher"),
        )
        emit(
            f"tickets: issue/start ratio {issue_rate / start_rate:.2f} (goal >= 0.8)",
            Figure("issue/start ratio", issue_rate / start_rate, "x", goal=0.8, better="higher"),
        )

    await settle(temporal)
    await verification_latency(settings, api, issued)


async def settle(temporal: Client, quiet_seconds: float = 2.0) -> None:
    """Wait until the ticket workflows just started have run their first tasks, so the
    verification figures do not also measure Temporal catching up on the same cores."""
    previous = -1
    while True:
        running = (await temporal.count_workflows("ExecutionStatus='Running'")).count
        if running == previous:
            return
        previous = running
        await asyncio.sleep(quiet_seconds)


async def verification_latency(settings: Settings, api: str, issued: list[dict[str, Any]]) -> None:
    """50 drivers scanning at once. aiohttp, not httpx, drives the load: on 2 shared cores
    httpx's own CPU cost showed up in the latencies it measured."""
    by_driver: dict[str, list[str]] = {}
    for ticket in issued:
        by_driver.setdefault(ticket["driver_id"], []).append(ticket["qr_payload"])
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=VERIFY_CLIENTS)
    async with aiohttp.ClientSession(api, connector=connector) as http:

        async def driver_client(driver: str, payloads: list[str]) -> None:
            headers = bearer(settings, Role.DRIVER, driver)
            for payload in payloads:
                started = time.perf_counter()
                async with http.post(
                    "/api/v1/tickets/verify",
                    json={"payload": payload, "driver_id": driver},
                    headers=headers,
                ) as response:
                    answer = await response.json()
                latencies.append(time.perf_counter() - started)
                assert answer["valid"], answer

        await asyncio.gather(*(driver_client(d, p) for d, p in by_driver.items()))
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    emit(
        f"tickets: verification with {len(by_driver)} concurrent clients, "
        f"{len(ordered)} scans: p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal p99 <= 10 ms)",
        Figure(f"verification, {len(by_driver)} clients, p50", p50, "ms"),
        Figure(f"verification, {len(by_driver)} clients, p99", p99, "ms", goal=10.0),
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, ephemeral_stack(Path(scratch)) as stack:
        asyncio.run(measure(stack.settings))

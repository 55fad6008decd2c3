"""Escrow holds and payouts on the embedded stack: a worker killed in the middle of a Stripe
transfer (the retry, started within seconds thanks to heartbeats, pays nothing twice); an
admin's signal sent with the `temporal` CLI, as the Temporal UI sends it; and the ledger
against the Stripe sandbox's own record of the money that left."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from devstack.binaries import find
from devstack.ephemeral import REPO, RunningStack
from domain.actors import Actor, Role
from domain.escrow import TriggerEvent
from domain.money import Money
from models.engine import make_engine, make_sessionmaker
from models.escrow import Payout
from models.ledger import LedgerTransaction
from services import ledger, payouts
from tests.conftest import TokenFactory
from tests.fixtures.waiting import until
from tests.integration.conftest import Names
from workflows.escrow import EscrowHoldWorkflow
from workflows.payouts import PayoutScheduleWorkflow
from workflows.types import PayoutScheduleInput

pytestmark = pytest.mark.integration

CURRENCY = "USD"
OPS = Actor("ops-test", Role.PLATFORM_ADMIN)


@asynccontextmanager
async def sandbox(embedded: RunningStack) -> AsyncIterator[AsyncClient]:
    base = embedded.settings.stripe_api_base
    assert base is not None
    async with AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def fund(stripe: AsyncClient, amount: int) -> None:
    funded = await stripe.post(
        "/_sandbox/fund", json={"amount": amount, "currency": CURRENCY.lower()}
    )
    assert funded.status_code == 200, funded.text


async def transfers_to(stripe: AsyncClient, destination: str) -> list[dict[str, Any]]:
    found = await stripe.get("/_sandbox/movements", params={"kind": "transfer"})
    assert found.status_code == 200, found.text
    return [m for m in found.json()["data"] if m["related"].get("destination") == destination]


async def balance(api: AsyncClient, auth: TokenFactory, code: str) -> int:
    """An account's balance in USD over the API (debits minus credits), 0 if it is not open."""
    found = await api.get(f"/api/v1/ledger/accounts/{code}", headers=auth("platform_admin"))
    if found.status_code == 404:
        return 0
    assert found.status_code == 200, found.text
    return int(found.json()["balances"].get(CURRENCY, 0))


class Workers:
    """Workers of the stack's code on this test's own task queues, as separate processes."""

    def __init__(self, embedded: RunningStack, log_dir: Path) -> None:
        self.queue = f"test-main-{uuid.uuid4()}"
        self.stripe_queue = f"test-stripe-{uuid.uuid4()}"
        self.env = {
            **os.environ,
            **embedded.env,
            "TOLLGATE_TASK_QUEUE": self.queue,
            "TOLLGATE_STRIPE_TASK_QUEUE": self.stripe_queue,
            "TOLLGATE_CHAIN_TASK_QUEUE": f"test-chain-{uuid.uuid4()}",
            "TOLLGATE_WORKER_METRICS_PORT": "0",
            # The shared Schedules must keep pointing at the stack's queues, not these.
            "TOLLGATE_WORKER_SYNC_SCHEDULES": "false",
        }
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.log_dir / f"worker-{len(self.started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process, log_path

    def kill_all(self) -> None:
        """SIGKILL to the process group of every worker still running."""
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


async def polling(process: subprocess.Popen[bytes], log_path: Path) -> bool:
    """Whether the worker polls its task queues yet (it logs it); fails if it exited."""
    log = await asyncio.to_thread(log_path.read_text, errors="replace")
    if process.poll() is not None:
        raise AssertionError(f"the worker exited:\n{log}")
    return "worker polling" in log


async def test_a_worker_killed_during_the_transfer_pays_once_and_the_retry_comes_in_seconds(
    n: Names,
    embedded: RunningStack,
    stack_temporal: Client,
    stack_api: AsyncClient,
    auth: TokenFactory,
    tmp_path: Path,
) -> None:
    engine = make_engine(embedded.settings.sqlalchemy_url)
    try:
        await kill_during_transfer(
            n, embedded, stack_temporal, stack_api, auth, tmp_path, make_sessionmaker(engine)
        )
    finally:
        await engine.dispose()


async def kill_during_transfer(
    n: Names,
    embedded: RunningStack,
    stack_temporal: Client,
    stack_api: AsyncClient,
    auth: TokenFactory,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    amount = 4321
    destination = f"acct_{uuid.uuid4().hex[:16]}"
    async with sandbox(embedded) as stripe:
        await fund(stripe, amount * 2)
        # The row straight into the stack's database: the API would also start the workflow
        # on the stack's own task queue.
        async with sessions() as session, session.begin():
            schedule = await payouts.create_schedule(
                session,
                payee_id=n("payee"),
                destination=destination,
                money=Money(amount, CURRENCY),
                trigger_event=TriggerEvent.MANUAL,
                scheduled_for=datetime.now(UTC) - timedelta(seconds=1),
                actor=OPS,
                max_attempts=3,
                backoff_seconds=1,
            )
            key = payouts.idempotency_key(schedule)
        stripe_before = await balance(stack_api, auth, payouts.STRIPE_ACCOUNT)
        faults_before = (await stripe.get("/_sandbox/faults")).json()
        workers = Workers(embedded, tmp_path)
        try:
            first, first_log = workers.start()
            await until(lambda: polling(first, first_log), "the first worker", 30)
            # Stripe makes the transfer and stores the answer, then holds it 30 s.
            queued = await stripe.post(
                "/_sandbox/faults", json={"next": ["timeout"], "timeout_seconds": 30}
            )
            assert queued.status_code == 200, queued.text
            handle = await stack_temporal.start_workflow(
                PayoutScheduleWorkflow.run,
                PayoutScheduleInput(
                    schedule_id=schedule.id,
                    scheduled_for=schedule.scheduled_for,
                    trigger_event=schedule.trigger_event,
                    max_attempts=schedule.max_attempts,
                    backoff_seconds=schedule.backoff_seconds,
                    stripe_task_queue=workers.stripe_queue,
                ),
                id=f"payout-schedule-{schedule.id}",
                task_queue=workers.queue,
            )

            async def paid() -> list[dict[str, Any]]:
                found = await stripe.get(
                    "/_sandbox/movements", params={"kind": "transfer", "idempotency_key": key}
                )
                return list(found.json()["data"])

            await until(paid, "the transfer in the sandbox", 30)
            assert (await stripe.get("/_sandbox/faults")).json()["next"] == []
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            killed_at = time.monotonic()
            second, second_log = workers.start()

            async def finished() -> bool:
                await polling(second, second_log)
                described = await handle.describe()
                return described.status != WorkflowExecutionStatus.RUNNING

            await until(finished, "the schedule's workflow to end", 60)
            recovered_in = time.monotonic() - killed_at
        finally:
            workers.kill_all()
            await stripe.post(
                "/_sandbox/faults",
                json={"next": [], "timeout_seconds": faults_before["timeout_seconds"]},
            )

        result = await handle.result()
        assert result.status == "completed", result
        # Noticed by the heartbeat timeout (10 s), not the transfer's 2-minute timeout.
        assert recovered_in < 45, recovered_in
        started = [
            event.activity_task_started_event_attributes
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.attempt > 1
        ]
        assert len(started) == 1, started
        last_failure = started[0].last_failure.timeout_failure_info
        assert last_failure.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT

        [transfer] = await paid()
        assert transfer["amount"] == amount
        assert transfer["related"]["destination"] == destination
        assert result.stripe_transfer_id == transfer["object_id"]
        async with sessions() as session:
            [payout] = (
                await session.scalars(select(Payout).where(Payout.schedule_id == schedule.id))
            ).all()
            assert payout.stripe_transfer_id == transfer["object_id"]
            [txn] = (
                await session.scalars(
                    select(LedgerTransaction).where(
                        LedgerTransaction.external_ref == f"payout-schedule-{schedule.id}"
                    )
                )
            ).all()
            codes = await ledger.account_codes(session, {p.account_id for p in txn.postings})
            moved = {codes[p.account_id]: p.amount for p in txn.postings}
            assert moved == {payouts.STRIPE_ACCOUNT: amount, f"payee:{n('payee')}": -amount}
    assert await balance(stack_api, auth, payouts.STRIPE_ACCOUNT) == stripe_before + amount


async def test_a_release_now_signal_from_the_temporal_cli_releases_the_hold(
    n: Names,
    embedded: RunningStack,
    stack_temporal: Client,
    stack_api: AsyncClient,
    auth: TokenFactory,
) -> None:
    amount = 2500
    payee = n("payee")
    created = await stack_api.post(
        "/api/v1/escrow-holds",
        json={
            "payer_id": n("payer"),
            "payee_id": payee,
            "amount": amount,
            "currency": CURRENCY,
            "reason": "guarantee_period",
            "release_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
        headers=auth("platform_admin"),
    )
    assert created.status_code == 201, created.text
    hold = created.json()
    handle = stack_temporal.get_workflow_handle_for(EscrowHoldWorkflow.run, hold["workflow_id"])

    async def running() -> bool:
        try:
            return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        except RPCError:
            return False  # not started yet: the API starts it after the commit

    await until(running, "the hold's workflow", 15)

    settings = embedded.settings
    sent = await asyncio.to_thread(
        subprocess.run,
        [
            find("temporal"),
            "workflow",
            "signal",
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.temporal_namespace,
            "--workflow-id",
            hold["workflow_id"],
            "--name",
            "release_now",
            "--input",
            '{"by": "ops-alice"}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr

    async def released() -> dict[str, Any] | None:
        found = await stack_api.get(
            f"/api/v1/escrow-holds/{hold['id']}", headers=auth("platform_admin")
        )
        assert found.status_code == 200, found.text
        return found.json() if found.json()["status"] == "released" else None

    after = await until(released, "the release", 15)
    assert after["released_amount"] == amount and after["held_amount"] == 0

    log = await stack_api.get(
        "/api/v1/audit-log", params={"entity_id": hold["id"]}, headers=auth("platform_admin")
    )
    assert log.status_code == 200, log.text
    releases = [e for e in log.json()["data"] if e["action"] == "escrow_hold.released"]
    assert len(releases) == 1, log.json()
    assert releases[0]["actor"] == "ops-alice"
    assert releases[0]["after"]["released_amount"] == amount
    assert await balance(stack_api, auth, f"payee:{payee}") == amount
    assert (await handle.result()).status == "released"


async def test_the_ledger_matches_the_sandbox_after_a_placement_pays_out(
    n: Names, embedded: RunningStack, stack_api: AsyncClient, auth: TokenFactory
) -> None:
    amount = 7777
    payee = n("payee")
    destination = f"acct_{uuid.uuid4().hex[:16]}"
    admin = auth("platform_admin")
    async with sandbox(embedded) as stripe:
        await fund(stripe, amount)
        stripe_before = await balance(stack_api, auth, payouts.STRIPE_ACCOUNT)
        escrow_before = await balance(stack_api, auth, "escrow")
        activated = await stack_api.post(
            f"/api/v1/placements/{n('placement')}/activate",
            json={
                "payer_id": n("payer"),
                "payee_id": payee,
                "destination": destination,
                "amount": amount,
                "currency": CURRENCY,
                "guarantee_ends_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat(),
            },
            headers=admin,
        )
        assert activated.status_code == 201, activated.text
        hold_id = activated.json()["hold"]["id"]
        schedule_id = activated.json()["payout_schedule"]["id"]

        async def settled() -> bool:
            hold = (await stack_api.get(f"/api/v1/escrow-holds/{hold_id}", headers=admin)).json()
            schedule = (
                await stack_api.get(f"/api/v1/payout-schedules/{schedule_id}", headers=admin)
            ).json()
            assert schedule["status"] != "failed", schedule
            return hold["status"] == "released" and schedule["status"] == "completed"

        await until(settled, "the release and the payout", 30)
        sent = await transfers_to(stripe, destination)

    assert len(sent) == 1, sent
    stripe_change = await balance(stack_api, auth, payouts.STRIPE_ACCOUNT) - stripe_before
    assert stripe_change == sum(m["amount"] for m in sent) == amount
    assert await balance(stack_api, auth, "escrow") == escrow_before
    assert await balance(stack_api, auth, f"payee:{payee}") == 0

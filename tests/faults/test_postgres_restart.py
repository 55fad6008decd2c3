"""PostgreSQL restarted mid-run (a crash, SIGKILL, then recovery from its WAL; at the full
size also a fast shutdown) while a batch payout runs and holds are released and paid out:
the activities that met the outage are retried and everything completes once; meanwhile
the API answers every request it cannot serve with a 503 in the error envelope, never a
500 or a stack trace, and neither the API nor the worker process dies."""

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.faults.audit import report
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.faults.workloads import (
    admin_headers,
    audit_batch_and_payouts,
    batch_and_payouts_final,
    batch_items,
    batch_progress,
    create_held_payouts,
    held_payouts_progress,
    start_batch,
)
from tests.fixtures.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# Words of a stack trace or of the driver that must never reach a client.
LEAKS = ("Traceback", "psycopg", "sqlalchemy", 'File "', "OperationalError")


async def test_a_postgres_restart_is_retried_and_the_api_answers_503(
    stack: FaultStack, scale: Scale, rng: random.Random
) -> None:
    tag = f"pg-{rng.randrange(16**6):06x}"
    sessions = stack.sessions()
    started = time.monotonic()
    admin = admin_headers(stack.settings)
    async with stack.api() as api, stack.sandbox() as sandbox:
        held = await create_held_payouts(
            api, sandbox, stack.settings, rng, tag, scale.pg_holds, due_in=scale.due_in
        )
        items = batch_items(rng, tag, scale.pg_batch_items, chain_share=0.05)
        batch = await start_batch(api, sandbox, sessions, stack.settings, items, f"{tag}-partner")
        total = len(batch.items) + 2 * len(held)
        # Read once PostgreSQL is away, the last figures come from this cache.
        last = {"progress": 0.0}

        async def progress() -> float:
            released, paid = await held_payouts_progress(sessions, held)
            last["progress"] = (await batch_progress(sessions, batch) + released + paid) / total
            return last["progress"]

        answers: Counter[str] = Counter()
        moments = []
        for restart, point in enumerate(
            sorted(rng.uniform(0.1, 0.7) for _ in range(scale.pg_restarts))
        ):

            async def reached(point: float = point) -> bool:
                return await progress() >= point

            await until(reached, f"{point:.0%} of the work", scale.patience, every=0.2)
            assert last["progress"] < 1, "the work ended before PostgreSQL could be restarted"
            how = ["kill", "stop"][restart % 2]
            stack.kill("postgres") if how == "kill" else stack.stop("postgres")
            went = time.monotonic()
            moments.append(f"{how} at {last['progress']:.0%} done")
            while time.monotonic() - went < scale.pg_outage_seconds:
                answers.update(await answers_while_down(api, admin, tag, batch.batch_id))
                await asyncio.sleep(0.3)
            await stack.start_part("postgres")
            for part in ("api", "worker"):
                [process] = [r.process for r in stack.supervisor.running if r.part.name == part]
                assert process.poll() is None, f"the {part} died with PostgreSQL"

        await until(
            lambda: batch_and_payouts_final(sessions, batch, held),
            "the batch, the releases and the payouts",
            scale.patience,
            every=1,
        )
        elapsed = time.monotonic() - started
        # The answers to what was asked during the outage: served now.
        assert (await api.get("/api/v1/escrow-holds", headers=admin)).status_code == 200

        notes = (
            f"restarts: {', '.join(moments)} ({scale.pg_outage_seconds:.0f}s"
            f" each); API meanwhile: {dict(answers)}; {elapsed:.0f}s"
        )
        figures = await audit_batch_and_payouts(
            "PostgreSQL restarted", notes, batch, held, sandbox, sessions, stack.settings
        )
    for each in figures:
        report(each)
        each.check()


async def answers_while_down(
    api: httpx.AsyncClient, admin: dict[str, str], tag: str, batch_id: str
) -> Counter[str]:
    """A read, a list, and a create under an Idempotency-Key (the key is checked in the
    database before the route runs): each a 503 in the envelope, nothing of the cause."""
    seen: Counter[str] = Counter()
    requests = [
        api.build_request("GET", f"/api/v1/transfers/batch/{batch_id}", headers=admin),
        api.build_request("GET", "/api/v1/escrow-holds", headers=admin),
        api.build_request(
            "POST",
            "/api/v1/escrow-holds",
            headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "payer_id": f"{tag}-payer-x",
                "payee_id": f"{tag}-payee-x",
                "amount": 100,
                "currency": "USD",
                "reason": "guarantee_period",
                "release_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            },
        ),
    ]
    for request in requests:
        answer = await api.send(request)
        name = f"{request.method} {answer.status_code}"
        # PostgreSQL is away until the test starts it again: nothing else may come back.
        assert answer.status_code == 503, f"{request.url}: {answer.status_code} {answer.text}"
        body = json.loads(answer.text)
        assert set(body) == {"error"}, body
        assert {"type", "code", "message", "param"} <= set(body["error"]), body
        assert not any(leak in answer.text for leak in LEAKS), answer.text
        assert answer.headers.get("retry-after"), dict(answer.headers)
        seen[f"{name} {body['error']['code']}"] += 1
    return seen

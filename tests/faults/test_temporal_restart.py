"""The Temporal dev server stopped and started again mid-run, with its persisted database
(``--db-filename``, as ``make run`` starts it): the timers of escrow holds and payout
schedules that came due while it was away all fire once it is back, each hold released and
each payout paid exactly once. Meanwhile the API answers 503 in the error envelope where it
needs Temporal, and ``/healthz`` names it."""

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.faults.audit import MovementAudit, report
from tests.faults.scale import Scale
from tests.faults.stack import FaultStack
from tests.faults.workloads import (
    admin_headers,
    audit_held_payouts,
    create_held_payouts,
    held_payouts_progress,
    payout_failures,
    post_retrying,
)
from tests.fixtures.waiting import until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# Seconds Temporal stays up between two outages (the full size restarts it twice).
UP_BETWEEN = 5
# A generous guess of the time to create one hold with its payout (the due dates are set
# before: the timers must still be ahead when Temporal goes away).
CREATE_SECONDS = 0.3


async def test_timers_due_while_temporal_is_down_fire_after_it_restarts(
    stack: FaultStack, scale: Scale, rng: random.Random
) -> None:
    tag = f"tmp-{rng.randrange(16**6):06x}"
    sessions = stack.sessions()
    count, outage = scale.restart_holds, scale.temporal_outage_seconds
    # The due dates spread over the outages, each outage `outage` long after `UP_BETWEEN`.
    first_down = datetime.now(UTC) + timedelta(seconds=5 + count * CREATE_SECONDS)
    span = scale.temporal_restarts * (outage + UP_BETWEEN)

    def due_at(i: int) -> datetime:
        return first_down + timedelta(seconds=span * (i + 0.5) / count)

    started = time.monotonic()
    admin = admin_headers(stack.settings)
    async with stack.api() as api, stack.sandbox() as sandbox:
        held = await create_held_payouts(
            api, sandbox, stack.settings, rng, tag, count, due_at=due_at
        )
        far = await post_retrying(
            api,
            "/api/v1/escrow-holds",
            {
                "payer_id": f"{tag}-payer-far",
                "payee_id": f"{tag}-payee-far",
                "amount": 100,
                "currency": "USD",
                "reason": "guarantee_period",
                "release_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
            admin,
        )
        outages: list[tuple[datetime, datetime]] = []
        answers: list[str] = []
        for restart in range(scale.temporal_restarts):
            down_at = first_down + timedelta(seconds=restart * (outage + UP_BETWEEN))
            await asyncio.sleep(max(0, (down_at - datetime.now(UTC)).total_seconds()))
            how = ["kill", "stop"][restart % 2]  # SIGKILL first (a crash), then SIGTERM
            went = datetime.now(UTC)
            stack.kill("temporal") if how == "kill" else stack.stop("temporal")
            answers += await answers_while_down(api, admin, far["id"])
            await asyncio.sleep(max(0, outage - (datetime.now(UTC) - went).total_seconds()))
            await stack.start_part("temporal")
            outages.append((went, datetime.now(UTC)))

        async def finished() -> bool:
            released, paid = await held_payouts_progress(sessions, held)
            return released == paid == len(held)

        await until(finished, "every release and payout", scale.patience, every=1)
        assert await payout_failures(sessions, held) == []
        # The refused release changed nothing.
        after = await api.get(f"/api/v1/escrow-holds/{far['id']}", headers=admin)
        assert after.json()["status"] == "active", after.text

        due_while_down = sum(
            1 for item in held if any(down <= item.due <= up for down, up in outages)
        )
        assert due_while_down > 0, "no timer came due while Temporal was away"
        audit = MovementAudit(f"Temporal restarted x{len(outages)}: {len(held)} holds, payouts")
        await audit_held_payouts(audit, held, sandbox, sessions)
    figures = audit.figures(
        f"{2 * due_while_down} timers came due while it was down"
        f" ({', '.join(f'{(up - down).total_seconds():.0f}s' for down, up in outages)});"
        f" API meanwhile: {', '.join(sorted(set(answers)))}; {time.monotonic() - started:.0f}s"
    )
    report(figures)
    figures.check()


async def answers_while_down(
    api: httpx.AsyncClient, admin: dict[str, str], hold_id: str
) -> list[str]:
    """What the API answers with Temporal away: ``/healthz`` degraded naming it, and a
    release (a signal to the hold's workflow) a 503 in the envelope, nothing done."""
    health = await api.get("/healthz")
    assert health.status_code == 503, health.text
    assert health.json()["components"]["temporal"]["ok"] is False, health.text
    release = await api.post(f"/api/v1/escrow-holds/{hold_id}/release", headers=admin, json={})
    assert release.status_code == 503, release.text
    error = release.json()["error"]
    assert set(error) >= {"type", "code", "message", "param"}, error
    assert "Traceback" not in release.text
    return [f"healthz 503, release {release.status_code} {error['code']}"]

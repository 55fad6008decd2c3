"""Per-client rate limits of ticket issuing (``POST /tickets``) and verification
(``POST /tickets/verify`` and ``/scans``): a token bucket per client (the bearer token's
subject, else the address), 429 in the error envelope with ``Retry-After`` past the limit,
and one client's limit leaves the others alone."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from api.rate_limit import RateLimitMiddleware, TokenBuckets
from domain.actors import Role
from models.idempotency import IdempotencyKey
from settings import Settings
from tests.security.conftest import bearer, fast_failing_api
from tests.security.world import NOW

ISSUE_LIMIT, VERIFY_LIMIT = 3, 2
ISSUE, VERIFY, SCANS = "/api/v1/tickets", "/api/v1/tickets/verify", "/api/v1/tickets/scans"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_a_minute_and_refills_at_the_steady_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(6, clock=clock)  # 6 a minute: one every 10 s
    assert [buckets.take("a") for _ in range(6)] == [0.0] * 6
    assert buckets.take("a") == pytest.approx(10.0)
    assert buckets.take("b") == 0.0  # another client is not held up
    clock.now += 4
    assert buckets.take("a") == pytest.approx(6.0)
    clock.now += 6
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(10.0)
    clock.now += 3600  # idle: full again, never more than a minute's worth
    assert [buckets.take("a") for _ in range(6)] == [0.0] * 6
    assert buckets.take("a") > 0


def test_buckets_that_refilled_are_forgotten() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(60, clock=clock)
    for client in range(1024):  # where it first looks for buckets to forget
        buckets.take(f"ip:10.0.{client // 256}.{client % 256}")
    buckets.take("still spending")
    assert len(buckets) == 1025  # none had refilled yet
    clock.now += 61  # all full again
    for client in range(1024, 2048):
        buckets.take(f"ip:10.0.{client // 256}.{client % 256}")
    assert len(buckets) < 1100


def test_a_limit_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(0)


async def test_retry_after_is_the_wait_in_whole_seconds_and_holds(
    api_settings: Settings,
) -> None:
    """The middleware on its own, with a clock the test moves."""
    clock = FakeClock()
    limited = api_settings.model_copy(update={"rate_limit_ticket_verify_per_minute": 4})

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = RateLimitMiddleware(ok, settings=limited, clock=clock)
    headers = bearer(limited, Role.DRIVER, "drv_1")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        for _ in range(4):
            assert (await client.post(VERIFY, headers=headers)).status_code == 200
        refused = await client.post(VERIFY, headers=headers)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "15"  # 4 a minute: one every 15 s
        clock.now += 14
        assert (await client.post(VERIFY, headers=headers)).headers["retry-after"] == "1"
        clock.now += 1
        assert (await client.post(VERIFY, headers=headers)).status_code == 200
        # Other methods and other paths are not counted against it.
        for _ in range(5):
            assert (await client.get(VERIFY, headers=headers)).status_code == 200
            assert (await client.post("/api/v1/tickets/keys", headers=headers)).status_code == 200


@pytest.fixture(scope="module")
async def limited_api(api_settings: Settings) -> AsyncIterator[AsyncClient]:
    limited = api_settings.model_copy(
        update={
            "rate_limit_ticket_issue_per_minute": ISSUE_LIMIT,
            "rate_limit_ticket_verify_per_minute": VERIFY_LIMIT,
        }
    )
    async with fast_failing_api(limited) as client:
        yield client


def ticket(booking: str) -> dict[str, str]:
    return {
        "booking_id": booking,
        "user_id": "cus_a",
        "driver_id": "drv_a",
        "valid_from": NOW.isoformat(),
        "valid_until": (NOW + timedelta(hours=1)).isoformat(),
    }


def assert_limited(response: Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limited",
            "message": response.json()["error"]["message"],
            "param": None,
        }
    }
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60 // limit


async def test_issuing_is_limited_per_client(
    limited_api: AsyncClient, api_settings: Settings
) -> None:
    issuer = bearer(api_settings, Role.PLATFORM_ADMIN, "booking-svc-1")
    # Whatever each answer is (here no Temporal: the row is made, then a 503), each counts.
    for n in range(ISSUE_LIMIT):
        answer = await limited_api.post(ISSUE, json=ticket(f"bk-limit-{n}"), headers=issuer)
        assert answer.status_code != 429, answer.text
    assert_limited(await limited_api.post(ISSUE, json=ticket("bk-x"), headers=issuer), ISSUE_LIMIT)
    # Another client, and the same client's other limit and other routes, are not held up.
    other = bearer(api_settings, Role.PLATFORM_ADMIN, "booking-svc-2")
    assert (await limited_api.post(ISSUE, json={}, headers=other)).status_code == 400
    verify = {"payload": "not-a-ticket", "driver_id": "drv_a"}
    assert (await limited_api.post(VERIFY, json=verify, headers=issuer)).status_code == 200
    assert (await limited_api.get("/api/v1/tickets", headers=issuer)).status_code == 200


async def test_verifying_is_limited_per_driver_across_verify_and_scans(
    limited_api: AsyncClient, api_settings: Settings
) -> None:
    driver = bearer(api_settings, Role.DRIVER, "drv_limit")
    verify = {"payload": "not-a-ticket", "driver_id": "drv_limit"}
    scan = {
        "scans": [
            {
                "nonce": "nonce-limit-1",
                "payload": "not-a-ticket",
                "driver_id": "drv_limit",
                "scanned_at": NOW.isoformat(),
            }
        ]
    }
    assert (await limited_api.post(VERIFY, json=verify, headers=driver)).status_code == 200
    assert (await limited_api.post(SCANS, json=scan, headers=driver)).status_code == 200
    assert_limited(await limited_api.post(VERIFY, json=verify, headers=driver), VERIFY_LIMIT)
    assert_limited(await limited_api.post(SCANS, json=scan, headers=driver), VERIFY_LIMIT)
    other = bearer(api_settings, Role.DRIVER, "drv_other")
    other_verify = {**verify, "driver_id": "drv_other"}
    assert (await limited_api.post(VERIFY, json=other_verify, headers=other)).status_code == 200


async def test_without_a_valid_token_the_address_is_the_client(
    limited_api: AsyncClient, api_settings: Settings
) -> None:
    """Missing and forged tokens from one address share its bucket (guessing tokens is
    limited too); a valid token from that address still has its own."""
    forged = {"Authorization": "Bearer forged.token.here"}
    answers = [(await limited_api.post(VERIFY, json={})).status_code for _ in range(VERIFY_LIMIT)]
    assert answers == [401] * VERIFY_LIMIT
    assert_limited(await limited_api.post(VERIFY, json={}, headers=forged), VERIFY_LIMIT)
    assert_limited(await limited_api.post(VERIFY, json={}), VERIFY_LIMIT)
    driver = bearer(api_settings, Role.DRIVER, "drv_same_address")
    body = {"payload": "not-a-ticket", "driver_id": "drv_same_address"}
    assert (await limited_api.post(VERIFY, json=body, headers=driver)).status_code == 200


async def test_a_refused_request_stores_no_idempotency_key(
    limited_api: AsyncClient,
    api_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
) -> None:
    """The 429 comes before the idempotency middleware: the same key may be retried after
    the wait (Stripe does not keep 429s either)."""
    driver = bearer(api_settings, Role.DRIVER, "drv_idem")
    body = {"payload": "not-a-ticket", "driver_id": "drv_idem"}
    for n in range(VERIFY_LIMIT):
        headers = {**driver, "Idempotency-Key": f"verify-{n}"}
        assert (await limited_api.post(VERIFY, json=body, headers=headers)).status_code == 200
    refused = await limited_api.post(
        VERIFY, json=body, headers={**driver, "Idempotency-Key": "verify-refused"}
    )
    assert_limited(refused, VERIFY_LIMIT)
    async with security_db() as session:
        keys = await session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.scope == "driver:drv_idem")
        )
        refused_keys = await session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.key == "verify-refused")
        )
    assert (keys, refused_keys) == (VERIFY_LIMIT, 0)


async def test_the_default_limits_are_generous_and_zero_turns_a_limit_off(
    api_settings: Settings,
) -> None:
    fields = Settings.model_fields
    # Above what the benchmarks ask of one client (benchmarks/tickets.py: 400 tickets from one
    # booking service in a burst, a few scans per driver).
    assert fields["rate_limit_ticket_issue_per_minute"].default >= 1000
    assert fields["rate_limit_ticket_verify_per_minute"].default >= 100
    off = api_settings.model_copy(
        update={"rate_limit_ticket_issue_per_minute": 0, "rate_limit_ticket_verify_per_minute": 0}
    )
    assert RateLimitMiddleware(lambda *_: None, settings=off).limits == {}  # type: ignore[arg-type]

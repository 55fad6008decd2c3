"""Bad input, by hand, on the endpoints that create money movements and tickets: payments,
refunds, escrow holds, payout schedules, transfer batches, plans, subscriptions, commission
rules and tickets.

Each endpoint has a valid body (accepted last, as the control that the refusals were about
the one thing changed), and each case below changes one thing of it: malformed or non-object
JSON, a body that is not JSON, unknown fields, a NUL character in a text, negative, zero,
oversized, fractional, boolean and string amounts, unsupported currencies (``XXX``,
``usd ``, ...), wrong enum values, and a 10 MB body (declared, or streamed without a
length). Every one must be a 4xx in the error envelope (400, or 413 for the huge bodies,
refused before the body is read) that changed no table of the database.

The last tests check that the API's own answers are in the envelope too: unknown routes
(404), methods (405), a missing token (401), a wrong role (403), bad path and query values.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.body_limit import MAX_REQUEST_BYTES
from domain.ledger import MAX_POSTING_AMOUNT
from integrations.stripe_customers import customer_idempotency_key
from settings import Settings
from tests.api.billing import add_method
from tests.api.tables import Tables
from tests.api.test_payments_api import drive_to
from tests.conftest import TokenFactory, in_process_api
from tests.fixtures.stripe_sandbox import StripeSandbox

Body = dict[str, Any]
Path = tuple[str | int, ...]
HUGE = 10_000_000  # bytes
CHUNK = 64 * 1024
LATER = datetime.now(UTC) + timedelta(days=30)

BAD_AMOUNTS: list[Any] = [-1, 0, MAX_POSTING_AMOUNT + 1, 10**30, 12.5, 100.0, "100", True, None]
BAD_CURRENCIES: list[Any] = ["XXX", "usd ", " USD", "US", "", "€UR", "USDOLLARS", "U$D", 840, None]


@dataclass(frozen=True)
class Endpoint:
    path: str
    # The valid body, made once what it refers to exists (a payment method, a payment, ...).
    valid: Callable[["Setup"], Awaitable[Body]]
    amounts: list[Path] = field(default_factory=list)
    currencies: list[Path] = field(default_factory=list)
    # Enum fields and values they do not take.
    enums: dict[Path, list[Any]] = field(default_factory=dict)
    # Other fields and values each refused (a text field gets a NUL character).
    others: dict[Path, list[Any]] = field(default_factory=dict)
    # What the valid body gets (tickets: 503 while Temporal is down, the ticket stored; the
    # same booking again returns it and starts its workflow).
    accepted: frozenset[int] = frozenset({201})


@dataclass
class Setup:
    api: AsyncClient
    admin: dict[str, str]
    db: async_sessionmaker[AsyncSession]

    async def created(self, path: str, body: Body) -> Body:
        response = await self.api.post(path, json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        made: Body = response.json()
        return made


async def payment_body(setup: Setup) -> Body:
    await add_method(setup.db, "cust-bad")
    return {"customer_id": "cust-bad", "amount": 10_000, "currency": "USD"}


async def refund_body(setup: Setup) -> Body:
    await add_method(setup.db, "cust-bad")
    payment = await setup.created("/api/v1/payments", await payment_body(setup))
    await drive_to(setup.db, payment["id"], "completed")
    return {"payment_id": payment["id"], "amount": 1_000, "reason": "requested_by_customer"}


async def hold_body(_: Setup) -> Body:
    return {
        "payer_id": "client-1",
        "payee_id": "recruiter-1",
        "amount": 50_000,
        "currency": "EUR",
        "reason": "guarantee_period",
        "release_at": LATER.isoformat(),
    }


async def schedule_body(_: Setup) -> Body:
    return {
        "payee_id": "recruiter-1",
        "destination": "acct_123ABC",
        "amount": 25_000,
        "currency": "EUR",
        "trigger_event": "guarantee_period_end",
        "scheduled_for": LATER.isoformat(),
    }


async def batch_body(_: Setup) -> Body:
    item = {"reference": "ref-1", "destination": "acct_1A2B", "amount": 1_000, "currency": "USD"}
    return {"partner_id": "partner-bad", "items": [item]}


async def plan_body(_: Setup) -> Body:
    return {"name": "Basic", "amount": 1_500, "currency": "USD", "interval": "month"}


async def subscription_body(setup: Setup) -> Body:
    await add_method(setup.db, "cust-bad")
    plan = await setup.created("/api/v1/plans", await plan_body(setup))
    return {"plan_id": plan["id"], "customer_id": "cust-bad"}


async def rule_body(_: Setup) -> Body:
    return {"scope": "default", "percentage_bps": 500, "fixed_amount": 30, "currency": "USD"}


async def ticket_body(_: Setup) -> Body:
    now = datetime.now(UTC)
    return {
        "booking_id": "bk-bad-1",
        "user_id": "rider-1",
        "driver_id": "drv-1",
        "trip": {"from": "A", "to": "B"},
        "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(hours=2)).isoformat(),
    }


NUL = "x\x00y"
ENDPOINTS: dict[str, Endpoint] = {
    "payments": Endpoint(
        "/api/v1/payments",
        payment_body,
        amounts=[("amount",)],
        currencies=[("currency",)],
        others={
            ("customer_id",): [NUL, "", "c" * 201, 42],
            ("payment_method_id",): ["pm_not_a_uuid"],
            ("country",): ["USA", "1"],
            ("capture_delay_seconds",): [-1, 7 * 86_400 + 1],
            ("allocations",): [[{"vendor_id": "v-1", "amount": -5}], "all"],
            ("metadata",): [{"k": 1}, ["k"]],
        },
    ),
    "refunds": Endpoint(
        "/api/v1/refunds",
        refund_body,
        amounts=[("amount",)],
        enums={("reason",): ["changed_my_mind", "DUPLICATE", 1]},
        others={("payment_id",): ["pay_1", None], ("note",): [NUL, "n" * 1001]},
    ),
    "escrow holds": Endpoint(
        "/api/v1/escrow-holds",
        hold_body,
        amounts=[("amount",)],
        currencies=[("currency",)],
        enums={("reason",): ["because", "GUARANTEE_PERIOD", None]},
        others={
            ("payer_id",): [NUL, ""],
            ("release_at",): ["tomorrow", "2030-01-01T00:00:00"],
            ("required_approvals",): [-1, 21],
        },
    ),
    "payout schedules": Endpoint(
        "/api/v1/payout-schedules",
        schedule_body,
        amounts=[("amount",)],
        currencies=[("currency",)],
        enums={("trigger_event",): ["payday", "Manual", None]},
        others={
            ("destination",): ["bank-123", "acct_", NUL],
            ("max_attempts",): [0, 21],
            ("backoff_seconds",): [0, 86_401],
            ("hold_id",): ["hold-1"],
        },
    ),
    "transfer batches": Endpoint(
        "/api/v1/transfers/batch",
        batch_body,
        amounts=[("items", 0, "amount")],
        currencies=[("items", 0, "currency")],
        others={
            ("partner_id",): [NUL, "", None],
            ("items",): [[], "items", [None]],
            ("items", 0, "reference"): ["has space", "", "r" * 101],
            ("items", 0, "destination"): ["bank-1", "0x123", NUL],
            ("items", 0, "surprise"): ["unknown field of an item"],
        },
    ),
    "plans": Endpoint(
        "/api/v1/plans",
        plan_body,
        amounts=[("amount",)],
        currencies=[("currency",)],
        enums={("interval",): ["fortnight", "Month", "", 30]},
        others={
            ("name",): [NUL, "", "   "],
            ("interval_count",): [0, 366],
            ("trial_days",): [-1, 731],
        },
    ),
    "subscriptions": Endpoint(
        "/api/v1/subscriptions",
        subscription_body,
        others={
            ("plan_id",): ["basic", None],
            ("customer_id",): [NUL, ""],
            ("trial_days",): [-1, 731, 1.5],
        },
    ),
    "commission rules": Endpoint(
        "/api/v1/commission-rules",
        rule_body,
        amounts=[("fixed_amount",)],
        currencies=[("currency",)],
        enums={("scope",): ["global", "Default", None]},
        others={
            ("percentage_bps",): [-1, 10_001, 2.5, True],
            ("priority",): [-1, 1_000_001],
            ("effective_from",): ["now", "2030-01-01T00:00:00"],
            ("description",): [NUL],
        },
    ),
    "tickets": Endpoint(
        "/api/v1/tickets",
        ticket_body,
        others={
            ("booking_id",): ["bk 1", "", "b" * 41, NUL],
            ("user_id",): ["", NUL],
            ("valid_until",): ["2000-01-01T00:00:00Z", "soon"],
            ("trip",): ["A to B", [1]],
        },
        accepted=frozenset({201, 503}),
    ),
}
# A fixed amount of 0 is a valid commission rule (percentage only); a refund without an
# amount (null) refunds all that is left.
ZERO_ALLOWED = {("commission rules", ("fixed_amount",))}
NULL_ALLOWED = {("refunds", ("amount",))}


@dataclass(frozen=True)
class Case:
    label: str
    body: Body | None = None
    raw: bytes | None = None
    content_type: str = "application/json"


def changed(body: Body, path: Path, value: Any) -> Body:
    """A deep copy of ``body`` with the value at ``path`` replaced (or added)."""
    copy: Any = _copy(body)
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    result: Body = copy
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def cases(name: str, endpoint: Endpoint, valid: Body) -> list[Case]:
    made = [
        Case("malformed JSON", raw=b'{"amount": 100,'),
        Case("a JSON array", raw=b"[]"),
        Case("a JSON string", raw=b'"hello"'),
        Case("JSON null", raw=b"null"),
        Case("an empty body", raw=b""),
        Case("invalid UTF-8", raw=b'{"currency": "\xff\xfe"}'),
        Case(
            "a form body",
            raw=b"amount=100&currency=USD",
            content_type="application/x-www-form-urlencoded",
        ),
        Case("text", raw=b"amount: 100", content_type="text/plain"),
        Case("an unknown field", changed(valid, ("surprise",), "unexpected")),
        Case("a card number", changed(valid, ("card_number",), "4242424242424242")),
    ]
    for path in endpoint.amounts:
        for value in BAD_AMOUNTS:
            if (value == 0 and (name, path) in ZERO_ALLOWED) or (
                value is None and (name, path) in NULL_ALLOWED
            ):
                continue
            made.append(Case(f"{path} = {value!r}", changed(valid, path, value)))
    for path in endpoint.currencies:
        for value in BAD_CURRENCIES:
            made.append(Case(f"{path} = {value!r}", changed(valid, path, value)))
    for path, values in {**endpoint.enums, **endpoint.others}.items():
        for value in values:
            made.append(Case(f"{path} = {value!r}"[:80], changed(valid, path, value)))
    return made


def envelope_problem(response: Response) -> str | None:
    """Why the answer is not the error envelope, if it is not."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(body) != {"error"}:
        return f"not the envelope: {body!r}"[:300]
    for key in ("type", "code", "message"):
        if not isinstance(error.get(key), str) or not error[key]:
            return f"error.{key} is not a text: {body!r}"[:300]
    if "param" not in error or not isinstance(error["param"], str | None):
        return f"error.param is missing: {body!r}"[:300]
    return None


def assert_envelope(response: Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    problem = envelope_problem(response)
    assert problem is None, problem
    if code is not None:
        assert response.json()["error"]["code"] == code, response.text


class Counted:
    """A request body of ``size`` bytes that counts what the server read of it."""

    def __init__(self, size: int) -> None:
        self.size, self.read = size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"x" * CHUNK
        while self.read < self.size:
            part = chunk[: self.size - self.read]
            self.read += len(part)
            yield part


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_bad_input_is_a_4xx_in_the_envelope_and_changes_nothing(
    name: str,
    api: AsyncClient,
    auth: TokenFactory,
    db: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    endpoint = ENDPOINTS[name]
    admin = auth("platform_admin", sub="ops-bad-input")
    valid = await endpoint.valid(Setup(api, admin, db))
    tables = Tables(database_url)
    failures: list[str] = []

    def judge(label: str, response: Response, statuses: set[int]) -> None:
        problems = []
        if response.status_code not in statuses:
            problems.append(f"status {response.status_code}, expected {sorted(statuses)}")
        if (problem := envelope_problem(response)) is not None:
            problems.append(problem)
        if touched := tables.changed():
            problems.append(f"changed {', '.join(touched)}")
        if problems:
            failures.append(f"{label}: {'; '.join(problems)}\n    {response.text[:300]}")

    try:
        for case in cases(name, endpoint, valid):
            if case.raw is not None:
                headers = {**admin, "Content-Type": case.content_type}
                response = await api.post(endpoint.path, content=case.raw, headers=headers)
            else:
                response = await api.post(endpoint.path, json=case.body, headers=admin)
            judge(case.label, response, {400})

        # 10 MB, declared: refused before any of it is read.
        declared = Counted(HUGE)
        response = await api.post(
            endpoint.path,
            content=declared,
            headers={**admin, "Content-Type": "application/json", "Content-Length": str(HUGE)},
        )
        judge("10 MB with its Content-Length", response, {413})
        assert declared.read <= CHUNK, f"{declared.read} bytes read of a body refused at once"
        # 10 MB, streamed without a length: refused once past the limit, not read to the end.
        streamed = Counted(HUGE)
        response = await api.post(
            endpoint.path,
            content=streamed,
            headers={**admin, "Content-Type": "application/json"},
        )
        judge("10 MB streamed", response, {413, 400})
        assert streamed.read <= MAX_REQUEST_BYTES + CHUNK, f"{streamed.read} bytes read"

        # The control: the valid body is accepted and stored.
        response = await api.post(endpoint.path, json=valid, headers=admin)
        if response.status_code not in endpoint.accepted or not tables.changed():
            failures.append(f"the valid body: {response.status_code} {response.text[:300]}")
    finally:
        tables.close()
    assert not failures, f"{len(failures)} of the bad inputs were not refused cleanly:\n" + (
        "\n".join(failures)
    )


async def test_the_api_answers_its_own_errors_in_the_envelope(
    api: AsyncClient, auth: TokenFactory
) -> None:
    admin = auth("platform_admin")
    # Unknown routes and methods.
    assert_envelope(await api.get("/api/v1/nothing-here", headers=admin), 404, "route_not_found")
    assert_envelope(await api.get("/", headers=admin), 404, "route_not_found")
    assert_envelope(await api.delete("/api/v1/plans", headers=admin), 405, "method_not_allowed")
    assert_envelope(await api.put("/api/v1/payments", headers=admin), 405, "method_not_allowed")
    # FastAPI's own validation (a 422 by default) is a 400 in the envelope, naming the field.
    response = await api.get("/api/v1/payments/not-a-uuid", headers=admin)
    assert_envelope(response, 400, "parameter_invalid")
    assert response.json()["error"]["param"] == "payment_id"
    response = await api.get("/api/v1/payments", params={"limit": "many"}, headers=admin)
    assert_envelope(response, 400, "parameter_invalid")
    assert response.json()["error"]["param"] == "limit"
    response = await api.post("/api/v1/plans", json={"amount": 100}, headers=admin)
    assert_envelope(response, 400, "parameter_invalid")
    response = await api.post(
        "/api/v1/plans", content=b'{"name": ', headers={**admin, "Content-Type": "application/json"}
    )
    assert_envelope(response, 400, "parameter_invalid")
    # Who may call: no token, a bad token, a role that may not.
    assert_envelope(await api.get("/api/v1/payments"), 401)
    bad_token = {"Authorization": "Bearer not.a.token"}
    assert_envelope(await api.get("/api/v1/payments", headers=bad_token), 401)
    driver = auth("driver")
    assert_envelope(await api.post("/api/v1/plans", json={}, headers=driver), 403)
    # An entity that does not exist.
    missing = f"/api/v1/payments/{uuid.uuid4()}"
    assert_envelope(await api.get(missing, headers=admin), 404)
    # A huge body to any route, even one that takes none, and with an Idempotency-Key.
    huge = {**admin, "Content-Length": str(HUGE), "Idempotency-Key": "k-huge"}
    response = await api.post("/api/v1/anchors/run", content=Counted(HUGE), headers=huge)
    assert_envelope(response, 413, "request_too_large")


async def test_a_customer_id_beyond_ascii_adds_a_card_instead_of_a_provider_error(
    settings: Settings, stripe_sandbox: StripeSandbox, auth: TokenFactory
) -> None:
    """The Stripe customer's idempotency key travels in a header: a customer id the header
    cannot carry once made every card of that customer a 503 "retry shortly", forever."""
    on_sandbox = settings.model_copy(
        update={"stripe_api_base": stripe_sandbox.url, "stripe_api_key": stripe_sandbox.api_key}
    )
    customer = f"Zoë-Łukasz-{uuid.uuid4().hex[:6]}"
    async with in_process_api(on_sandbox) as api:
        response = await api.post(
            "/api/v1/payment-methods",
            json={"token": "pm_card_visa", "customer_id": customer},
            headers=auth("platform_admin"),
        )
    assert response.status_code == 201, response.text
    assert response.json()["customer_id"] == customer
    assert customer_idempotency_key("cust-1") == "customer-cust-1"
    assert customer_idempotency_key(customer).isascii()

"""SQL injection through filters: every string parameter of every GET operation in the
OpenAPI document (query filters such as ``status``, ``partner_id``, ``reference``,
``currency``, ``vendor_id``, cursors such as ``starting_after``, and text path parameters)
gets classic payloads, NUL bytes and look-alike Unicode. Each answer is a 4xx or a 200 that
matches nothing (an empty list, an export with its header only), never a 5xx, never slow
(no ``pg_sleep`` ran), and afterwards every table is there with the rows it had.

Admins are the callers (they see everything, so a filter that stopped filtering would show);
a customer then sends the same payloads to the routes customers use, and never gets another
customer's objects."""

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from domain.actors import Role
from settings import Settings
from tests.security.conftest import bearer
from tests.security.world import World

PAYLOADS = [
    # A tautology behind a LIKE wildcard, then look-alike quotes, right-to-left mark, emoji.
    "%' OR 1=1 -- \u02bc OR \uff07\uff11\uff07=\uff07\uff11 \u202e\U0001f600",
    "x'); DROP TABLE payments; SELECT pg_sleep(10); --",  # stacked statements, a timing probe
    "a\x00b' OR 'a'='a",  # a NUL byte: PostgreSQL refuses it in text
]
# A cursor is checked by shape (or pages after the text, for text keys): two are enough.
CURSOR_PAYLOADS = [PAYLOADS[0], PAYLOADS[2]]
# The customer pass checks scoping; the SQL payloads are already sent by the admin pass.
CUSTOMER_PAYLOADS = PAYLOADS[:1]
SLOW_SECONDS = 5.0
# Routes customers call, where the customer pass also runs.
CUSTOMER_PREFIXES = (
    "/api/v1/payments",
    "/api/v1/refunds",
    "/api/v1/payment-methods",
    "/api/v1/subscriptions",
    "/api/v1/invoices",
    "/api/v1/tickets",
    "/api/v1/markets",
)


def _is_text(schema: dict[str, Any]) -> bool:
    """A string parameter that is not a UUID or a date-time (those are refused by shape)."""
    options = [schema, *schema.get("anyOf", [])]
    if any("$ref" in option for option in options):
        return True  # an enum: it must refuse the payload, and does so cheaply
    return any(
        option.get("type") == "string" and option.get("format") not in ("uuid", "date-time")
        for option in options
    )


def targets(settings: Settings, world: World) -> Iterator[tuple[str, dict[str, str], str, str]]:
    """(path template, valid values of its path parameters, where, name) of each text
    parameter of each GET operation."""
    values = world.path_values()
    spec = create_app(settings).openapi()
    for template, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None or not template.startswith("/api/v1/"):
            continue
        names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
        valid = {name: values.get(name, "x") for name in names}
        for parameter in operation.get("parameters", []):
            if parameter["in"] in ("query", "path") and _is_text(parameter.get("schema", {})):
                yield template, valid, parameter["in"], parameter["name"]


def request_for(
    template: str, valid: dict[str, str], where: str, name: str, payload: str
) -> tuple[str, dict[str, str]]:
    """The url and query of one injection: into the query, or in place of a path value."""
    if where == "query":
        return template.format(**valid), {name: payload}
    return template.format(**{**valid, name: urllib.parse.quote(payload, safe="")}), {}


def check(answer: Response, elapsed: float, markers: list[str], *, cursor: bool) -> str | None:
    """Why the answer shows the payload did something, or None. A cursor over text keys
    (ledger account codes) legitimately pages on after any text, so only what it shows is
    checked, not how much."""
    status = answer.status_code
    if status >= 500:
        return f"{status} {answer.text[:200]}"
    if elapsed > SLOW_SECONDS:
        return f"took {elapsed:.1f} s: did the payload run?"
    if status not in (200, 400, 403, 404):
        return f"unexpected {status} {answer.text[:200]}"
    if status != 200:
        if "error" not in answer.json():
            return f"{status} is not in the error envelope"
        return None
    content_type = answer.headers.get("content-type", "")
    if content_type.startswith("text/csv"):
        rows = [line for line in answer.text.splitlines() if line.strip()]
        return None if len(rows) <= 1 else f"the export matched {len(rows) - 1} rows"
    body = answer.json()
    if cursor:
        pass
    elif isinstance(body, dict) and body.get("data"):
        return f"the filter matched {len(body['data'])} rows: {answer.text[:200]}"
    if isinstance(body, list) and body:
        return f"the filter matched {len(body)} rows: {answer.text[:200]}"
    leaked = [marker for marker in markers if marker in answer.text]
    return f"the answer shows {leaked}" if leaked else None


async def table_counts(db: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with db() as session:
        names = (
            await session.scalars(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
                )
            )
        ).all()
        return {
            name: int(await session.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0)
            for name in names
        }


async def injections(
    api: AsyncClient,
    settings: Settings,
    world: World,
    headers: dict[str, str],
    markers: list[str],
    prefixes: tuple[str, ...] = ("/api/v1/",),
    payloads: list[str] = PAYLOADS,
) -> list[str]:
    failures = []
    for template, valid, where, name in targets(settings, world):
        if not template.startswith(prefixes):
            continue
        cursor = name == "starting_after"
        for payload in CURSOR_PAYLOADS[: len(payloads)] if cursor else payloads:
            target, params = request_for(template, valid, where, name, payload)
            started = time.perf_counter()
            answer = await api.get(target, params=params, headers=headers)
            problem = check(answer, time.perf_counter() - started, markers, cursor=cursor)

            if problem:
                failures.append(f"GET {template} {where} {name}={payload!r}: {problem}")
    return failures


@pytest.mark.parametrize("role", [Role.PLATFORM_ADMIN, Role.CUSTOMER])
async def test_filters_do_not_run_what_they_are_given(
    security_api: AsyncClient,
    api_settings: Settings,
    security_db: async_sessionmaker[AsyncSession],
    world: World,
    role: Role,
) -> None:
    before = await table_counts(security_db)
    assert {"payments", "tickets", "ledger_postings"} <= set(before)
    if role is Role.PLATFORM_ADMIN:
        headers = bearer(api_settings, role, "ops")
        failures = await injections(security_api, api_settings, world, headers, markers=[])
    else:
        # cus_b: none of cus_a's objects may show, whatever the filter says.
        headers = bearer(api_settings, role, "cus_b")
        markers = [marker for marker, readers in world.private.items() if marker]
        failures = await injections(
            security_api,
            api_settings,
            world,
            headers,
            markers,
            CUSTOMER_PREFIXES,
            CUSTOMER_PAYLOADS,
        )
    assert not failures, f"{len(failures)} injections not refused:\n" + "\n".join(failures)
    assert await table_counts(security_db) == before

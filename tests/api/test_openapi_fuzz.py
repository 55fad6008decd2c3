"""Bad input, generated: schemathesis over every operation of the OpenAPI document.

Schemathesis generates each operation's cases from ``/openapi.json``: positive ones (valid by
the document) and negative ones (a path, query, header or body the document refuses: wrong
types, numbers out of range, unknown enum values, strings too long, missing required fields,
unknown fields where the model forbids them). They are sent in process, as a platform admin,
to the app on a fresh migrated database, with Temporal, Stripe and the chain unreachable, as
in every API test. Every answer must:

- not be a server error (schemathesis' ``not_a_server_error``): never a 500 or a 502. A 503
  (in the envelope, which the document gives every 5xx) only from the operations of
  ``MAY_BE_UNAVAILABLE``, which reach Temporal or a provider on generated input. The
  endpoints that signal a workflow reach Temporal only for an entity that exists, which a
  generated id never names: a 503 from them is a failure too;
- match what its operation documents for its status (``response_schema_conformance``): the
  model of a 2xx, the error envelope of every 4xx and 5xx;
- refuse a negative case with a 4xx (``negative_data_rejection``);
- when it is a 4xx, have changed nothing: every table holds the same rows as before.

Every failure is collected, then reported together. The cases are the same on every run
(derandomized, no example database) and bounded for CI: ``POSITIVE_EXAMPLES`` and
``NEGATIVE_EXAMPLES`` per operation, no shrinking, no deadline (about 45 s on 2 cores).

Schemathesis builds and judges the requests; httpx's ASGI transport (the other API tests'
client) sends them on an event loop of this test: schemathesis' own ASGI transport runs the
app on a thread of its own and is several times slower.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import schemathesis
from httpx import ASGITransport, AsyncClient, Response
from hypothesis import HealthCheck, Phase, given, reject
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
)

from api.app import create_app
from settings import Settings
from tests.api.tables import Tables
from tests.conftest import TokenFactory

BASE_URL = "http://tollgate.test"
POSITIVE_EXAMPLES = 6
NEGATIVE_EXAMPLES = 4
# Each answer of these waits for Stripe's client to give up (about a second): fewer cases.
SLOW_OPERATIONS = {"GET /api/v1/liquidity", "POST /api/v1/payment-methods"}
SLOW_EXAMPLES = 2

# The operations that may answer 503 here, and why: each reaches Temporal or a provider
# before answering, and none can be reached in these tests. Any other 5xx is a failure.
MAY_BE_UNAVAILABLE = {
    "GET /healthz": "reports the components, degraded (its own body, documented)",
    "POST /api/v1/anchors/run": "starts the anchoring workflow (Temporal)",
    "POST /api/v1/payment-methods": "attaches the card at Stripe",
    "GET /api/v1/liquidity": "reads the Stripe and chain balances",
    "POST /api/v1/tickets": "starts the ticket's workflow once it is stored (the same booking"
    " again returns the ticket and starts it)",
    "POST /api/v1/settlement-windows/{rail}/settle-now": "signals the rail's window workflow",
}


class InProcessApi:
    """The app with its lifespan, on an event loop this (synchronous) test drives, since
    hypothesis calls the test function synchronously."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(settings)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self.lifespan.__aenter__())
        # A crash is answered 500 by the app's error handler, which the checks then report.
        transport = ASGITransport(app=self.app, raise_app_exceptions=False)
        self.client = AsyncClient(transport=transport, base_url=BASE_URL)

    def send(self, request: requests.PreparedRequest) -> Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        assert isinstance(body, bytes | None), type(body)
        assert request.method is not None and request.url is not None
        headers = {
            name: value if isinstance(value, str) else value.decode("latin-1")
            for name, value in request.headers.items()
        }
        return self.loop.run_until_complete(
            self.client.request(request.method, request.url, headers=headers, content=body)
        )

    def get(self, path: str) -> Response:
        return self.loop.run_until_complete(self.client.get(path))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))
        self.loop.close()


@contextmanager
def in_process_api(settings: Settings) -> Iterator[InProcessApi]:
    api = InProcessApi(settings)
    try:
        yield api
    finally:
        api.close()


def prepared(case: Case, headers: dict[str, str]) -> requests.PreparedRequest:
    """The request as schemathesis' requests transport would send it."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    return requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs["headers"],
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()


def fixed_path_parameters(doc: dict[str, Any], path: str, method: str) -> dict[str, str]:
    """Plain string path parameters (no format, no enum): any text is valid there, so a
    negative case cannot be made of them; fixing them lets hypothesis spend its examples on
    the query and body instead of failing to negate a string."""
    parameters = doc["paths"][path][method.lower()].get("parameters", [])
    return {
        p["name"]: "x"
        for p in parameters
        if p["in"] == "path"
        and p.get("schema", {}).get("type") == "string"
        and not {"format", "enum", "pattern"} & set(p["schema"])
    }


def first_lines(text: str, n: int = 25) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")


class Fuzz:
    """One run over the document: the app, the tables, and the failures found."""

    def __init__(self, api: InProcessApi, tables: Tables, headers: dict[str, str]) -> None:
        self.api, self.tables, self.headers = api, tables, headers
        self.failures: dict[tuple[str, str], str] = {}

    def operation(self, operation: Any, mode: GenerationMode, examples: int, fixed: Any) -> None:
        label = f"{operation.label} [{mode.value}]"

        @hypothesis_settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
        def exercise(case: Case) -> None:
            for problem in self.problems(case):
                self.failures.setdefault((label, problem[:60]), first_lines(problem))

        try:
            exercise()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                self.failures[(label, "unsatisfiable")] = "no valid case can be made"
            # else: nothing of this operation can be made invalid
        except Exception as exc:
            self.failures[(label, type(exc).__name__)] = first_lines(repr(exc))

    def problems(self, case: Case) -> list[str]:
        try:
            response = self.api.send(prepared(case, self.headers))
        except (ValueError, UnicodeError, requests.RequestException):
            reject()  # not sendable over HTTP (a header out of latin-1, ...)
        problems = []
        checks = [response_schema_conformance, negative_data_rejection]
        if not (response.status_code == 503 and case.operation.label in MAY_BE_UNAVAILABLE):
            checks.append(not_a_server_error)
        try:
            case.validate_response(response, checks=checks, headers=self.headers)
        except FailureGroup as group:
            problems.append(str(group))
        changed = self.tables.changed()
        if 400 <= response.status_code < 500 and changed:
            problems.append(
                f"{response.status_code} but changed {', '.join(changed)}:\n"
                f"{response.text[:500]}\n{case.as_curl_command(headers=self.headers)}"
            )
        return problems

    def report(self) -> str:
        return "\n\n".join(
            f"{label}:\n{text}" for (label, _), text in sorted(self.failures.items())
        )


def test_every_operation_refuses_bad_input_with_a_4xx_in_its_documented_shape(
    settings: Settings, database_url: str, auth: TokenFactory
) -> None:
    headers = auth("platform_admin", sub="ops_fuzz")
    with in_process_api(settings) as api:
        response = api.get("/openapi.json")
        assert response.status_code == 200
        doc = response.json()
        schema = schemathesis.openapi.from_dict(doc, config=schemathesis.Config())
        tables = Tables(database_url)
        fuzz = Fuzz(api, tables, headers)
        try:
            # The detector of changes sees one: a plan created.
            created = api.send(
                requests.Request(
                    "POST",
                    f"{BASE_URL}/api/v1/plans",
                    headers=headers,
                    json={"name": "Fuzz", "amount": 100, "currency": "USD", "interval": "month"},
                ).prepare()
            )
            assert created.status_code == 201, created.text
            assert "plans (0 -> 1 rows)" in tables.changed()
            for result in schema.get_all_operations():
                if not isinstance(result, Ok):
                    fuzz.failures[(str(result.err())[:60], "schema")] = str(result.err())
                    continue
                operation = result.ok()
                slow = operation.label in SLOW_OPERATIONS
                positive = SLOW_EXAMPLES if slow else POSITIVE_EXAMPLES
                fuzz.operation(operation, GenerationMode.POSITIVE, positive, None)
                fixed = fixed_path_parameters(doc, operation.path, operation.method)
                fuzz.operation(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, fixed)
        finally:
            tables.close()
    if fuzz.failures:
        pytest.fail(f"{len(fuzz.failures)} failures\n\n{fuzz.report()}", pytrace=False)


def test_the_document_gives_every_operation_the_error_envelope(
    settings: Settings, database_url: str
) -> None:
    with in_process_api(settings) as api:
        doc = api.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method} {path}: a 422 is never answered"
            for status in ("4XX", "5XX"):
                assert responses[status]["content"]["application/json"]["schema"] == envelope
    error = doc["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"]
    assert set(error["required"]) == {"type", "code", "message", "param"}
    assert json.dumps(doc).count("HTTPValidationError") == 0

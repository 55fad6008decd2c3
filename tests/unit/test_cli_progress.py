"""Long ``tollgate`` operations with progress: ``transfers upload`` and ``reconcile`` against
a small fake of the API over HTTP (scripted answers, recorded requests), and the benchmarks'
progress bar, which must leave the figure lines on stdout untouched."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import benchmarks.__main__ as bench
from cli.main import app
from devstack.net import free_port

runner = CliRunner()
BATCH_ID = "0b7c6a52-5f0e-4c1e-9a57-0b0f8f1f0001"
RUN_ID = "4f2d9a10-7d3e-4b7a-8c55-2c1d0e9a0002"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """Answers each ``METHOD path`` (query string excluded) with the next scripted answer;
    the last one repeats."""

    url: str
    script: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, route: str, *answers: tuple[int, dict[str, Any]]) -> None:
        self.script[route] = list(answers)

    def next(self, route: str) -> tuple[int, dict[str, Any]]:
        answers = self.script.get(route)
        if not answers:
            return 404, envelope("route_not_found", f"no route {route}")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def requests_to(self, route: str) -> list[Seen]:
        return [seen for seen in self.seen if f"{seen.method} {seen.path.split('?')[0]}" == route]


def envelope(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": None,
            **extra,
        }
    }


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    port = free_port()
    fake = FakeApi(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            fake.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            status, answer = fake.next(f"{self.command} {path}")
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def batch(status: str = "processing", **counts: int) -> dict[str, Any]:
    values = {"succeeded_count": 0, "failed_count": 0, "cancelled_count": 0, **counts}
    final = values["succeeded_count"] + values["failed_count"] + values["cancelled_count"]
    return {
        "id": BATCH_ID,
        "object": "transfer_batch",
        "partner_id": "partner-a",
        "source": "csv",
        "status": status,
        "total_count": 3,
        "pending_count": 3 - final,
        "percent_done": round(100 * final / 3, 1),
        "workflow_id": f"transfer-batch-{BATCH_ID}",
        **values,
    }


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "payouts.csv"
    path.write_text(
        "reference,destination,amount,currency\n"
        "ref-1,acct_1,1000,USD\nref-2,acct_2,2000,USD\nref-3,acct_3,3000,USD\n"
    )
    return path


def upload(fake: FakeApi, csv_file: Path, *extra: str) -> Any:
    return runner.invoke(
        app,
        [
            "transfers",
            "upload",
            str(csv_file),
            "--partner-id",
            "partner-a",
            "--api",
            fake.url,
            "--token",
            "tok_admin",
            "--interval",
            "0.1",
            *extra,
        ],
    )


def test_upload_follows_the_batch_to_completion(fake_api: FakeApi, csv_file: Path) -> None:
    fake_api.answer("POST /api/v1/transfers/batch", (201, batch()))
    fake_api.answer(
        f"GET /api/v1/transfers/batch/{BATCH_ID}",
        (200, batch(succeeded_count=1)),
        (200, batch(succeeded_count=2)),
        (500, envelope("internal_error", "a blip")),  # tolerated while following
        (200, batch("completed", succeeded_count=3)),
    )
    result = upload(fake_api, csv_file)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"batch {BATCH_ID}: 3 transfers for partner-a" in result.stdout
    assert f"batch {BATCH_ID}: completed: 3 succeeded, 0 failed" in result.stdout
    assert len(fake_api.requests_to(f"GET /api/v1/transfers/batch/{BATCH_ID}")) == 4

    (posted,) = fake_api.requests_to("POST /api/v1/transfers/batch")
    assert posted.headers["Authorization"] == "Bearer tok_admin"
    assert posted.headers["Idempotency-Key"].startswith("cli-upload-")
    assert posted.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="partner_id"' in posted.body and b"partner-a" in posted.body
    assert b'filename="payouts.csv"' in posted.body and b"ref-3,acct_3,3000,USD" in posted.body


def test_upload_refused_lists_every_row_error(fake_api: FakeApi, csv_file: Path) -> None:
    errors = [
        {"row": 2, "field": "amount", "code": "amount_invalid", "message": "must be positive"},
        {"row": 3, "field": "currency", "code": "currency_invalid", "message": "unknown XXX"},
    ]
    fake_api.answer(
        "POST /api/v1/transfers/batch",
        (
            400,
            envelope(
                "batch_invalid", "2 of 3 items are invalid: nothing was stored", errors=errors
            ),
        ),
    )
    result = upload(fake_api, csv_file)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "error: 2 of 3 items are invalid: nothing was stored (batch_invalid, HTTP 400)" in lines
    assert "  row 2, amount: must be positive (amount_invalid)" in lines
    assert "  row 3, currency: unknown XXX (currency_invalid)" in lines
    assert not fake_api.requests_to(f"GET /api/v1/transfers/batch/{BATCH_ID}")


def test_upload_with_failed_transfers_exits_1_and_lists_them(
    fake_api: FakeApi, csv_file: Path
) -> None:
    fake_api.answer("POST /api/v1/transfers/batch", (201, batch()))
    fake_api.answer(
        f"GET /api/v1/transfers/batch/{BATCH_ID}",
        (200, batch("partially_completed", succeeded_count=2, failed_count=1)),
    )
    failed = {
        "item_index": 2,
        "reference": "ref-2",
        "amount": 2000,
        "currency": "USD",
        "destination": "acct_2",
        "last_error": "account closed",
    }
    fake_api.answer(
        f"GET /api/v1/transfers/batch/{BATCH_ID}/items",
        (200, {"object": "list", "data": [failed], "has_more": False, "next_cursor": None}),
    )
    result = upload(fake_api, csv_file)
    assert result.exit_code == 1
    assert "partially_completed: 2 succeeded, 1 failed" in result.stdout
    assert "  failed: item 2 ref-2 2000 USD to acct_2: account closed" in result.stdout
    (listed,) = fake_api.requests_to(f"GET /api/v1/transfers/batch/{BATCH_ID}/items")
    assert "status=failed" in listed.path


def test_upload_timeout_and_no_wait(fake_api: FakeApi, csv_file: Path) -> None:
    fake_api.answer("POST /api/v1/transfers/batch", (201, batch()))
    fake_api.answer(f"GET /api/v1/transfers/batch/{BATCH_ID}", (200, batch()))
    result = upload(fake_api, csv_file, "--timeout", "0.3")
    assert result.exit_code == 3
    assert "still processing after 0.3 s" in result.stderr
    quick = upload(fake_api, csv_file, "--no-wait")
    assert quick.exit_code == 0 and f"batch {BATCH_ID}" in quick.stdout


def test_upload_to_an_api_that_does_not_answer(csv_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "transfers",
            "upload",
            str(csv_file),
            "--partner-id",
            "partner-a",
            "--api",
            f"http://127.0.0.1:{free_port()}",
            "--token",
            "t",
        ],
    )
    assert result.exit_code == 1
    assert "error: cannot reach the API at http://127.0.0.1:" in result.stderr


def run(status: str = "running", **values: Any) -> dict[str, Any]:
    return {
        "id": RUN_ID,
        "object": "reconciliation_run",
        "status": status,
        "trigger": "manual",
        "period_start": "2026-03-01T00:00:00Z",
        "period_end": "2026-03-02T00:00:00Z",
        "sources": ["stripe", "chain"],
        "ledger_count": 0,
        "external_count": 0,
        "matched_count": 0,
        "discrepancy_count": 0,
        "match_rate": None,
        "totals": {},
        "source_results": {},
        "error": None,
        "workflow_id": f"reconciliation-{RUN_ID}",
        **values,
    }


def reconcile(fake: FakeApi, *extra: str) -> Any:
    return runner.invoke(
        app,
        ["reconcile", "--api", fake.url, "--token", "tok", "--interval", "0.1", *extra],
    )


def test_reconcile_waits_and_prints_totals_and_match_rate(fake_api: FakeApi) -> None:
    fake_api.answer("POST /api/v1/reconciliation/runs", (202, run()))
    done = run(
        "completed",
        ledger_count=40,
        external_count=41,
        matched_count=39,
        discrepancy_count=3,
        match_rate=92.8,
        totals={"USD": {"matched": 390000, "ledger": 400000, "external": 410000}},
        source_results={
            "stripe": {
                "ledger_count": 40,
                "external_count": 41,
                "matched_count": 39,
                "discrepancy_count": 3,
                "totals": {},
            }
        },
    )
    fake_api.answer(f"GET /api/v1/reconciliation/runs/{RUN_ID}", (200, run()), (200, done))
    result = reconcile(fake_api, "--from", "2026-03-01", "--to", "2026-03-02T00:00:00+00:00")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    (posted,) = fake_api.requests_to("POST /api/v1/reconciliation/runs")
    assert json.loads(posted.body) == {
        "period_start": "2026-03-01T00:00:00+00:00",
        "period_end": "2026-03-02T00:00:00+00:00",
    }
    lines = result.stdout.splitlines()
    assert f"run {RUN_ID}: completed" in lines
    assert "  match rate        92.8%" in lines
    assert "  discrepancies     3" in lines
    assert "  totals USD (minor units): ledger 400000, external 410000, matched 390000" in lines
    assert "  stripe: 39 matched of 40 ledger and 41 external, 3 discrepancies" in lines


def test_reconcile_failure_paths(fake_api: FakeApi) -> None:
    fake_api.answer("POST /api/v1/reconciliation/runs", (202, run()))
    fake_api.answer(
        f"GET /api/v1/reconciliation/runs/{RUN_ID}",
        (200, run("failed", error="Stripe did not answer")),
    )
    failed = reconcile(fake_api)
    assert failed.exit_code == 1
    assert "  error: Stripe did not answer" in failed.stdout.splitlines()

    fake_api.answer(
        "POST /api/v1/reconciliation/runs",
        (403, envelope("forbidden", "Role 'billing_admin' may not do this")),
    )
    refused = reconcile(fake_api)
    assert refused.exit_code == 1
    assert "error: Role 'billing_admin' may not do this (forbidden, HTTP 403)" in refused.stderr

    unreadable = reconcile(fake_api, "--from", "yesterday")
    assert unreadable.exit_code == 2
    assert "not an ISO 8601" in unreadable.stderr


def test_benchmark_progress_leaves_figures_alone(capsys: pytest.CaptureFixture[str]) -> None:
    figures = ["ledger: 1234 postings/s", "escrow: release lateness p99 0.8 s"]
    steps = [
        ("ledger", lambda: print(figures[0])),
        ("escrow", lambda: print(figures[1], flush=True)),
    ]
    bench.run(steps)
    out, err = capsys.readouterr()
    assert out.splitlines() == figures
    assert "benchmarks done" in err and "2/2" in err

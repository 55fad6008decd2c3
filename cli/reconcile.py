"""``tollgate reconcile``: reconcile a period now through the API and wait for the result."""

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

from cli.api_client import ApiFailure, api_client, api_url, bearer_token, call, poll
from cli.progress import progress_bar, stderr_console
from cli.transfers import ApiOption, TokenOption

TOTALS_ORDER = {"ledger": 0, "external": 1, "matched": 2}


def parse_instant(text: str, option: str) -> datetime:
    """ISO 8601 date or date-time; a date is its midnight, and no offset means UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-03-01 or "
            "2026-03-01T12:00:00+00:00)",
            param_hint=option,
        ) from None
    if len(text.strip()) == 10:  # a date alone
        parsed = datetime.combine(date.fromisoformat(text.strip()), time())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def reconcile(
    period_from: Annotated[
        str | None,
        typer.Option(
            "--from", help="Start of the period (ISO 8601; default: 24 hours before its end)."
        ),
    ] = None,
    period_to: Annotated[
        str | None,
        typer.Option("--to", help="End of the period, excluded (ISO 8601; default: now)."),
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run's result.")] = True,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between two looks.")] = 1.0,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds.")
    ] = None,
) -> None:
    """Reconcile a period now (ledger against Stripe and the chain) and print the result.

    Prints the run's counts, totals by currency and match rate. Exit 0 when the run
    completed (with or without discrepancies), 1 if it was refused or failed, 3 if
    --timeout came first."""
    from settings import get_settings

    settings = get_settings()
    body: dict[str, str] = {}
    if period_from:
        body["period_start"] = parse_instant(period_from, "--from").isoformat()
    if period_to:
        body["period_end"] = parse_instant(period_to, "--to").isoformat()
    console = stderr_console()
    with api_client(api_url(api, settings), bearer_token(token, settings)) as client:
        try:
            run = call(client, "POST", "/reconciliation/runs", json=body)
        except ApiFailure as failure:
            _fail(failure)
        typer.echo(
            f"reconciliation run {run['id']}: {run['period_start']} to {run['period_end']}, "
            f"sources {', '.join(run['sources'])} (workflow {run['workflow_id']})"
        )
        if not wait:
            return
        try:
            run, finished = _wait(console, client, run, interval=interval, timeout=timeout)
        except ApiFailure as failure:
            _fail(failure)
    for line in report(run):
        typer.echo(line)
    if not finished:
        typer.echo(
            f"still {run['status']} after {timeout:g} s: follow it with "
            f"GET /api/v1/reconciliation/runs/{run['id']}",
            err=True,
        )
        raise typer.Exit(3)
    if run["status"] != "completed":
        raise typer.Exit(1)


def _wait(
    console: Console,
    client: httpx.Client,
    run: dict[str, Any],
    *,
    interval: float,
    timeout: float | None,
) -> tuple[dict[str, Any], bool]:
    """A pulsing bar until the run leaves ``running`` (its length is not known ahead)."""
    with progress_bar(console) as progress:
        task = progress.add_task("reconciling", total=None)
        seen, finished = poll(
            lambda: call(client, "GET", f"/reconciliation/runs/{run['id']}"),
            lambda seen: seen["status"] != "running",
            lambda seen: progress.update(task, description=f"reconciling ({seen['status']})"),
            interval=interval,
            timeout=timeout,
        )
        if finished:
            progress.update(task, total=1, completed=1)
        return seen, finished


def report(run: dict[str, Any]) -> list[str]:
    lines = [f"run {run['id']}: {run['status']}"]
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
    rate = run.get("match_rate")
    lines += [
        f"  ledger items      {run['ledger_count']}",
        f"  provider records  {run['external_count']}",
        f"  matched           {run['matched_count']}",
        f"  discrepancies     {run['discrepancy_count']}",
        f"  match rate        {'-' if rate is None else f'{rate:g}%'}",
    ]
    for currency, amounts in sorted((run.get("totals") or {}).items()):
        names = sorted(amounts, key=lambda name: (TOTALS_ORDER.get(name, 9), name))
        figures = ", ".join(f"{name} {amounts[name]}" for name in names)
        lines.append(f"  totals {currency} (minor units): {figures}")
    for source, result in sorted((run.get("source_results") or {}).items()):
        lines.append(
            f"  {source}: {result['matched_count']} matched of {result['ledger_count']} ledger"
            f" and {result['external_count']} external, {result['discrepancy_count']}"
            " discrepancies"
        )
    if run.get("discrepancy_count"):
        lines.append(f"  discrepancies: GET /api/v1/reconciliation/runs/{run['id']}/discrepancies")
    return lines


def _fail(failure: ApiFailure) -> NoReturn:
    for line in failure.lines():
        typer.echo(line, err=True)
    raise typer.Exit(1)

"""``tollgate transfers upload``: send a CSV batch payout to the API and follow it to the end
with a progress bar."""

import uuid
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

from cli.api_client import ApiFailure, api_client, api_url, bearer_token, call, poll
from cli.progress import progress_bar, stderr_console

transfers_app = typer.Typer(help="Transfers and batch payouts.", no_args_is_help=True)

# Failed items listed after a batch that did not fully succeed.
FAILED_ITEMS_SHOWN = 20

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api", envvar="TOLLGATE_API_URL", help="API base URL; default: the configured API."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="TOLLGATE_API_TOKEN",
        help="Bearer token of an admin; default: a platform_admin token minted with the "
        "configured JWT secret (development).",
    ),
]


@transfers_app.command("upload")
def upload(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: reference,destination,"
            "amount,currency[,description]; amounts in minor units.",
        ),
    ],
    partner_id: Annotated[str, typer.Option(help="The partner the batch pays out for.")],
    api: ApiOption = None,
    token: TokenOption = None,
    wait: Annotated[bool, typer.Option(help="Follow the batch until it is done.")] = True,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between two looks.")] = 1.0,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop following after this many seconds.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Idempotency-Key of the upload (again: the same batch, not a second)."),
    ] = None,
) -> None:
    """Upload a CSV batch payout and show its progress until every transfer is final.

    Exit 0 when every transfer succeeded, 1 if the batch was refused (each invalid row
    is listed) or transfers failed (they are listed), 3 if --timeout came first."""
    from settings import get_settings

    settings = get_settings()
    console = stderr_console()
    content = file.read_bytes()
    key = idempotency_key or f"cli-upload-{uuid.uuid4()}"
    with api_client(api_url(api, settings), bearer_token(token, settings)) as client:
        try:
            with console.status(f"uploading {file.name} ({len(content):,} bytes)"):
                batch = call(
                    client,
                    "POST",
                    "/transfers/batch",
                    data={"partner_id": partner_id},
                    files={"file": (file.name, content, "text/csv")},
                    headers={"Idempotency-Key": key},
                )
        except ApiFailure as failure:
            _fail(failure)
        typer.echo(
            f"batch {batch['id']}: {batch['total_count']} transfers for {batch['partner_id']} "
            f"(workflow {batch['workflow_id']})"
        )
        if not wait:
            return
        try:
            batch, finished = _follow(console, client, batch, interval=interval, timeout=timeout)
        except ApiFailure as failure:
            _fail(failure)
        typer.echo(_summary(batch))
        if not finished:
            typer.echo(
                f"still {batch['status']} after {timeout:g} s: follow it with "
                f"GET /api/v1/transfers/batch/{batch['id']}",
                err=True,
            )
            raise typer.Exit(3)
        if batch["failed_count"] or batch["status"] != "completed":
            _list_failed(client, batch)
            raise typer.Exit(1)


def _follow(
    console: Console,
    client: httpx.Client,
    batch: dict[str, Any],
    *,
    interval: float,
    timeout: float | None,
) -> tuple[dict[str, Any], bool]:
    with progress_bar(console) as progress:
        task = progress.add_task(_counts(batch), total=batch["total_count"])

        def show(seen: dict[str, Any]) -> None:
            final = seen["succeeded_count"] + seen["failed_count"] + seen["cancelled_count"]
            progress.update(task, completed=final, description=_counts(seen))

        return poll(
            lambda: call(client, "GET", f"/transfers/batch/{batch['id']}"),
            lambda seen: seen["status"] != "processing",
            show,
            interval=interval,
            timeout=timeout,
        )


def _counts(batch: dict[str, Any]) -> str:
    return f"{batch['succeeded_count']} succeeded, {batch['failed_count']} failed"


def _summary(batch: dict[str, Any]) -> str:
    return (
        f"batch {batch['id']}: {batch['status']}: {batch['succeeded_count']} succeeded, "
        f"{batch['failed_count']} failed, {batch['cancelled_count']} cancelled, "
        f"{batch['pending_count']} not final, of {batch['total_count']}"
    )


def _list_failed(client: httpx.Client, batch: dict[str, Any]) -> None:
    try:
        page = call(
            client,
            "GET",
            f"/transfers/batch/{batch['id']}/items",
            params={"status": "failed", "limit": FAILED_ITEMS_SHOWN},
        )
    except ApiFailure as failure:
        typer.echo(f"cannot list the failed transfers: {failure.message}", err=True)
        return
    for item in page.get("data", []):
        typer.echo(
            f"  failed: item {item.get('item_index')} {item.get('reference')} "
            f"{item.get('amount')} {item.get('currency')} to {item.get('destination')}: "
            f"{item.get('last_error') or 'no error recorded'}"
        )
    if page.get("has_more"):
        typer.echo(
            f"  ... more: GET /api/v1/transfers/batch/{batch['id']}/items?status=failed; "
            f"retry them with POST /api/v1/transfers/batch/{batch['id']}/retry"
        )


def _fail(failure: ApiFailure) -> NoReturn:
    for line in failure.lines():
        typer.echo(line, err=True)
    raise typer.Exit(1)

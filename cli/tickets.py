"""``tollgate tickets``: check a scanned ticket the way a driver's app does, without a server."""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from domain.errors import ValidationError
from domain.tickets.signing import public_keys_from_dict
from domain.tickets.verification import verify_offline

T = TypeVar("T")

tickets_app = typer.Typer(help="Signed QR tickets.", no_args_is_help=True)


@tickets_app.callback()
def tickets() -> None:
    """Signed QR tickets."""
    # A callback keeps verify-offline a subcommand even while it is the only one.


@tickets_app.command("verify-offline")
def verify_offline_command(
    payload: Annotated[
        str,
        typer.Argument(
            help="The scanned QR payload (base45 text). Base45 payloads may start with '-': "
            "put the payload after `--`, e.g. `verify-offline --keys keys.json -- PAYLOAD`."
        ),
    ],
    keys: Annotated[Path, typer.Option(help="keys.json, as served by GET /api/v1/tickets/keys.")],
    revoked: Annotated[
        Path | None,
        typer.Option(
            help="revoked.json: the body of GET /api/v1/tickets/revocations (all pages in "
            "one 'data' list) or a plain list of ticket ids."
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="The instant to check at, ISO 8601 with an offset.")
    ] = None,
    driver: Annotated[
        str | None, typer.Option(help="The scanning driver's id: refuse another's ticket.")
    ] = None,
) -> None:
    """Print a JSON verdict; exit 0 if the ticket is valid, 1 if not, 2 if a file is unreadable."""
    at = _instant(now) if now is not None else datetime.now(UTC)
    public_keys = _load(keys, public_keys_from_dict)
    revoked_ids = _load(revoked, _revoked_ids) if revoked is not None else set()
    verdict = verify_offline(payload, public_keys, now=at, revoked=revoked_ids, driver_id=driver)
    claims = verdict.claims
    typer.echo(
        json.dumps(
            {
                "valid": verdict.valid,
                "reason": verdict.reason.value,
                "ticket_id": str(claims.ticket_id) if claims else None,
                "booking_ref": claims.booking_ref.hex() if claims else None,
                "driver_ref": claims.driver_ref.hex() if claims else None,
                "valid_from": claims.valid_from.isoformat() if claims else None,
                "valid_until": claims.valid_until.isoformat() if claims else None,
            }
        )
    )
    raise typer.Exit(0 if verdict.valid else 1)


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 instant: {text!r}", param_hint="--now") from exc
    if moment.utcoffset() is None:
        raise typer.BadParameter("give an offset, e.g. 2030-01-01T08:00:00Z", param_hint="--now")
    return moment


def _load(path: Path, parse: Callable[[Any], T]) -> T:
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        message = exc.message if isinstance(exc, ValidationError) else str(exc)
        typer.echo(f"cannot read {path}: {message}", err=True)
        raise typer.Exit(2) from exc


def _revoked_ids(data: Any) -> set[uuid.UUID]:
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError('expected {"data": [...]} or a list of ticket ids')
    ids = set()
    for item in items:
        value = item.get("ticket_id") if isinstance(item, dict) else item
        if not isinstance(value, str):
            raise ValueError(f"not a ticket id: {value!r}")
        ids.add(uuid.UUID(value))
    return ids

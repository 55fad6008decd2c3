"""``tollgate payload-keys``: keys of the Temporal payload encryption (never printed back)."""

from pathlib import Path
from typing import Annotated

import typer

payload_keys_app = typer.Typer(
    help="Keys that encrypt Temporal payloads (AES-256-GCM).", no_args_is_help=True
)


@payload_keys_app.command("generate")
def generate() -> None:
    """Print a new random key (base64), e.g. for TOLLGATE_PAYLOAD_KEYS or a secrets manager."""
    from integrations.payload_codec import generate_key

    typer.echo(generate_key())


@payload_keys_app.command("init")
def init(
    file: Annotated[Path, typer.Option(help="Keys file to create (e.g. ./secrets/...json).")],
    key_id: Annotated[str, typer.Option(help="Id of the first key.")] = "k1",
) -> None:
    """Create a keys file with one new random key (readable by its owner only)."""
    from integrations.payload_codec import PayloadKeyError, generate_key, write_keys_file

    if file.exists():
        typer.echo(
            f"error: {file} exists; rotate its keys with `tollgate payload-keys rotate`", err=True
        )
        raise typer.Exit(1)
    try:
        write_keys_file(file, key_id, {key_id: generate_key()})
    except PayloadKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{file}: {key_id} encrypts new payloads")


@payload_keys_app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Option(help="Id of the new key, e.g. k2 or 2026-03.")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="Keys file; default: TOLLGATE_PAYLOAD_KEYS_FILE, else <data dir>/payload-keys.json"
        ),
    ] = None,
) -> None:
    """Add a new key to a keys file and make it the one that encrypts; the older keys stay so
    what they encrypted still decodes. Restart the API and the workers to use it."""
    from integrations.payload_codec import PayloadKeyError, rotate_keys_file
    from settings import get_settings

    path = file or get_settings().payload_keys_path
    try:
        rotate_keys_file(path, key_id)
    except PayloadKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{path}: {key_id} now encrypts new payloads")


@payload_keys_app.command("show")
def show(
    file: Annotated[Path | None, typer.Option(help="Keys file instead of the settings.")] = None,
) -> None:
    """Say which keys are configured and which one encrypts (ids only, never the keys)."""
    from integrations.payload_codec import PayloadKeyError, PayloadKeys
    from settings import get_settings

    try:
        keys = PayloadKeys.load(file) if file else get_settings().payload_keyring()
    except PayloadKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if keys is None:
        typer.echo("payload encryption is off: no key is configured")
        return
    typer.echo(f"current: {keys.current}")
    typer.echo(f"keys: {', '.join(sorted(keys.keys))}")

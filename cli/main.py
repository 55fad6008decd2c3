"""``tollgate``: the command line of the platform."""

import asyncio
from datetime import timedelta
from typing import Annotated

import typer

from cli.anchors import anchors_app
from cli.payload_keys import payload_keys_app
from cli.reconcile import reconcile
from cli.tickets import tickets_app
from cli.transfers import transfers_app
from settings import get_settings

app = typer.Typer(
    help="Tollgate: money and tickets as durable Temporal workflows.", no_args_is_help=True
)
schedules_app = typer.Typer(help="Temporal Schedules of the periodic jobs.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")
app.add_typer(tickets_app, name="tickets")
app.add_typer(anchors_app, name="anchors")
app.add_typer(transfers_app, name="transfers")
app.add_typer(payload_keys_app, name="payload-keys")


@app.command()
def dev() -> None:
    """Start the embedded stack (Postgres, Temporal, anvil, Stripe sandbox, worker, API)."""
    from devstack.stack import run
    from observability import logs

    settings = get_settings()
    logs.configure(
        level=settings.log_level,
        fmt="text" if settings.log_format == "text" else "json",
        service="tollgate-dev",
        secrets=settings.secrets_to_mask(),
    )
    raise typer.Exit(asyncio.run(run(settings)))


@app.command()
def migrate(revision: str = "head") -> None:
    """Apply the database migrations."""
    from models.migrate import upgrade

    upgrade(get_settings().sqlalchemy_url, revision)
    typer.echo(f"database migrated to {revision}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Default: TOLLGATE_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: TOLLGATE_API_PORT")] = None,
    workers: int = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from observability.logs import logging_config

    settings = get_settings()
    uvicorn.run(
        "api.main:app",
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        # JSON lines (TOLLGATE_LOG_FORMAT); each request is logged by the app with its id.
        log_config=logging_config(
            level=settings.log_level,
            fmt="text" if settings.log_format == "text" else "json",
            service="tollgate-api",
        ),
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the Temporal worker (syncs the Schedules first)."""
    import worker as worker_module

    worker_module.main()


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Subject: the user, driver or vendor id")],
    role: Annotated[
        str, typer.Option(help="customer, driver, vendor, billing_admin, platform_admin")
    ],
    ttl: Annotated[int | None, typer.Option(help="Lifetime in seconds")] = None,
) -> None:
    """Mint a development bearer token."""
    from domain.actors import Role
    from domain.errors import ValidationError
    from domain.tokens import mint

    settings = get_settings()
    try:
        chosen = Role(role)
        typer.echo(
            mint(
                subject=sub,
                role=chosen,
                secret=settings.jwt_secret,
                issuer=settings.jwt_issuer,
                ttl=timedelta(seconds=ttl or settings.jwt_ttl_seconds),
            )
        )
    except (ValueError, ValidationError) as exc:
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role") from exc


@schedules_app.command("sync")
def schedules_sync() -> None:
    """Create or update every Temporal Schedule of the project (idempotent)."""
    import schedules
    from cli.client_process import connect, run_then_exit

    settings = get_settings()

    async def run() -> int:
        done = await schedules.sync(await connect(settings), settings)
        for schedule_id, outcome in done.items():
            typer.echo(f"{schedule_id}: {outcome}")
        return 0

    run_then_exit(run())


@app.command("deploy-contracts")
def deploy_contracts() -> None:
    """Deploy the contracts to the configured chain unless already deployed there."""
    from devstack.chain import deploy_once

    settings = get_settings()
    deployment = deploy_once(settings)
    typer.echo(f"{settings.deployments_file}: {deployment}")


app.command("reconcile")(reconcile)

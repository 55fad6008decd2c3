"""The embedded stack of ``make run``: which parts, in which order, and how each is probed."""

import asyncio
import signal
import subprocess
import sys

import httpx

from devstack import chain, postgres
from devstack.binaries import find
from devstack.net import free_port, port_open
from devstack.supervisor import Part, PartFailed, Supervisor
from integrations.payload_codec import PayloadKeyError, ensure_development_keys
from integrations.temporal import connect, register_search_attributes
from integrations.temporal import ping as temporal_ping
from integrations.ticket_keys import ensure_development_keyring
from models.migrate import upgrade
from settings import Settings
from workflows import search_attributes

DATABASE = "tollgate"


async def http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def codec_endpoint(settings: Settings) -> str:
    """The API's codec server, as the browser showing the Temporal UI reaches it."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}/admin/codec"


def parts(settings: Settings) -> list[Part]:
    data = settings.data_dir.resolve()
    pgdata = data / "pg"
    ensure_development_keyring(settings.ticket_keys_path)
    if not settings.payload_keys:
        # Payloads are encrypted in development too, with a key of this machine's own.
        ensure_development_keys(settings.payload_keys_path)
    # The Temporal UI asks the API to decrypt what it shows (admins only).
    ui_codec = ["--ui-codec-endpoint", codec_endpoint(settings)] if settings.payload_codec() else []
    postgres.init_cluster(pgdata)
    pg_command, pg_user = postgres.server_command(pgdata, settings.pg_port)

    async def migrate() -> None:
        await asyncio.to_thread(postgres.ensure_database, settings.pg_port, DATABASE)
        await asyncio.to_thread(upgrade, settings.sqlalchemy_url)

    async def temporal_ready() -> bool:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
        await temporal_ping(client)
        await register_search_attributes(client, settings.temporal_namespace, search_attributes.ALL)
        return True

    async def deploy() -> None:
        await asyncio.to_thread(chain.deploy_once, settings)

    temporal_host, temporal_port = settings.temporal_address.rsplit(":", 1)
    return [
        Part(
            "postgres",
            pg_command,
            # A connection, not the open port: after a crash PostgreSQL listens while it
            # recovers and refuses connections ("the database system is starting up").
            ready=lambda: asyncio.to_thread(postgres.accepts_connections, settings.pg_port),
            port=settings.pg_port,
            user=pg_user,
            stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown: no waiting on clients
            after_ready=migrate,
        ),
        Part(
            "temporal",
            [
                find("temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(data / "temporal.db"),
                # WAL with NORMAL sync: about 3x the workflow starts per second of the default
                # rollback journal, and still durable when a process dies.
                "--sqlite-pragma",
                "journal_mode=WAL",
                "--sqlite-pragma",
                "synchronous=NORMAL",
                "--ip",
                temporal_host,
                "--port",
                temporal_port,
                "--ui-port",
                str(settings.temporal_ui_port),
                # Left to it, it takes these two from the kernel's range, where a port it found
                # free may be taken again before it binds (as happened to two test processes).
                "--http-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--namespace",
                settings.temporal_namespace,
                "--ui-disable-news-fetch",
                *ui_codec,
                "--log-level",
                "warn",
            ],
            ready=temporal_ready,
            port=int(temporal_port),
            start_timeout=90,
        ),
        Part(
            "anvil",
            chain.anvil_command(settings),
            ready=lambda: port_open(settings.anvil_port),
            port=settings.anvil_port,
            stop_signal=signal.SIGINT,  # anvil dumps its state on SIGINT/SIGTERM
            after_ready=deploy,
        ),
        Part(
            "stripe-sandbox",
            _python(
                "devstack.stripe_sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.stripe_sandbox_port),
                "--state-file",
                str(data / "stripe-sandbox.sqlite3"),
                "--webhook-secret",
                settings.stripe_webhook_secret,
                # Every event goes to the API, as a webhook endpoint in Stripe's dashboard does.
                "--webhook-url",
                f"http://127.0.0.1:{settings.api_port}/api/v1/webhooks/stripe",
            ),
            ready=lambda: port_open(settings.stripe_sandbox_port),
            port=settings.stripe_sandbox_port,
        ),
        Part(
            "worker",
            _python("cli", "worker"),
            # Its metrics port opens as it connects to Temporal; if registering search
            # attributes or syncing Schedules fails after that, the process exits and the
            # supervisor reports it.
            ready=lambda: (
                port_open(settings.worker_metrics_port)
                if settings.worker_metrics_port
                else asyncio.sleep(2, result=True)
            ),
            port=settings.worker_metrics_port or None,
        ),
        Part(
            "api",
            _python("cli", "api"),
            ready=lambda: http_ok(f"http://{settings.api_host}:{settings.api_port}/healthz"),
            port=settings.api_port,
        ),
    ]


def payloads_line(settings: Settings) -> str:
    keys = settings.payload_keyring()
    if keys is None:
        return "in clear (no payload keys)"
    return (
        f"encrypted (key {keys.current}); the Temporal UI decodes them for admins through "
        f"{codec_endpoint(settings)}"
    )


def banner(settings: Settings) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    return "\n".join(
        [
            "",
            "Tollgate is running:",
            f"  API docs      {api}/docs",
            f"  Health        {api}/healthz",
            f"  Admin pages   {api}/admin",
            f"  Temporal UI   {settings.temporal_ui_url}",
            f"  Payloads      {payloads_line(settings)}",
            f"  Stripe sandbox http://127.0.0.1:{settings.stripe_sandbox_port}",
            f"  Chain RPC     {settings.chain_rpc_url}",
            f"  Postgres      {postgres.url(settings.pg_port, DATABASE, driver='postgresql')}",
            f"  Logs          {settings.data_dir.resolve() / 'logs'}",
            "Press Ctrl-C to stop.",
        ]
    )


async def run(settings: Settings) -> int:
    """Start everything, wait for Ctrl-C or a failure, stop everything; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    supervisor = Supervisor(settings.data_dir.resolve() / "logs")
    supervisor.say(f"Starting the embedded stack (data in {settings.data_dir.resolve()})")
    try:
        try:
            planned = parts(settings)
        except (OSError, subprocess.CalledProcessError, PayloadKeyError) as exc:
            supervisor.say(f"\n  ✗ set-up failed before starting: {exc}")
            return 1
        for part in planned:
            if stop.is_set():
                return 130
            await supervisor.start(part)
        supervisor.say(banner(settings))
        await supervisor.watch(stop)
        return 0
    except PartFailed as failure:
        supervisor.say(f"\n  ✗ {failure.part} failed: {failure.reason}")
        if failure.log_tail:
            supervisor.say(f"--- last lines of {failure.part}'s log ---\n{failure.log_tail}\n---")
        return 1
    finally:
        supervisor.say("Stopping...")
        supervisor.stop_all()

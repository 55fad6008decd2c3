"""The embedded PostgreSQL 16: pgserver's bundled binaries, run in the foreground on TCP.

pgserver's own ``get_server`` listens on a unix socket only and daemonises; the dev stack
needs a configurable TCP port and a child process it can supervise, so it uses pgserver's
``initdb`` and ``postgres`` directly. As root, PostgreSQL refuses to run, so both run as
the unprivileged user pgserver creates for that purpose.
"""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pgserver._commands import POSTGRES_BIN_PATH

from devstack.supervisor import stop_process

PG_USER = "postgres"
SYSTEM_USER = "pgserver"


def _run_as() -> str | None:
    """The system user PostgreSQL runs as: ourselves, or pgserver's user when we are root."""
    if os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _grant_access(path: Path, user: str) -> None:
    """Let ``user`` reach ``path`` (traverse its parents) and own it."""
    from pgserver.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _open_binaries() -> None:
    """Make the bundled binaries runnable by pgserver's user, as pgserver itself does."""
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable, runnable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | runnable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)


def init_cluster(pgdata: Path) -> None:
    """Create the cluster once; an existing one (a second ``make run``) is kept as it is."""
    pgdata.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    if user is not None:
        _open_binaries()
        _grant_access(pgdata, user)
    if (pgdata / "PG_VERSION").exists():
        return
    subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(pgdata),
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
            "-U",
            PG_USER,
        ],
        check=True,
        capture_output=True,
        user=user,
    )


def server_command(pgdata: Path, port: int) -> tuple[list[str], str | None]:
    """The command line of a foreground server on 127.0.0.1:``port``, and its system user."""
    command = [
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(pgdata),  # the unix socket stays inside the data dir, not in /tmp
        "-c",
        "max_connections=200",
        "-c",
        "fsync=on",
    ]
    return command, _run_as()


def url(port: int, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
    return f"{driver}://{PG_USER}@127.0.0.1:{port}/{database}"


def accepts_connections(port: int) -> bool:
    """Whether the server takes a connection: its port opens before it does (after a crash
    it first replays its WAL, answering "the database system is starting up")."""
    try:
        with psycopg.connect(url(port, driver="postgresql"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url(port, driver="postgresql"), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def ensure_database(port: int, name: str, *, template: str | None = None) -> bool:
    """Create database ``name`` if missing; True when it was created."""
    with psycopg.connect(url(port, driver="postgresql"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return True


@contextmanager
def temporary_server(port: int) -> Iterator[Path]:
    """A throw-away server on ``port`` (tests, benchmarks); its data is deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
    pgdata = root / "pg"
    init_cluster(pgdata)
    command, user = server_command(pgdata, port)
    process = subprocess.Popen(
        command, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        yield pgdata
    finally:
        stop_process(process, signal.SIGINT, timeout=30)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)

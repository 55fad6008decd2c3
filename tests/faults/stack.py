"""The embedded stack of ``make run`` with each part under the test's control.

``tests/fixtures/stack.py`` runs ``tollgate dev`` as a child process, whose supervisor stops
everything when a part dies: right for the other tests, useless for fault tests, which take
parts away on purpose. Here the same parts (``devstack.stack.parts``: the same commands,
probes, migrations, deployment and persisted data) run under a ``Supervisor`` in the test's
own process, without its watch, so one part can be killed or stopped and started again while
the others go on.
"""

import dataclasses
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from devstack.ephemeral import stack_environment
from devstack.stack import parts
from devstack.supervisor import Part, Supervisor
from integrations.temporal import connect
from models.engine import make_engine, make_sessionmaker
from settings import Settings

# Settings of the fault stack that differ from `make run`'s, each for a stated reason.
OVERRIDES = {
    # A chain item's confirmation is looked at every second, not every 5 s (test time).
    "TOLLGATE_CHAIN_POLL_SECONDS": "1",
    # Stripe's answers are waited for 3 s, so that the sandbox's "timeout" fault (an answer
    # held 5 s) is a real client timeout that the SDK retries, as a lost answer is.
    "TOLLGATE_STRIPE_TIMEOUT_SECONDS": "3",
}


def _fields(env: dict[str, str]) -> dict[str, Any]:
    return {name.removeprefix("TOLLGATE_").lower(): value for name, value in env.items()}


class FaultStack:
    """PostgreSQL, Temporal (persisted to its SQLite file), anvil, the Stripe sandbox, the
    worker and the API, on free ports in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**stack_environment(root / "data"), **OVERRIDES}
        self.settings = Settings(_env_file=None, **_fields(self.env))
        self._out = (root / "supervisor.log").open("w")
        self.supervisor = Supervisor(self.settings.data_dir.resolve() / "logs", out=self._out)
        # Every part gets the stack's settings (``tollgate dev`` passes them by inheritance).
        self.parts: dict[str, Part] = {
            part.name: dataclasses.replace(part, env={**part.env, **self.env})
            for part in parts(self.settings)
        }
        self._engine: AsyncEngine | None = None
        self._temporal: Client | None = None

    @property
    def logs(self) -> Path:
        return self.supervisor.log_dir

    async def start(self) -> None:
        for part in self.parts.values():
            await self.supervisor.start(part)

    def close(self) -> None:
        self.supervisor.stop_all()
        self._out.close()

    def running(self, name: str) -> bool:
        return any(r.part.name == name for r in self.supervisor.running)

    def pid(self, name: str) -> int:
        [found] = [r.process.pid for r in self.supervisor.running if r.part.name == name]
        return found

    def kill(self, name: str) -> None:
        """SIGKILL to the part's whole process group: a crash, nothing cleaned up."""
        self.supervisor.stop_part(name, signal.SIGKILL)

    def stop(self, name: str) -> None:
        """The part's own stop signal (PostgreSQL's fast shutdown, SIGTERM)."""
        self.supervisor.stop_part(name)

    async def start_part(self, name: str) -> None:
        """Starts the part again with its data; returns once its probe says it is ready."""
        await self.supervisor.start(self.parts[name])

    async def worker_polling(self, name: str = "worker") -> bool:
        """Whether the (last started) worker polls its task queues yet: it logs it."""
        log = (self.logs / f"{name}.log").read_text(errors="replace")
        return "worker polling" in log.rsplit(f"--- starting {name}", 1)[-1]

    async def add_part(self, part: Part) -> None:
        """A part of the test's own (a second worker), started now; ``remove_part`` ends it."""
        self.parts[part.name] = part
        await self.supervisor.start(part)

    def remove_part(self, name: str) -> None:
        if self.running(name):
            self.supervisor.stop_part(name)
        del self.parts[name]

    # Clients of the parts

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def sandbox_url(self) -> str:
        base = self.settings.stripe_api_base
        assert base is not None
        return base

    @asynccontextmanager
    async def api(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=60) as client:
            yield client

    @asynccontextmanager
    async def sandbox(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=self.sandbox_url, timeout=60) as client:
            yield client

    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._engine is None:
            self._engine = make_engine(self.settings.sqlalchemy_url)
        return make_sessionmaker(self._engine)

    async def temporal(self) -> Client:
        if self._temporal is None:
            self._temporal = await connect(
                self.settings.temporal_address,
                self.settings.temporal_namespace,
                payload_codec=self.settings.payload_codec(),
            )
        return self._temporal

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

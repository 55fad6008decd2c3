"""A whole embedded stack on free ports in a scratch folder, started as `make run` starts it
(`tollgate dev` in a child process): for the smoke test and the benchmarks."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.net import free_port
from settings import Settings

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunningStack:
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path
    # The TOLLGATE_* variables it runs with: a `tollgate` command given them talks to it.
    env: dict[str, str]

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.process.wait(timeout)


def stack_environment(data_dir: Path) -> dict[str, str]:
    ports = {
        name: str(free_port())
        for name in (
            "PG_PORT",
            "API_PORT",
            "TEMPORAL_UI_PORT",
            "ANVIL_PORT",
            "STRIPE_SANDBOX_PORT",
            "WORKER_METRICS_PORT",
        )
    }
    env = {f"TOLLGATE_{name}": port for name, port in ports.items()}
    env.update(
        TOLLGATE_DATA_DIR=str(data_dir),
        TOLLGATE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TOLLGATE_CHAIN_RPC_URL=f"http://127.0.0.1:{ports['ANVIL_PORT']}",
        TOLLGATE_STRIPE_API_BASE=f"http://127.0.0.1:{ports['STRIPE_SANDBOX_PORT']}",
    )
    return env


# Starts on fresh ports after a part found its port taken (by another process between
# ``free_port`` and the part's bind): rare, but two test processes start stacks at once.
START_ATTEMPTS = 3


@contextmanager
def ephemeral_stack(scratch: Path, *, ready_timeout: float = 180) -> Iterator[RunningStack]:
    """Yield once ``/healthz`` answers 200 and the banner is printed; stop with SIGINT."""
    for attempt in range(1, START_ATTEMPTS + 1):
        stack = _start(scratch, scratch / ("dev.log" if attempt == 1 else f"dev-{attempt}.log"))
        try:
            _wait_ready(stack, ready_timeout)
            break
        except RuntimeError:
            stack.stop()
            if attempt == START_ATTEMPTS or "address already in use" not in stack.output.lower():
                raise
    try:
        yield stack
    finally:
        stack.stop()


def _start(scratch: Path, log_path: Path) -> RunningStack:
    env = stack_environment(scratch / "data")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "dev"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return RunningStack(Settings(_env_file=None, **_fields(env)), process, log_path, env)


def _fields(env: dict[str, str]) -> dict[str, Any]:
    return {name.removeprefix("TOLLGATE_").lower(): value for name, value in env.items()}


def _wait_ready(stack: RunningStack, timeout: float) -> None:
    url = f"http://{stack.settings.api_host}:{stack.settings.api_port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stack.process.poll() is None:
        try:
            healthy = httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy and "Press Ctrl-C" in stack.output:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the embedded stack did not become healthy:\n{stack.output}")

"""Starts processes in order, waits until each is ready, watches them, stops them all.

Each part runs in its own process group with its output in ``<data>/logs/<name>.log``. If a
part fails to start or dies later, the supervisor says which one, shows the end of its log,
and stops the others; on Ctrl-C (SIGINT) or SIGTERM it stops everything in reverse order.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from devstack.net import port_open

Probe = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]


@dataclass
class Part:
    name: str
    command: list[str]
    ready: Probe
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    start_timeout: float = 60.0
    # Checked free before starting: a stale process on it would pass the readiness probe.
    port: int | None = None
    # Runs once the part is ready (migrations, contract deployment); a failure fails the part.
    after_ready: Hook | None = None


class PartFailed(Exception):
    def __init__(self, part: str, reason: str, log_tail: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part, self.reason, self.log_tail = part, reason, log_tail


@dataclass
class _Running:
    part: Part
    process: subprocess.Popen[bytes]
    log_path: Path


class Supervisor:
    def __init__(self, log_dir: Path, out: TextIO = sys.stdout) -> None:
        self.log_dir = log_dir
        self.out = out
        self.running: list[_Running] = []

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    async def start(self, part: Part) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{part.name}.log"
        if part.port is not None and await port_open(part.port):
            raise PartFailed(
                part.name,
                f"port {part.port} is already in use (another `make run`? set its port setting)",
                "",
            )
        started = time.monotonic()
        with log_path.open("ab") as log:
            log.write(f"\n--- starting {part.name}: {' '.join(part.command)}\n".encode())
            log.flush()
            process = subprocess.Popen(  # noqa: ASYNC220 - spawning returns at once; we poll it
                part.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **part.env},
                user=part.user,
                start_new_session=True,  # its own process group: we stop it and its children
            )
        running = _Running(part, process, log_path)
        self.running.append(running)
        deadline = started + part.start_timeout
        while True:
            if process.poll() is not None:
                raise self._failure(
                    running, f"exited with code {process.returncode} while starting"
                )
            try:
                if await part.ready():
                    break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise self._failure(running, f"not ready: {exc}") from exc
            if time.monotonic() > deadline:
                raise self._failure(running, f"not ready after {part.start_timeout:.0f}s")
            await asyncio.sleep(0.2)
        if part.after_ready is not None:
            try:
                await part.after_ready()
            except Exception as exc:
                raise self._failure(running, f"set-up failed: {exc}") from exc
        self.say(f"  ✓ {part.name:<16} ready in {time.monotonic() - started:.1f}s")

    async def watch(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set; raise ``PartFailed`` if a part dies first."""
        while not stop.is_set():
            for running in self.running:
                if running.process.poll() is not None:
                    raise self._failure(
                        running, f"exited unexpectedly with code {running.process.returncode}"
                    )
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass

    def stop_all(self, timeout: float = 15.0) -> None:
        for running in reversed(self.running):
            self._stop(running, timeout)
        self.running.clear()

    def stop_part(
        self, name: str, sig: signal.Signals | None = None, timeout: float = 15.0
    ) -> Part:
        """Stop one part while the others run, and forget it so that ``start`` starts it
        again (its data kept): with its own stop signal, or ``sig`` first (SIGKILL: a crash).
        The fault tests (``tests/faults``) take parts away this way; ``watch`` is not
        running then, or it would report the part as dead and stop everything."""
        for running in self.running:
            if running.part.name == name:
                break
        else:
            raise KeyError(f"{name} is not running")
        if sig is not None and running.process.poll() is None:
            _signal_group(running.process.pid, sig)
            try:
                running.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._stop(running, timeout)
        self.running.remove(running)
        return running.part

    def _stop(self, running: _Running, timeout: float) -> None:
        process = running.process
        if process.poll() is None:
            _signal_group(process.pid, running.part.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.say(f"  ! {running.part.name} did not stop in {timeout:.0f}s: killed")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Children that outlived their parent (the group is still there) go too.
        _signal_group(process.pid, signal.SIGKILL)
        self.say(f"  ■ {running.part.name} stopped")

    def _failure(self, running: _Running, reason: str) -> PartFailed:
        return PartFailed(running.part.name, reason, tail(running.log_path))


def stop_process(
    process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout: float = 10
) -> None:
    """Ask a child to stop with ``sig``; kill it if it has not within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""

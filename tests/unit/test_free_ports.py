"""Free ports for the servers a stack starts, and a stack start that lost its port race."""

import socket
from pathlib import Path
from typing import Any

import pytest

from devstack import ephemeral, net


def test_free_port_is_bindable_and_outside_the_kernels_own_range() -> None:
    low, _ = net._kernel_range()
    for _ in range(20):
        port = net.free_port()
        assert net.LOWEST <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_port_passes_over_a_port_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        free = net.free_port()
        monkeypatch.setattr(net._PICK, "sample", lambda population, k: [taken, free])
        assert net.free_port() == free


class FakeStack:
    def __init__(self, output: str) -> None:
        self.output = output
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def fake_starts(monkeypatch: pytest.MonkeyPatch, outputs: list[str]) -> list[FakeStack]:
    """Stack starts whose outputs are these, ready when the output is "ready"."""
    started: list[FakeStack] = []

    def start(scratch: Path, log_path: Path) -> Any:
        started.append(FakeStack(outputs[len(started)]))
        return started[-1]

    def wait_ready(stack: Any, timeout: float) -> None:
        if stack.output != "ready":
            raise RuntimeError(f"the embedded stack did not become healthy:\n{stack.output}")

    monkeypatch.setattr(ephemeral, "_start", start)
    monkeypatch.setattr(ephemeral, "_wait_ready", wait_ready)
    return started


def test_a_stack_that_lost_its_port_is_started_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    taken = "temporal failed: listen tcp 127.0.0.1:46085: bind: address already in use"
    started = fake_starts(monkeypatch, [taken, "ready"])

    with ephemeral.ephemeral_stack(tmp_path) as stack:
        assert stack is started[1]
    assert [s.stopped for s in started] == [True, True]


def test_a_stack_that_fails_otherwise_is_not_started_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = fake_starts(monkeypatch, ["postgres failed: no space left on device", "ready"])

    with pytest.raises(RuntimeError, match="no space left"):
        with ephemeral.ephemeral_stack(tmp_path):
            pass
    assert len(started) == 1 and started[0].stopped


def test_a_stack_gives_up_after_its_attempts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    taken = "Address already in use"
    started = fake_starts(monkeypatch, [taken] * ephemeral.START_ATTEMPTS)

    with pytest.raises(RuntimeError, match="already in use"):
        with ephemeral.ephemeral_stack(tmp_path):
            pass
    assert len(started) == ephemeral.START_ATTEMPTS

"""The supervisor names the part that failed, shows its log, and leaves nothing running."""

import asyncio
import io
import sys
from pathlib import Path

import psutil
import pytest

from devstack.supervisor import Part, PartFailed, Supervisor


async def always() -> bool:
    return True


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_part_exiting_while_starting_is_named_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, out=io.StringIO())

    async def never() -> bool:
        return False

    part = Part("broken", python("import sys; print('bad config: no port'); sys.exit(3)"), never)
    with pytest.raises(PartFailed) as caught:
        await supervisor.start(part)
    assert caught.value.part == "broken"
    assert "code 3" in caught.value.reason
    assert "bad config: no port" in caught.value.log_tail
    supervisor.stop_all()


async def test_a_part_dying_later_stops_the_watch(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, out=io.StringIO())
    await supervisor.start(Part("steady", python("import signal; signal.pause()"), always))
    await supervisor.start(Part("fragile", python("import time; time.sleep(0.3)"), always))
    with pytest.raises(PartFailed) as caught:
        await asyncio.wait_for(supervisor.watch(asyncio.Event()), 10)
    assert caught.value.part == "fragile"
    supervisor.stop_all()


async def test_a_failing_set_up_step_fails_its_part(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, out=io.StringIO())

    async def migrate() -> None:
        raise RuntimeError("migration 0002 failed")

    part = Part("db", python("import signal; signal.pause()"), always, after_ready=migrate)
    with pytest.raises(PartFailed, match="migration 0002 failed"):
        await supervisor.start(part)
    supervisor.stop_all()


async def test_stop_all_ends_parts_and_their_children(tmp_path: Path) -> None:
    out = io.StringIO()
    supervisor = Supervisor(tmp_path, out=out)
    spawner = python(
        "import signal, subprocess, sys;"
        "subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()']);"
        "signal.pause()"
    )
    await supervisor.start(Part("parent", spawner, always))
    parent = psutil.Process(supervisor.running[0].process.pid)
    for _ in range(50):
        if parent.children():
            break
        await asyncio.sleep(0.1)
    [child] = parent.children()
    supervisor.stop_all()
    child.wait(5)
    assert not child.is_running()
    assert "parent stopped" in out.getvalue()


async def test_a_port_already_in_use_is_refused_before_starting(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    supervisor = Supervisor(tmp_path, out=io.StringIO())
    try:
        with pytest.raises(PartFailed, match=f"port {port} is already in use"):
            await supervisor.start(Part("api", python("pass"), always, port=port))
        assert supervisor.running == []
    finally:
        server.close()
        await server.wait_closed()

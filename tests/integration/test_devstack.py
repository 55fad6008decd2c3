"""The embedded stack started as `make run` starts it: healthy, then stopped with nothing left."""

import os
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.ephemeral import ephemeral_stack


def stack_processes(data_dir: Path) -> list[psutil.Process]:
    """Every process whose command line or environment points at this stack's data dir."""
    found = []
    for process in psutil.process_iter(["cmdline", "pid"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            in_env = process.environ().get("TOLLGATE_DATA_DIR") == str(data_dir)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if (str(data_dir) in cmdline or in_env) and process.pid != os.getpid():
            found.append(process)
    return found


@pytest.mark.integration
def test_make_run_stack_is_healthy_then_stops_cleanly(tmp_path: Path) -> None:
    with ephemeral_stack(tmp_path) as stack:
        settings = stack.settings
        body = httpx.get(f"http://127.0.0.1:{settings.api_port}/healthz", timeout=10).json()
        assert body["status"] == "ok"
        assert set(body["components"]) == {"database", "temporal", "chain", "stripe"}
        output = stack.output
        assert "Temporal UI" in output and "/docs" in output and "/admin" in output
        assert (settings.data_dir / "chain.json").exists()
        assert settings.ticket_keys_path.exists()
        code = stack.stop()
    assert code == 0, stack.output
    time.sleep(0.5)  # the kernel reaps the last children of the killed groups
    leftovers = stack_processes(settings.data_dir)
    assert leftovers == [], [p.info["cmdline"] for p in leftovers]

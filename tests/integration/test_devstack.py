"""The embedded stack started as `make run` starts it: healthy, then stopped with nothing left."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.net import free_port

REPO = Path(__file__).resolve().parents[2]


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
    data_dir = tmp_path / "data"
    ports = {
        "TOLLGATE_PG_PORT": free_port(),
        "TOLLGATE_API_PORT": free_port(),
        "TOLLGATE_TEMPORAL_UI_PORT": free_port(),
        "TOLLGATE_ANVIL_PORT": free_port(),
        "TOLLGATE_STRIPE_SANDBOX_PORT": free_port(),
        "TOLLGATE_WORKER_METRICS_PORT": free_port(),
    }
    temporal_port = free_port()
    env = {
        **os.environ,
        **{key: str(value) for key, value in ports.items()},
        "TOLLGATE_DATA_DIR": str(data_dir),
        "TOLLGATE_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "TOLLGATE_CHAIN_RPC_URL": f"http://127.0.0.1:{ports['TOLLGATE_ANVIL_PORT']}",
        "TOLLGATE_STRIPE_API_BASE": f"http://127.0.0.1:{ports['TOLLGATE_STRIPE_SANDBOX_PORT']}",
    }
    log = (tmp_path / "dev.log").open("wb")
    stack = subprocess.Popen(
        [sys.executable, "-m", "cli", "dev"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    health_url = f"http://127.0.0.1:{ports['TOLLGATE_API_PORT']}/healthz"
    try:
        deadline = time.monotonic() + 180
        body = None
        while time.monotonic() < deadline and stack.poll() is None:
            try:
                response = httpx.get(health_url, timeout=5)
                if response.status_code == 200:
                    body = response.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        output = (tmp_path / "dev.log").read_text(errors="replace")
        while "Press Ctrl-C" not in output and time.monotonic() < deadline:
            time.sleep(0.2)  # the banner follows the API's first healthy answer
            output = (tmp_path / "dev.log").read_text(errors="replace")
        assert body is not None, f"stack never became healthy:\n{output}"
        assert body["status"] == "ok"
        assert set(body["components"]) == {"database", "temporal", "chain", "stripe"}
        assert "Temporal UI" in output and "/docs" in output and "/admin" in output
        assert (data_dir / "chain.json").exists()
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(90)
        log.close()
    assert code == 0, (tmp_path / "dev.log").read_text(errors="replace")
    time.sleep(0.5)  # the kernel reaps the last children of the killed groups
    leftovers = stack_processes(data_dir)
    assert leftovers == [], [p.info["cmdline"] for p in leftovers]

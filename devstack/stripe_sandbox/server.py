"""Running the sandbox as a process."""

from collections.abc import Sequence
from pathlib import Path

import uvicorn

from .app import create_app
from .config import DEFAULT_PORT, SandboxConfig
from .faults import KINDS, FaultSettings


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_file: Path | None = None,
    webhook_secret: str | None = None,
    fault_rate: float = 0.0,
    *,
    fault_kinds: Sequence[str] = KINDS,
    fault_timeout_seconds: float = 2.0,
    fault_seed: int | None = None,
    webhook_urls: Sequence[str] = (),
    payout_delay_seconds: float = 2.0,
    log_level: str = "warning",
) -> None:
    """Serves the sandbox until interrupted (blocking)."""
    config = SandboxConfig(
        state_file=state_file,
        webhook_secret=webhook_secret,
        webhook_urls=tuple(webhook_urls),
        faults=FaultSettings(
            rate=fault_rate,
            kinds=tuple(fault_kinds),
            timeout_seconds=fault_timeout_seconds,
            seed=fault_seed,
        ),
        payout_delay_seconds=payout_delay_seconds,
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)

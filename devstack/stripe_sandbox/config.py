"""Start-up settings of the sandbox."""

from dataclasses import dataclass, field
from pathlib import Path

from .faults import FaultSettings

DEFAULT_PORT = 12111  # stripe-mock's port


@dataclass(frozen=True)
class SandboxConfig:
    # SQLite file that keeps the state across restarts; None keeps it in memory.
    state_file: Path | None = None
    # When set, every webhook endpoint signs with it, so the app's config can know it.
    webhook_secret: str | None = None
    # Endpoints (listening to every event) that exist from the start and survive resets.
    webhook_urls: tuple[str, ...] = ()
    faults: FaultSettings = field(default_factory=FaultSettings)
    # How long a payout stays ``pending`` before it is ``paid``.
    payout_delay_seconds: float = 2.0

"""A Stripe sandbox: a small stateful server speaking the subset of Stripe's v1 API Tollgate
uses, so the real ``stripe`` SDK runs unchanged against it (see ARCHITECTURE.md)."""

from .app import create_app
from .config import DEFAULT_PORT, SandboxConfig
from .server import run

__all__ = ["DEFAULT_PORT", "SandboxConfig", "create_app", "run"]

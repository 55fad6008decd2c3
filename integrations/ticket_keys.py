"""The ticket signing keyring, kept in a JSON file (a mounted secret in production)."""

import json
import os
from pathlib import Path

from domain.errors import ProviderError
from domain.tickets.signing import KeyRing


def load(path: Path) -> KeyRing:
    try:
        return KeyRing.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ProviderError(
            f"No ticket signing keys at {path}: set TOLLGATE_TICKET_KEYS_FILE",
            code="ticket_keys_missing",
        ) from exc


def ensure_development_keyring(path: Path, key_id: str = "dev-1") -> bool:
    """Create a keyring with one fresh key unless ``path`` exists; True when created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # Private keys: readable by the owner only.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(KeyRing.generate(key_id).to_dict(), handle, indent=2)
    temporary.replace(path)
    return True

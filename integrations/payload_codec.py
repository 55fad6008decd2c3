"""Private payloads: an AES-GCM payload codec for Temporal, with key rotation.

Every payload a Tollgate client or worker hands to Temporal (workflow and activity inputs
and results, signals, queries, updates, memos, failure details) is serialized whole, the
encoding metadata included, and sealed with AES-256-GCM under the *current* key. The stored
payload says only ``encoding: binary/encrypted`` and ``encryption-key-id: <id>``; its data
is a 12-byte random nonce followed by the ciphertext and tag. The key id is also the
associated data, so a payload relabelled with another key id does not authenticate.

Decoding picks the key by the id in the metadata, so payloads written under an older key
still decode after a rotation as long as that key stays configured; an unknown id is a
clear error, never a silent pass. Payloads that are not encrypted (histories written
before encryption was turned on, a signal typed into a Temporal UI that has no codec
endpoint) pass through unchanged.
"""

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PayloadKeyError(ValueError):
    """The keys are misconfigured, or a payload names a key that is not configured."""


class PayloadDecryptionError(ValueError):
    """A payload does not authenticate under the key its metadata names."""


def decode_key(key_id: str, encoded: str) -> bytes:
    """A key from its base64 text (standard or URL-safe alphabet): 32 bytes, AES-256."""
    text = encoded.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeyError(f"payload key {key_id!r} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise PayloadKeyError(
            f"payload key {key_id!r} has {len(raw)} bytes; AES-256 keys have {KEY_BYTES}"
        )
    return raw


def generate_key() -> str:
    """A new random AES-256 key, base64-encoded."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class PayloadKeys:
    """The configured keys by id, and the id of the one new payloads are encrypted with."""

    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise PayloadKeyError("no payload key is configured")
        for key_id, key in self.keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise PayloadKeyError(
                    f"payload key id {key_id!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(f"payload key {key_id!r} must have {KEY_BYTES} bytes")
        if self.current not in self.keys:
            raise PayloadKeyError(
                f"the current payload key {self.current!r} is not among the configured keys "
                f"({', '.join(sorted(self.keys))})"
            )

    @classmethod
    def parse(cls, keys: Mapping[str, str], current: str | None = None) -> "PayloadKeys":
        """From base64 texts by id; ``current`` may be left out when there is one key."""
        if not keys:
            raise PayloadKeyError("no payload key is configured")
        if current is None:
            if len(keys) != 1:
                raise PayloadKeyError(
                    f"{len(keys)} payload keys are configured: say which one encrypts "
                    '(TOLLGATE_PAYLOAD_KEY_ID, or "current" in the keys file)'
                )
            current = next(iter(keys))
        return cls(current, {key_id: decode_key(key_id, text) for key_id, text in keys.items()})

    @classmethod
    def load(cls, path: Path) -> "PayloadKeys":
        """From a keys file: ``{"current": "k2", "keys": {"k2": "<base64>", "k1": "..."}}``."""
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise PayloadKeyError(f"cannot read the payload keys file {path}: {exc}") from exc
        except ValueError as exc:
            raise PayloadKeyError(f"the payload keys file {path} is not JSON: {exc}") from exc
        keys = document.get("keys") if isinstance(document, dict) else None
        current = document.get("current") if isinstance(document, dict) else None
        if not isinstance(keys, dict) or not all(
            isinstance(key_id, str) and isinstance(text, str) for key_id, text in keys.items()
        ):
            raise PayloadKeyError(
                f'{path}: expected {{"current": "<key id>", "keys": {{"<key id>": "<base64>"}}}}'
            )
        if current is not None and not isinstance(current, str):
            raise PayloadKeyError(f'{path}: "current" must be a key id')
        try:
            return cls.parse(keys, current)
        except PayloadKeyError as exc:
            raise PayloadKeyError(f"{path}: {exc}") from None


def write_keys_file(path: Path, current: str, keys: Mapping[str, str]) -> None:
    """Write a keys file readable by its owner only (it holds secrets)."""
    PayloadKeys.parse(keys, current)  # refuse to write what could not be loaded
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"current": current, "keys": dict(keys)}, out, indent=2)
        out.write("\n")
    partial.replace(path)


def ensure_development_keys(path: Path, key_id: str = "dev-1") -> bool:
    """Create a keys file with one random key unless it exists; True if it was created."""
    if path.exists():
        return False
    write_keys_file(path, key_id, {key_id: generate_key()})
    return True


def rotate_keys_file(path: Path, new_id: str) -> None:
    """Add a new random key to a keys file and make it the current one; older keys stay so
    that what they encrypted still decodes."""
    loaded = PayloadKeys.load(path)
    if new_id in loaded.keys:
        raise PayloadKeyError(f"{path} already has a key {new_id!r}")
    keys = {key_id: base64.b64encode(key).decode("ascii") for key_id, key in loaded.keys.items()}
    write_keys_file(path, new_id, {new_id: generate_key(), **keys})


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads; encodes with the current key, decodes with any."""

    def __init__(self, keys: PayloadKeys) -> None:
        self.key_id = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # not ours to open: written before encryption, or by a plain client
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which is not configured (configured: "
                f"{', '.join(self.key_ids)}); keep a retired key configured until nothing "
                "written under it is still read"
            )
        if len(payload.data) <= NONCE_BYTES:
            raise PayloadDecryptionError(f"payload under key {key_id!r} is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key {key_id!r} does not authenticate: it was altered, or the "
                f"key configured as {key_id!r} is not the one it was encrypted with"
            ) from None
        return Payload.FromString(plain)

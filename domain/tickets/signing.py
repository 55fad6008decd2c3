"""Ticket signing keys and signing: secp256k1 through coincurve, recoverable and low-S.

A keyring holds several keys: exactly one ``active`` key signs; ``verify`` keys still
verify the tickets they signed until they are ``retired``, after which those tickets are
refused. Scanners get the public half from ``GET /api/v1/tickets/keys``.
"""

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import coincurve

from domain.errors import ValidationError
from domain.tickets import base45
from domain.tickets.claims import KEY_ID_MAX_LENGTH, TicketClaims, check_id, encode_claims

_PRIVATE_HEX = re.compile(r"[0-9a-fA-F]{64}")
_PUBLIC_HEX = re.compile(r"[0-9a-fA-F]{66}")


class KeyStatus(StrEnum):
    ACTIVE = "active"
    VERIFY = "verify"
    RETIRED = "retired"


def _status(value: Any) -> KeyStatus:
    try:
        return KeyStatus(value)
    except ValueError as exc:
        raise ValidationError(
            f"Key status must be one of {', '.join(KeyStatus)}", param="status"
        ) from exc


@dataclass(frozen=True)
class PublicKeyInfo:
    """A published key: ``public_key_hex`` is the compressed point (33 bytes)."""

    key_id: str
    public_key_hex: str
    status: KeyStatus
    public_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.key_id, "key_id", KEY_ID_MAX_LENGTH)
        object.__setattr__(self, "status", _status(self.status))
        if not isinstance(self.public_key_hex, str) or not _PUBLIC_HEX.fullmatch(
            self.public_key_hex
        ):
            raise ValidationError(
                "public_key must be 66 hex digits (a compressed point)", param="public_key"
            )
        try:
            coincurve.PublicKey(bytes.fromhex(self.public_key_hex))
        except ValueError as exc:
            raise ValidationError(
                "public_key is not a secp256k1 point", param="public_key"
            ) from exc
        object.__setattr__(self, "public_key_hex", self.public_key_hex.lower())
        object.__setattr__(self, "public_key", bytes.fromhex(self.public_key_hex))


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key_hex: str = field(repr=False)
    status: KeyStatus
    _private: coincurve.PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.key_id, "key_id", KEY_ID_MAX_LENGTH)
        object.__setattr__(self, "status", _status(self.status))
        if not isinstance(self.private_key_hex, str) or not _PRIVATE_HEX.fullmatch(
            self.private_key_hex
        ):
            raise ValidationError("private_key must be 64 hex digits", param="private_key")
        try:
            private = coincurve.PrivateKey.from_hex(self.private_key_hex)
        except ValueError as exc:
            raise ValidationError(
                "private_key is not a valid secp256k1 secret", param="private_key"
            ) from exc
        object.__setattr__(self, "private_key_hex", self.private_key_hex.lower())
        object.__setattr__(self, "_private", private)

    def public_info(self) -> PublicKeyInfo:
        return PublicKeyInfo(self.key_id, self._private.public_key.format().hex(), self.status)

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes r || s || recovery id over the 32-byte ``digest`` itself (not hashed again);
        libsecp256k1 always produces the low-S form."""
        return self._private.sign_recoverable(digest, hasher=None)


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[SigningKey, ...]
    # Derived once: every verification looks the keys up.
    _public: tuple[PublicKeyInfo, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "_public", tuple(key.public_info() for key in self.keys))
        ids = [key.key_id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ValidationError("Key ids must be unique", param="keys")
        if sum(key.status is KeyStatus.ACTIVE for key in self.keys) != 1:
            raise ValidationError("A keyring needs exactly one active key", param="keys")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "KeyRing":
        """From ``{"keys": [{"key_id", "private_key" (hex), "status"}]}``."""
        entries = _entries(data)
        try:
            return cls(
                tuple(SigningKey(e["key_id"], e["private_key"], e["status"]) for e in entries)
            )
        except KeyError as exc:
            raise ValidationError(f"A key lacks {exc.args[0]!r}", param="keys") from exc

    @classmethod
    def generate(cls, key_id: str) -> "KeyRing":
        """A ring of one fresh active key, for development and tests."""
        return cls((SigningKey(key_id, coincurve.PrivateKey().to_hex(), KeyStatus.ACTIVE),))

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": [
                {"key_id": k.key_id, "private_key": k.private_key_hex, "status": k.status.value}
                for k in self.keys
            ]
        }

    def signer(self) -> SigningKey:
        return next(key for key in self.keys if key.status is KeyStatus.ACTIVE)

    def public_keys(self) -> list[PublicKeyInfo]:
        """Every key, retired ones included, so scanners can tell retired from unknown."""
        return list(self._public)


def public_keys_to_dict(keys: Iterable[PublicKeyInfo]) -> dict[str, Any]:
    """The body of ``GET /api/v1/tickets/keys`` and of a scanner's ``keys.json``."""
    return {
        "keys": [
            {"key_id": k.key_id, "public_key": k.public_key_hex, "status": k.status.value}
            for k in keys
        ]
    }


def public_keys_from_dict(data: Mapping[str, Any]) -> list[PublicKeyInfo]:
    entries = _entries(data)
    try:
        keys = [PublicKeyInfo(e["key_id"], e["public_key"], e["status"]) for e in entries]
    except KeyError as exc:
        raise ValidationError(f"A key lacks {exc.args[0]!r}", param="keys") from exc
    if len({k.key_id for k in keys}) != len(keys):
        raise ValidationError("Key ids must be unique", param="keys")
    return keys


def _entries(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ValidationError('Expected {"keys": [{...}, ...]}', param="keys")
    return entries


def sign(claims: TicketClaims, ring: KeyRing) -> str:
    """The QR payload: base45(claims bytes || signature over sha256(claims bytes))."""
    signer = ring.signer()
    if claims.key_id != signer.key_id:
        raise ValidationError(
            f"The claims name key {claims.key_id!r}; the active key is {signer.key_id!r}",
            param="key_id",
        )
    message = encode_claims(claims)
    return base45.encode(message + signer.sign_digest(hashlib.sha256(message).digest()))

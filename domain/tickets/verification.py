"""Offline verification of a scanned ticket: signature, key, window and revocation, with no
server, as a driver's app without network does it. The server adds its own checks on top
(the ticket exists, belongs to the driver, is unused) with the same vocabulary of reasons."""

import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import coincurve

from domain.errors import ValidationError
from domain.tickets import base45
from domain.tickets.claims import MAX_PAYLOAD_CHARS, SIGNATURE_SIZE, SignedClaims, decode_claims
from domain.tickets.signing import KeyStatus, PublicKeyInfo

_CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class Reason(StrEnum):
    VALID = "valid"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    RETIRED_KEY = "retired_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    # Decided by the server only.
    NOT_FOUND = "not_found"
    WRONG_DRIVER = "wrong_driver"  # also offline, when the scanner gives its driver id
    ALREADY_USED = "already_used"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Verdict:
    """``claims`` is set only once the signature has checked out, so nothing unsigned is ever
    shown or logged as if it were a ticket."""

    valid: bool
    reason: Reason
    claims: SignedClaims | None


def parse_payload(payload: str) -> tuple[SignedClaims, bytes]:
    """The claims and the 65-byte signature of a payload, unverified; ValidationError if it
    is not one."""
    claims, _, signature = _split(payload)
    return claims, signature


def verify_offline(
    payload: str,
    public_keys: Mapping[str, PublicKeyInfo] | Sequence[PublicKeyInfo],
    *,
    now: datetime,
    revoked: Collection[uuid.UUID] = (),
    leeway: timedelta = timedelta(0),
    driver_id: str | None = None,
) -> Verdict:
    """Whether ``payload`` is a valid ticket at ``now``: ``valid_from - leeway <= now <
    valid_until + leeway``, signed by a published key that is not retired, not in
    ``revoked``, and (given ``driver_id``) for that driver. Any payload gets a verdict;
    only a naive ``now`` or a negative ``leeway`` (the caller's mistakes) raise
    ValidationError."""
    if now.utcoffset() is None:
        raise ValidationError("now must be timezone-aware", param="now")
    if leeway < timedelta(0):
        raise ValidationError("leeway cannot be negative", param="leeway")
    try:
        claims, message, signature = _split(payload)
    except ValidationError:
        return Verdict(False, Reason.MALFORMED, None)
    keys = (
        public_keys
        if isinstance(public_keys, Mapping)
        else {key.key_id: key for key in public_keys}
    )
    key = keys.get(claims.key_id)
    if key is None or key.key_id != claims.key_id:
        return Verdict(False, Reason.UNKNOWN_KEY, None)
    if key.status is KeyStatus.RETIRED:
        return Verdict(False, Reason.RETIRED_KEY, None)
    if not _signed_by(key, message, signature):
        return Verdict(False, Reason.BAD_SIGNATURE, None)
    if now < claims.valid_from - leeway:
        return Verdict(False, Reason.NOT_YET_VALID, claims)
    if now >= claims.valid_until + leeway:
        return Verdict(False, Reason.EXPIRED, claims)
    if claims.ticket_id in revoked:
        return Verdict(False, Reason.REVOKED, claims)
    if driver_id is not None and not claims.is_for_driver(driver_id):
        return Verdict(False, Reason.WRONG_DRIVER, claims)
    return Verdict(True, Reason.VALID, claims)


def _split(payload: str) -> tuple[SignedClaims, bytes, bytes]:
    if not isinstance(payload, str):
        raise ValidationError("A ticket payload is a string", param="payload")
    if len(payload) > MAX_PAYLOAD_CHARS:  # refused before any work is spent on it
        raise ValidationError("Too long to be a ticket", param="payload")
    raw = base45.decode(payload)
    message, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    if len(signature) != SIGNATURE_SIZE:
        raise ValidationError("Too short to be a ticket", param="payload")
    return decode_claims(message), message, signature


def _signed_by(key: PublicKeyInfo, message: bytes, signature: bytes) -> bool:
    # libsecp256k1 recovers a key from a high-S signature too, so (r, n - s) with the flipped
    # recovery id would pass as a second valid signature: only the low-S form is accepted.
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < s <= _CURVE_ORDER // 2:
        return False
    digest = hashlib.sha256(message).digest()
    try:
        recovered = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except ValueError:
        return False
    return recovered.format(compressed=True) == key.public_key

"""A ticket's claims and their canonical binary encoding, which is what gets signed.

Layout (format version 1), all integers big-endian::

    version:u8  ticket_id:16  valid_from:u32  valid_until:u32
    key_id_length:u8  key_id:ascii  booking_ref:8  driver_ref:8

The booking and the driver are bound by 8-byte SHA-256 commitments, not carried verbatim:
a base45 payload in a version-7 QR at error correction M holds 118 bytes, and after the
65-byte signature two UUID ids would not fit. A scanner checks a commitment against the id
it knows (its own driver id); the server checks both against the ticket row. Decoding
accepts only what encoding produces, so one claims value has exactly one encoding.
"""

import hashlib
import hmac
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.errors import ValidationError

FORMAT_VERSION = 1
ID_MAX_LENGTH = 40
KEY_ID_MAX_LENGTH = 8
REF_SIZE = 8
SIGNATURE_SIZE = 65  # r, s, recovery id

# The payload must fit a QR symbol of version 7 at error correction M in alphanumeric mode,
# which holds 178 characters (ISO/IEC 18004, table 7); base45 spends 3 characters on every
# 2 bytes and 2 on a last odd byte, so 178 characters carry 118 bytes.
QR_MAX_VERSION = 7
QR_ERROR = "M"
MAX_PAYLOAD_CHARS = 178
MAX_PAYLOAD_BYTES = MAX_PAYLOAD_CHARS // 3 * 2 + MAX_PAYLOAD_CHARS % 3 // 2
MAX_CLAIMS_BYTES = MAX_PAYLOAD_BYTES - SIGNATURE_SIZE

_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]+")
_TIMES = struct.Struct(">II")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = _EPOCH + timedelta(seconds=2**32 - 1)


@dataclass(frozen=True)
class TicketClaims:
    """What a ticket asserts. Times are normalised to UTC whole seconds (the fraction is
    dropped, as JWT times do), which is all the encoding carries.

    The ticket is valid iff ``valid_from <= now < valid_until``.
    """

    ticket_id: uuid.UUID
    booking_id: str
    driver_id: str
    valid_from: datetime
    valid_until: datetime
    key_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.ticket_id, uuid.UUID):
            raise ValidationError("ticket_id must be a UUID", param="ticket_id")
        check_id(self.booking_id, "booking_id", ID_MAX_LENGTH)
        check_id(self.driver_id, "driver_id", ID_MAX_LENGTH)
        check_id(self.key_id, "key_id", KEY_ID_MAX_LENGTH)
        for name in ("valid_from", "valid_until"):
            object.__setattr__(self, name, _checked_time(getattr(self, name), name))
        if self.valid_until <= self.valid_from:
            raise ValidationError("valid_until must be after valid_from", param="valid_until")


def check_id(value: object, param: str, max_length: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise ValidationError(f"{param} must be 1 to {max_length} characters", param=param)
    if not _ID_PATTERN.fullmatch(value):
        raise ValidationError(f"{param} may hold only A-Z a-z 0-9 _ . : -", param=param)


def _checked_time(value: object, param: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(f"{param} must be a timezone-aware datetime", param=param)
    if not _EPOCH <= value <= _LATEST:
        raise ValidationError(f"{param} must be between 1970 and 2106", param=param)
    return value.astimezone(UTC).replace(microsecond=0)


def ref(kind: str, value: str) -> bytes:
    """The commitment to a booking or driver id that a ticket carries."""
    return hashlib.sha256(f"tollgate-ticket/{kind}\x00{value}".encode()).digest()[:REF_SIZE]


@dataclass(frozen=True)
class SignedClaims:
    """What a payload tells a verifier: the booking and driver only as commitments."""

    ticket_id: uuid.UUID
    valid_from: datetime
    valid_until: datetime
    key_id: str
    booking_ref: bytes
    driver_ref: bytes

    def is_for_driver(self, driver_id: str) -> bool:
        return hmac.compare_digest(self.driver_ref, ref("driver", driver_id))

    def is_for_booking(self, booking_id: str) -> bool:
        return hmac.compare_digest(self.booking_ref, ref("booking", booking_id))


def encode_claims(claims: TicketClaims) -> bytes:
    key_id = claims.key_id.encode("ascii")
    data = b"".join(
        (
            bytes((FORMAT_VERSION,)),
            claims.ticket_id.bytes,
            _TIMES.pack(_seconds(claims.valid_from), _seconds(claims.valid_until)),
            bytes((len(key_id),)),
            key_id,
            ref("booking", claims.booking_id),
            ref("driver", claims.driver_id),
        )
    )
    # The layout's largest case fits by construction; this guards the constants.
    assert len(data) <= MAX_CLAIMS_BYTES, len(data)
    return data


def decode_claims(data: bytes) -> SignedClaims:
    """The claims ``data`` encodes; anything ``encode_claims`` would not produce is refused."""
    if len(data) > MAX_CLAIMS_BYTES:
        raise _malformed("longer than a ticket can be")
    reader = _Reader(data)
    if reader.take(1)[0] != FORMAT_VERSION:
        raise _malformed("unknown format version")
    ticket_id = uuid.UUID(bytes=reader.take(16))
    valid_from, valid_until = _TIMES.unpack(reader.take(_TIMES.size))
    try:
        key_id = reader.take(reader.take(1)[0]).decode("ascii")
        check_id(key_id, "key_id", KEY_ID_MAX_LENGTH)
    except (UnicodeDecodeError, ValidationError) as exc:
        raise _malformed("bad key id") from exc
    booking_ref, driver_ref = reader.take(REF_SIZE), reader.take(REF_SIZE)
    if reader.offset != len(data):
        raise _malformed("trailing bytes")
    if valid_until <= valid_from:
        raise _malformed("empty validity window")
    return SignedClaims(
        ticket_id=ticket_id,
        valid_from=_EPOCH + timedelta(seconds=valid_from),
        valid_until=_EPOCH + timedelta(seconds=valid_until),
        key_id=key_id,
        booking_ref=booking_ref,
        driver_ref=driver_ref,
    )


def _seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise _malformed("truncated")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk


def _malformed(why: str) -> ValidationError:
    return ValidationError(f"Malformed ticket claims: {why}", param="payload")

import hashlib
import string
import struct
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.tickets import base45
from domain.tickets.claims import (
    ID_MAX_LENGTH,
    KEY_ID_MAX_LENGTH,
    MAX_CLAIMS_BYTES,
    MAX_PAYLOAD_CHARS,
    REF_SIZE,
    SIGNATURE_SIZE,
    SignedClaims,
    TicketClaims,
    decode_claims,
    encode_claims,
    ref,
)
from domain.tickets.signing import (
    KeyRing,
    KeyStatus,
    public_keys_from_dict,
    public_keys_to_dict,
    sign,
)
from domain.tickets.verification import Reason, Verdict, parse_payload, verify_offline

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ID_ALPHABET = string.ascii_letters + string.digits + "_.:-"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
RING = KeyRing.generate("k1")
KEYS = RING.public_keys()


def claims(**changes: Any) -> TicketClaims:
    base = TicketClaims(
        ticket_id=uuid.UUID("6f1c1f56-3d0e-4a59-9c39-2f3b8d1f6a10"),
        booking_id="bk_1001",
        driver_id="drv_7",
        valid_from=T0,
        valid_until=T0 + timedelta(hours=2),
        key_id="k1",
    )
    return replace(base, **changes)


def signed(c: TicketClaims) -> SignedClaims:
    """What a verifier should learn from a ticket with claims ``c``."""
    return SignedClaims(
        ticket_id=c.ticket_id,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        key_id=c.key_id,
        booking_ref=ref("booking", c.booking_id),
        driver_ref=ref("driver", c.driver_id),
    )


def pack(s: SignedClaims) -> bytes:
    """The documented layout (format version 1), written out independently of the code
    under test: version ticket_id valid_from valid_until key_id_length key_id booking_ref
    driver_ref, integers big-endian."""
    key_id = s.key_id.encode("ascii")
    window = struct.pack(
        ">II",
        (s.valid_from - EPOCH) // timedelta(seconds=1),
        (s.valid_until - EPOCH) // timedelta(seconds=1),
    )
    return (
        b"\x01"
        + s.ticket_id.bytes
        + window
        + bytes([len(key_id)])
        + key_id
        + s.booking_ref
        + s.driver_ref
    )


CLAIMS = claims()
SIGNED = signed(CLAIMS)
PAYLOAD = sign(CLAIMS, RING)


def ring_of(*keys: tuple[KeyRing, KeyStatus]) -> KeyRing:
    """One ring holding the (single) keys of other rings, each with a new status."""
    return KeyRing.from_dict(
        {"keys": [{**ring.to_dict()["keys"][0], "status": status} for ring, status in keys]}
    )


ids = st.one_of(st.uuids().map(str), st.text(ID_ALPHABET, min_size=1, max_size=ID_MAX_LENGTH))
key_ids = st.text(ID_ALPHABET, min_size=1, max_size=KEY_ID_MAX_LENGTH)


@st.composite
def any_claims(draw: st.DrawFn) -> TicketClaims:
    start = draw(st.integers(0, 2**32 - 2))
    end = draw(st.integers(start + 1, 2**32 - 1))
    return TicketClaims(
        ticket_id=draw(st.uuids()),
        booking_id=draw(ids),
        driver_id=draw(ids),
        valid_from=EPOCH + timedelta(seconds=start),
        valid_until=EPOCH + timedelta(seconds=end),
        key_id=draw(key_ids),
    )


# Signing and verifying


def test_a_signed_ticket_verifies_offline() -> None:
    verdict = verify_offline(PAYLOAD, KEYS, now=T0 + timedelta(minutes=5))
    assert verdict == Verdict(True, Reason.VALID, SIGNED)
    assert parse_payload(PAYLOAD)[0] == SIGNED
    assert len(parse_payload(PAYLOAD)[1]) == SIGNATURE_SIZE
    by_id = {key.key_id: key for key in KEYS}
    assert verify_offline(PAYLOAD, by_id, now=T0).valid


def test_the_signature_is_recoverable_over_the_sha256_digest_itself() -> None:
    raw = base45.decode(PAYLOAD)
    message, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    assert message == encode_claims(CLAIMS)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature, hashlib.sha256(message).digest(), hasher=None
    )
    assert recovered.format().hex() == KEYS[0].public_key_hex
    assert int.from_bytes(signature[32:64], "big") <= CURVE_ORDER // 2


def test_signing_refuses_claims_naming_another_key() -> None:
    with pytest.raises(ValidationError) as caught:
        sign(claims(key_id="k2"), RING)
    assert caught.value.param == "key_id"


def mutate(raw: bytes, index: int, value: int) -> bytes:
    changed = bytearray(raw)
    changed[index] = value
    return bytes(changed)


def test_every_single_byte_change_is_refused() -> None:
    raw = base45.decode(PAYLOAD)
    for index, original in enumerate(raw):
        for value in range(256):
            if value != original:
                payload = base45.encode(mutate(raw, index, value))
                verdict = verify_offline(payload, KEYS, now=T0, driver_id="drv_7")
                assert not verdict.valid, (index, value)
                assert verdict.reason is not Reason.VALID, (index, value)


@given(any_claims(), st.data())
@settings(max_examples=200, deadline=None)
def test_any_single_byte_change_of_any_ticket_is_refused(
    ticket: TicketClaims, data: st.DataObject
) -> None:
    ring = KeyRing.generate(ticket.key_id)
    payload = sign(ticket, ring)
    assert verify_offline(payload, ring.public_keys(), now=ticket.valid_from).valid
    raw = base45.decode(payload)
    index = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[index]))
    verdict = verify_offline(
        base45.encode(mutate(raw, index, value)), ring.public_keys(), now=ticket.valid_from
    )
    assert not verdict.valid
    assert verdict.reason is not Reason.VALID


@given(
    st.one_of(
        st.text(),
        st.text(base45.ALPHABET),
        st.binary(max_size=200).map(base45.encode),
        st.binary(min_size=SIGNATURE_SIZE, max_size=150).map(
            lambda tail: base45.encode(b"\x01" + tail)
        ),
        # Well-formed claims under a signature nobody made.
        st.tuples(any_claims(), st.binary(min_size=SIGNATURE_SIZE, max_size=SIGNATURE_SIZE)).map(
            lambda pair: base45.encode(encode_claims(pair[0]) + pair[1])
        ),
    )
)
@settings(max_examples=300)
def test_arbitrary_strings_get_a_verdict_and_never_raise(text: str) -> None:
    verdict = verify_offline(text, KEYS, now=T0, driver_id="drv_7")
    assert isinstance(verdict, Verdict)
    assert not verdict.valid


def test_non_strings_are_malformed() -> None:
    assert verify_offline(None, KEYS, now=T0).reason is Reason.MALFORMED  # type: ignore[arg-type]
    assert verify_offline("", KEYS, now=T0).reason is Reason.MALFORMED
    assert verify_offline("A" * (MAX_PAYLOAD_CHARS + 1), KEYS, now=T0).reason is Reason.MALFORMED
    with pytest.raises(ValidationError):
        parse_payload("not a ticket")


def test_a_key_nobody_published_is_unknown() -> None:
    stranger = KeyRing.generate("k9")
    payload = sign(claims(key_id="k9"), stranger)
    assert verify_offline(payload, KEYS, now=T0) == Verdict(False, Reason.UNKNOWN_KEY, None)


def test_a_published_key_id_with_another_key_is_a_bad_signature() -> None:
    impostor = KeyRing.generate("k1")
    payload = sign(CLAIMS, impostor)
    assert verify_offline(payload, KEYS, now=T0) == Verdict(False, Reason.BAD_SIGNATURE, None)


def test_rotation_old_key_verifies_until_retired() -> None:
    old, new = KeyRing.generate("old"), KeyRing.generate("new")
    old_ticket = sign(claims(key_id="old"), old)
    rotated = ring_of((old, KeyStatus.VERIFY), (new, KeyStatus.ACTIVE))
    assert rotated.signer().key_id == "new"
    new_ticket = sign(claims(key_id="new"), rotated)
    assert verify_offline(old_ticket, rotated.public_keys(), now=T0).valid
    assert verify_offline(new_ticket, rotated.public_keys(), now=T0).valid
    with pytest.raises(ValidationError):
        sign(claims(key_id="old"), rotated)

    retired = ring_of((old, KeyStatus.RETIRED), (new, KeyStatus.ACTIVE))
    assert verify_offline(old_ticket, retired.public_keys(), now=T0) == Verdict(
        False, Reason.RETIRED_KEY, None
    )
    assert verify_offline(new_ticket, retired.public_keys(), now=T0).valid


def test_the_high_s_twin_of_a_valid_signature_is_refused() -> None:
    raw = base45.decode(PAYLOAD)
    message, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (CURVE_ORDER - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])
    # The twin does recover the signer's key: only the explicit low-S rule refuses it.
    recovered = coincurve.PublicKey.from_signature_and_message(
        twin, hashlib.sha256(message).digest(), hasher=None
    )
    assert recovered.format().hex() == KEYS[0].public_key_hex
    verdict = verify_offline(base45.encode(message + twin), KEYS, now=T0)
    assert verdict == Verdict(False, Reason.BAD_SIGNATURE, None)


def test_window_is_valid_from_inclusive_to_valid_until_exclusive() -> None:
    c = CLAIMS
    second = timedelta(seconds=1)
    cases = {
        c.valid_from - second: Reason.NOT_YET_VALID,
        c.valid_from: Reason.VALID,
        c.valid_until - second: Reason.VALID,
        c.valid_until: Reason.EXPIRED,
    }
    for now, reason in cases.items():
        verdict = verify_offline(PAYLOAD, KEYS, now=now)
        assert (verdict.reason, verdict.claims) == (reason, SIGNED), now
    local = c.valid_until.astimezone(timezone(timedelta(hours=5)))
    assert verify_offline(PAYLOAD, KEYS, now=local).reason is Reason.EXPIRED


def test_leeway_widens_the_window_on_both_sides() -> None:
    c, leeway = CLAIMS, timedelta(minutes=2)
    assert verify_offline(PAYLOAD, KEYS, now=c.valid_from - leeway, leeway=leeway).valid
    assert verify_offline(
        PAYLOAD, KEYS, now=c.valid_until + leeway - timedelta(seconds=1), leeway=leeway
    ).valid
    late = verify_offline(PAYLOAD, KEYS, now=c.valid_until + leeway, leeway=leeway)
    assert late.reason is Reason.EXPIRED
    with pytest.raises(ValidationError):
        verify_offline(PAYLOAD, KEYS, now=T0, leeway=-leeway)


def test_a_revoked_ticket_is_refused() -> None:
    verdict = verify_offline(PAYLOAD, KEYS, now=T0, revoked={CLAIMS.ticket_id})
    assert verdict == Verdict(False, Reason.REVOKED, SIGNED)
    assert verify_offline(PAYLOAD, KEYS, now=T0, revoked=[uuid.uuid4()]).valid


def test_a_scanner_refuses_another_drivers_ticket() -> None:
    assert verify_offline(PAYLOAD, KEYS, now=T0, driver_id="drv_7") == Verdict(
        True, Reason.VALID, SIGNED
    )
    # The booking's id, a near miss, another case, a prefix: none is the ticket's driver.
    for other in ("bk_1001", "drv_8", "DRV_7", "drv_", "drv_70"):
        verdict = verify_offline(PAYLOAD, KEYS, now=T0, driver_id=other)
        assert verdict == Verdict(False, Reason.WRONG_DRIVER, SIGNED), other


def test_the_driver_is_checked_after_signature_window_and_revocation() -> None:
    wrong = "drv_8"
    late = CLAIMS.valid_until
    early = CLAIMS.valid_from - timedelta(seconds=1)
    assert verify_offline(PAYLOAD, KEYS, now=late, driver_id=wrong).reason is Reason.EXPIRED
    assert verify_offline(PAYLOAD, KEYS, now=early, driver_id=wrong).reason is (
        Reason.NOT_YET_VALID
    )
    revoked = verify_offline(PAYLOAD, KEYS, now=T0, revoked={CLAIMS.ticket_id}, driver_id=wrong)
    assert revoked.reason is Reason.REVOKED
    forged = sign(CLAIMS, KeyRing.generate("k1"))
    assert verify_offline(forged, KEYS, now=T0, driver_id=wrong) == Verdict(
        False, Reason.BAD_SIGNATURE, None
    )
    assert verify_offline(forged, KEYS, now=T0, driver_id="drv_7") == Verdict(
        False, Reason.BAD_SIGNATURE, None
    )


@given(any_claims(), st.data())
@settings(max_examples=50, deadline=None)
def test_only_the_tickets_driver_gets_a_valid_verdict(
    ticket: TicketClaims, data: st.DataObject
) -> None:
    ring = KeyRing.generate(ticket.key_id)
    payload, keys, now = sign(ticket, ring), ring.public_keys(), ticket.valid_from
    other = data.draw(ids.filter(lambda i: i != ticket.driver_id))
    assert verify_offline(payload, keys, now=now, driver_id=ticket.driver_id) == Verdict(
        True, Reason.VALID, signed(ticket)
    )
    assert verify_offline(payload, keys, now=now, driver_id=other) == Verdict(
        False, Reason.WRONG_DRIVER, signed(ticket)
    )


def test_a_naive_now_is_the_callers_mistake() -> None:
    with pytest.raises(ValidationError) as caught:
        verify_offline(PAYLOAD, KEYS, now=datetime(2030, 1, 1))
    assert caught.value.param == "now"


def test_server_reasons_share_the_vocabulary() -> None:
    assert {r.value for r in Reason} >= {
        "valid", "malformed", "unknown_key", "retired_key", "bad_signature", "not_yet_valid",
        "expired", "revoked", "not_found", "wrong_driver", "already_used", "cancelled",
    }  # fmt: skip


# Claims encoding


def test_claims_follow_the_documented_layout() -> None:
    data = encode_claims(CLAIMS)
    assert (
        data
        == (
            b"\x01"
            + CLAIMS.ticket_id.bytes
            + (1893484800).to_bytes(4, "big")  # 2030-01-01T08:00:00Z
            + (1893484800 + 7200).to_bytes(4, "big")
            + b"\x02k1"
            + hashlib.sha256(b"tollgate-ticket/booking\x00bk_1001").digest()[:8]
            + hashlib.sha256(b"tollgate-ticket/driver\x00drv_7").digest()[:8]
        )
    )
    assert pack(SIGNED) == data
    assert decode_claims(data) == SIGNED


@given(any_claims(), st.data())
@settings(max_examples=200)
def test_claims_round_trip_to_commitments_of_their_ids(
    c: TicketClaims, data: st.DataObject
) -> None:
    packed = encode_claims(c)
    assert len(packed) == 1 + 16 + 8 + 1 + len(c.key_id) + 2 * REF_SIZE <= MAX_CLAIMS_BYTES
    decoded = decode_claims(packed)
    assert decoded == signed(c)
    assert (decoded.booking_ref, decoded.driver_ref) == (
        ref("booking", c.booking_id),
        ref("driver", c.driver_id),
    )
    assert pack(decoded) == packed
    assert decoded.is_for_booking(c.booking_id)
    assert decoded.is_for_driver(c.driver_id)
    # The two commitments are kept apart: a booking id only passes as the driver's if the
    # two ids are the same string.
    assert decoded.is_for_driver(c.booking_id) == (c.booking_id == c.driver_id)
    assert decoded.is_for_booking(c.driver_id) == (c.booking_id == c.driver_id)
    other_driver = data.draw(ids.filter(lambda i: i != c.driver_id), label="other driver")
    other_booking = data.draw(ids.filter(lambda i: i != c.booking_id), label="other booking")
    assert not decoded.is_for_driver(other_driver)
    assert not decoded.is_for_booking(other_booking)


def test_commitments_are_separated_by_kind() -> None:
    assert len(ref("booking", "x")) == len(ref("driver", "x")) == REF_SIZE
    assert ref("booking", "x") != ref("driver", "x")
    assert ref("driver", "x") == ref("driver", "x") != ref("driver", "X")


@given(any_claims(), st.data())
@settings(max_examples=200)
def test_every_accepted_encoding_is_the_canonical_one(c: TicketClaims, data: st.DataObject) -> None:
    raw = encode_claims(c)
    index = data.draw(st.integers(0, len(raw) - 1))
    changed = mutate(raw, index, data.draw(st.integers(0, 255)))
    try:
        decoded = decode_claims(changed)
    except ValidationError:
        return
    assert pack(decoded) == changed
    assert (decoded == decode_claims(raw)) == (changed == raw)


def test_every_accepted_single_byte_change_of_a_ticket_is_a_different_canonical_one() -> None:
    raw = encode_claims(CLAIMS)
    accepted = 0
    for index, original in enumerate(raw):
        for value in range(256):
            if value == original:
                continue
            changed = mutate(raw, index, value)
            try:
                decoded = decode_claims(changed)
            except ValidationError:
                continue
            accepted += 1
            assert pack(decoded) == changed, (index, value)
            assert decoded != SIGNED, (index, value)
    assert accepted > 0  # the ticket id and the refs take any byte


def test_decoding_refuses_what_encoding_would_not_produce() -> None:
    good = encode_claims(CLAIMS)
    head, refs = good[:25], good[28:]
    assert head + b"\x02k1" + refs == good
    valid_from, valid_until = good[17:21], good[21:25]
    bad = {
        "trailing byte": good + b"\x00",
        "over the budget": good + b"\x00" * (MAX_CLAIMS_BYTES - len(good) + 1),
        "empty": b"",
        "version 0": b"\x00" + good[1:],
        "version 2": b"\x02" + good[1:],
        "empty key id": head + b"\x00" + refs,
        "key id too long": head + b"\x09" + b"k" * 9 + refs,
        "key id past the end": head + b"\x30k1" + refs,
        "non-ascii key id": head + b"\x02" + "é".encode() + refs,
        "forbidden char in key id": head + b"\x02k " + refs,
        "window reversed": good[:17] + valid_until + valid_from + good[25:],
        "window empty": good[:17] + valid_from + valid_from + good[25:],
    }
    bad |= {f"truncated to {n}": good[:n] for n in range(len(good))}
    for why, data in bad.items():
        with pytest.raises(ValidationError) as caught:
            decode_claims(data)
        assert caught.value.param == "payload", why
        verdict = verify_offline(base45.encode(data + b"\x00" * 65), KEYS, now=T0)
        assert verdict == Verdict(False, Reason.MALFORMED, None), why


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"booking_id": ""}, "booking_id"),
        ({"booking_id": "b" * 41}, "booking_id"),
        ({"driver_id": "drv 7"}, "driver_id"),
        ({"driver_id": "drv/7"}, "driver_id"),
        ({"driver_id": "d" * 41}, "driver_id"),
        ({"key_id": ""}, "key_id"),
        ({"key_id": "k" * 9}, "key_id"),
        ({"key_id": "k é"}, "key_id"),
        ({"ticket_id": "6f1c1f56-3d0e-4a59-9c39-2f3b8d1f6a10"}, "ticket_id"),
        ({"valid_from": datetime(2030, 1, 1, 8)}, "valid_from"),
        ({"valid_from": datetime(1969, 12, 31, tzinfo=UTC)}, "valid_from"),
        ({"valid_until": datetime(2106, 2, 8, tzinfo=UTC)}, "valid_until"),
        ({"valid_until": T0}, "valid_until"),
    ],
)
def test_claims_validation(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as caught:
        claims(**changes)
    assert caught.value.param == param


def test_claims_times_are_normalised_to_utc_whole_seconds() -> None:
    local = T0.astimezone(timezone(timedelta(hours=-3)))
    c = claims(valid_from=local + timedelta(microseconds=999_999))
    assert c.valid_from.tzinfo is UTC
    assert c == CLAIMS
    with pytest.raises(ValidationError) as caught:
        claims(valid_until=T0 + timedelta(microseconds=500_000))
    assert caught.value.param == "valid_until"


def test_the_largest_ticket_fits_the_qr_budget() -> None:
    key_id = "k" * KEY_ID_MAX_LENGTH
    booking, driver = str(uuid.uuid4()) + ":v01", "d" * ID_MAX_LENGTH
    assert len(booking) == ID_MAX_LENGTH
    biggest = claims(key_id=key_id, booking_id=booking, driver_id=driver)
    packed = encode_claims(biggest)
    assert len(packed) == 1 + 16 + 8 + 1 + KEY_ID_MAX_LENGTH + 2 * REF_SIZE <= MAX_CLAIMS_BYTES
    ring = KeyRing.generate(key_id)
    payload = sign(biggest, ring)
    assert len(payload) <= MAX_PAYLOAD_CHARS
    verdict = verify_offline(payload, ring.public_keys(), now=T0, driver_id=driver)
    assert verdict == Verdict(True, Reason.VALID, signed(biggest))
    assert verdict.claims is not None and verdict.claims.is_for_booking(booking)


# Keys


def test_keyring_round_trips_and_publishes_compressed_keys() -> None:
    rotated = ring_of((KeyRing.generate("a"), KeyStatus.VERIFY), (RING, KeyStatus.ACTIVE))
    assert KeyRing.from_dict(rotated.to_dict()) == rotated
    published = rotated.public_keys()
    assert [(k.key_id, k.status) for k in published] == [
        ("a", KeyStatus.VERIFY),
        ("k1", KeyStatus.ACTIVE),
    ]
    assert all(len(bytes.fromhex(k.public_key_hex)) == 33 for k in published)
    assert public_keys_from_dict(public_keys_to_dict(published)) == published
    assert public_keys_to_dict(published)["keys"][1] == {
        "key_id": "k1",
        "public_key": KEYS[0].public_key_hex,
        "status": "active",
    }
    assert rotated.signer().private_key_hex not in repr(rotated)


def test_keyring_validation() -> None:
    entry = RING.to_dict()["keys"][0]
    bad_rings: list[Any] = [
        {},
        {"keys": "x"},
        {"keys": []},
        {"keys": [{**entry, "status": "verify"}]},
        {"keys": [entry, {**entry, "status": "verify"}]},
        {"keys": [{**entry, "status": "sleeping"}]},
        {"keys": [{**entry, "private_key": "00" * 32}]},
        {"keys": [{**entry, "private_key": "zz" * 32}]},
        {"keys": [{"key_id": "k1", "status": "active"}]},
        {"keys": [{**entry, "key_id": "bad id"}]},
        {"keys": [{**entry, "key_id": "k" * 9}]},
    ]
    for data in bad_rings:
        with pytest.raises(ValidationError):
            KeyRing.from_dict(data)
    published = public_keys_to_dict(KEYS)["keys"][0]
    bad_keys: list[Any] = [
        [],
        {"keys": [{**published, "public_key": "04" + "00" * 32}]},
        {"keys": [{**published, "public_key": published["public_key"][:-2]}]},
        {"keys": [published, published]},
        {"keys": [{**published, "status": None}]},
        {"keys": [{**published, "key_id": "k" * 9}]},
    ]
    for data in bad_keys:
        with pytest.raises(ValidationError):
            public_keys_from_dict(data)


# Base45


@pytest.mark.parametrize(
    ("plain", "encoded"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ],
)
def test_base45_rfc9285_vectors(plain: bytes, encoded: str) -> None:
    assert base45.encode(plain) == encoded
    assert base45.decode(encoded) == plain


@pytest.mark.parametrize("text", ["GGW", "::", "A", "BB8A", "bb8", "BB8\n", "ÄB8", "B"])
def test_base45_refuses_invalid_text(text: str) -> None:
    with pytest.raises(ValidationError):
        base45.decode(text)


@given(st.binary(max_size=300))
def test_base45_round_trip(data: bytes) -> None:
    encoded = base45.encode(data)
    assert len(encoded) == len(data) // 2 * 3 + len(data) % 2 * 2
    assert base45.decode(encoded) == data


@given(st.text(base45.ALPHABET, max_size=60))
def test_base45_decoding_is_one_to_one(text: str) -> None:
    try:
        data = base45.decode(text)
    except ValidationError:
        return
    assert base45.encode(data) == text


def test_payload_is_qr_alphanumeric() -> None:
    assert set(PAYLOAD) <= set(base45.ALPHABET)
    assert len(PAYLOAD) <= MAX_PAYLOAD_CHARS

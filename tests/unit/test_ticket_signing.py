import hashlib
import string
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
from domain.tickets import claims as claims_module
from domain.tickets.claims import (
    MAX_CLAIMS_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_CHARS,
    SIGNATURE_SIZE,
    TicketClaims,
    decode_claims,
    encode_claims,
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


PAYLOAD = sign(claims(), RING)


def ring_of(*keys: tuple[KeyRing, KeyStatus]) -> KeyRing:
    """One ring holding the (single) keys of other rings, each with a new status."""
    return KeyRing.from_dict(
        {"keys": [{**ring.to_dict()["keys"][0], "status": status} for ring, status in keys]}
    )


def encoded_size(c: TicketClaims) -> int:
    def field(value: str) -> int:
        try:
            return 17 if str(uuid.UUID(value)) == value else 2 + len(value)
        except ValueError:
            return 2 + len(value)

    return 1 + 16 + 8 + field(c.key_id) + field(c.booking_id) + field(c.driver_id)


ids = st.one_of(st.uuids().map(str), st.text(ID_ALPHABET, min_size=1, max_size=40))


@st.composite
def any_claims(draw: st.DrawFn, id_strategy: st.SearchStrategy[str] = ids) -> TicketClaims:
    start = draw(st.integers(0, 2**32 - 2))
    end = draw(st.integers(start + 1, 2**32 - 1))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return TicketClaims(
        ticket_id=draw(st.uuids()),
        booking_id=draw(id_strategy),
        driver_id=draw(id_strategy),
        valid_from=epoch + timedelta(seconds=start),
        valid_until=epoch + timedelta(seconds=end),
        key_id=draw(st.text(ID_ALPHABET, min_size=1, max_size=16)),
    )


short_ids = st.one_of(st.uuids().map(str), st.text(ID_ALPHABET, min_size=1, max_size=12))
fitting_claims = any_claims(short_ids).filter(lambda c: encoded_size(c) <= MAX_CLAIMS_BYTES)


# Signing and verifying


def test_a_signed_ticket_verifies_offline() -> None:
    verdict = verify_offline(PAYLOAD, KEYS, now=T0 + timedelta(minutes=5))
    assert verdict == Verdict(True, Reason.VALID, claims())
    assert parse_payload(PAYLOAD)[0] == claims()
    assert len(parse_payload(PAYLOAD)[1]) == SIGNATURE_SIZE
    by_id = {key.key_id: key for key in KEYS}
    assert verify_offline(PAYLOAD, by_id, now=T0).valid


def test_the_signature_is_recoverable_over_the_sha256_digest_itself() -> None:
    raw = base45.decode(PAYLOAD)
    message, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    assert message == encode_claims(claims())
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature, hashlib.sha256(message).digest(), hasher=None
    )
    assert recovered.format().hex() == KEYS[0].public_key_hex
    assert int.from_bytes(signature[32:64], "big") <= CURVE_ORDER // 2


def test_signing_refuses_claims_naming_another_key() -> None:
    with pytest.raises(ValidationError) as caught:
        sign(claims(key_id="k2"), RING)
    assert caught.value.param == "key_id"


def mutate(raw: bytes, index: int, value: int) -> str:
    changed = bytearray(raw)
    changed[index] = value
    return base45.encode(bytes(changed))


def test_every_single_byte_change_is_refused() -> None:
    raw = base45.decode(PAYLOAD)
    for index, original in enumerate(raw):
        for value in range(256):
            if value != original:
                verdict = verify_offline(mutate(raw, index, value), KEYS, now=T0)
                assert not verdict.valid, (index, value)


@given(fitting_claims, st.data())
@settings(max_examples=200, deadline=None)
def test_any_single_byte_change_of_any_ticket_is_refused(
    ticket: TicketClaims, data: st.DataObject
) -> None:
    ring = KeyRing.generate(ticket.key_id)
    payload = sign(ticket, ring)
    raw = base45.decode(payload)
    index = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[index]))
    verdict = verify_offline(mutate(raw, index, value), ring.public_keys(), now=T0)
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
    )
)
@settings(max_examples=500)
def test_arbitrary_strings_get_a_verdict_and_never_raise(text: str) -> None:
    verdict = verify_offline(text, KEYS, now=T0)
    assert isinstance(verdict, Verdict)
    assert not verdict.valid


def test_non_strings_are_malformed() -> None:
    assert verify_offline(None, KEYS, now=T0).reason is Reason.MALFORMED  # type: ignore[arg-type]
    assert verify_offline("", KEYS, now=T0).reason is Reason.MALFORMED
    with pytest.raises(ValidationError):
        parse_payload("not a ticket")


def test_a_key_nobody_published_is_unknown() -> None:
    stranger = KeyRing.generate("k9")
    payload = sign(claims(key_id="k9"), stranger)
    assert verify_offline(payload, KEYS, now=T0) == Verdict(False, Reason.UNKNOWN_KEY, None)


def test_a_published_key_id_with_another_key_is_a_bad_signature() -> None:
    impostor = KeyRing.generate("k1")
    payload = sign(claims(), impostor)
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
    c = claims()
    second = timedelta(seconds=1)
    cases = {
        c.valid_from - second: Reason.NOT_YET_VALID,
        c.valid_from: Reason.VALID,
        c.valid_until - second: Reason.VALID,
        c.valid_until: Reason.EXPIRED,
    }
    for now, reason in cases.items():
        verdict = verify_offline(PAYLOAD, KEYS, now=now)
        assert (verdict.reason, verdict.claims) == (reason, c), now
    local = c.valid_until.astimezone(timezone(timedelta(hours=5)))
    assert verify_offline(PAYLOAD, KEYS, now=local).reason is Reason.EXPIRED


def test_leeway_widens_the_window_on_both_sides() -> None:
    c, leeway = claims(), timedelta(minutes=2)
    assert verify_offline(PAYLOAD, KEYS, now=c.valid_from - leeway, leeway=leeway).valid
    assert verify_offline(
        PAYLOAD, KEYS, now=c.valid_until + leeway - timedelta(seconds=1), leeway=leeway
    ).valid
    late = verify_offline(PAYLOAD, KEYS, now=c.valid_until + leeway, leeway=leeway)
    assert late.reason is Reason.EXPIRED
    with pytest.raises(ValidationError):
        verify_offline(PAYLOAD, KEYS, now=T0, leeway=-leeway)


def test_a_revoked_ticket_is_refused() -> None:
    verdict = verify_offline(PAYLOAD, KEYS, now=T0, revoked={claims().ticket_id})
    assert verdict == Verdict(False, Reason.REVOKED, claims())
    assert verify_offline(PAYLOAD, KEYS, now=T0, revoked=[uuid.uuid4()]).valid


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


@given(any_claims())
@settings(max_examples=300)
def test_claims_round_trip_or_refuse_to_exceed_the_qr_budget(c: TicketClaims) -> None:
    if encoded_size(c) > MAX_CLAIMS_BYTES:
        with pytest.raises(ValidationError) as caught:
            encode_claims(c)
        assert (caught.value.code, caught.value.param) == ("ticket_too_large", "claims")
        return
    data = encode_claims(c)
    assert len(data) == encoded_size(c)
    assert decode_claims(data) == c
    assert encode_claims(decode_claims(data)) == data


@given(fitting_claims, st.data())
@settings(max_examples=300)
def test_every_accepted_encoding_is_the_canonical_one(c: TicketClaims, data: st.DataObject) -> None:
    raw = bytearray(encode_claims(c))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_claims(bytes(raw))
    except ValidationError:
        return
    assert encode_claims(decoded) == bytes(raw)


def test_uuid_shaped_ids_take_16_bytes_and_others_their_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    booking = str(uuid.uuid4())
    packed = encode_claims(claims(booking_id=booking, driver_id="d"))
    assert len(packed) == 1 + 16 + 8 + (2 + 2) + 17 + (2 + 1)
    assert decode_claims(packed).booking_id == booking
    # A UUID as text never fits a version-7 QR; with a roomier budget the rule still holds.
    monkeypatch.setattr(claims_module, "MAX_CLAIMS_BYTES", 200)
    upper = booking.upper()  # not canonical: kept as text, and comes back as written
    packed = encode_claims(claims(booking_id=upper, driver_id="d"))
    assert len(packed) == 1 + 16 + 8 + (2 + 2) + (2 + 36) + (2 + 1)
    assert decode_claims(packed).booking_id == upper
    head, driver = packed[:29], packed[-3:]
    with pytest.raises(ValidationError, match="UUID id stored as text"):
        decode_claims(head + text_field(booking.encode()) + driver)


def text_field(value: bytes) -> bytes:
    return bytes([0x02, len(value)]) + value


def test_decoding_refuses_what_encoding_would_not_produce() -> None:
    good = encode_claims(claims())
    head = good[:25]
    key, booking, driver = text_field(b"k1"), text_field(b"bk_1001"), text_field(b"drv_7")
    assert head + key + booking + driver == good
    bad = {
        "trailing byte": good + b"\x00",
        "truncated": good[:-1],
        "empty": b"",
        "unknown version": b"\x02" + good[1:],
        "unknown tag": head + key + b"\x03" + booking[1:] + driver,
        "empty id": head + key + text_field(b"") + driver,
        "non-ascii id": head + key + text_field("bé".encode()) + driver,
        "forbidden char": head + key + text_field(b"bk 1") + driver,
        "id too long": head + key + text_field(b"b" * 41) + driver,
        "window reversed": head[:17] + head[21:25] + head[17:21] + key + booking + driver,
        "over budget": head + key + text_field(b"b" * 30) + driver,
    }
    for why, data in bad.items():
        with pytest.raises(ValidationError):
            decode_claims(data)
        verdict = verify_offline(base45.encode(data + b"\x00" * 65), KEYS, now=T0)
        assert verdict.reason is Reason.MALFORMED, why


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"booking_id": ""}, "booking_id"),
        ({"booking_id": "b" * 41}, "booking_id"),
        ({"driver_id": "drv 7"}, "driver_id"),
        ({"driver_id": "drv/7"}, "driver_id"),
        ({"key_id": "k" * 17}, "key_id"),
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
    assert c == claims()
    with pytest.raises(ValidationError) as caught:
        claims(valid_until=T0 + timedelta(microseconds=500_000))
    assert caught.value.param == "valid_until"


def test_a_maximal_ticket_fills_the_qr_budget_exactly() -> None:
    fixed = 1 + 16 + 8 + (2 + 16)  # version, ticket id, window, a 16-character key id
    room = MAX_CLAIMS_BYTES - fixed - 2 - 2  # what is left for the two ids' text
    booking, driver = room // 2, room - room // 2
    ring = KeyRing.generate("k" * 16)
    biggest = claims(key_id="k" * 16, booking_id="b" * booking, driver_id="d" * driver)
    assert len(encode_claims(biggest)) == MAX_CLAIMS_BYTES
    payload = sign(biggest, ring)
    assert len(base45.decode(payload)) == MAX_PAYLOAD_BYTES
    assert MAX_PAYLOAD_CHARS - 1 <= len(payload) <= MAX_PAYLOAD_CHARS
    with pytest.raises(ValidationError) as caught:
        sign(replace(biggest, driver_id="d" * (driver + 1)), ring)
    assert caught.value.code == "ticket_too_large"


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

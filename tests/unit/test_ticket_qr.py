import io
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import segno
import zxingcpp
from PIL import Image

from domain.errors import ValidationError
from domain.tickets import base45
from domain.tickets.claims import (
    ID_MAX_LENGTH,
    KEY_ID_MAX_LENGTH,
    MAX_CLAIMS_BYTES,
    MAX_PAYLOAD_CHARS,
    QR_MAX_VERSION,
    SIGNATURE_SIZE,
    TicketClaims,
    encode_claims,
)
from domain.tickets.qr import etag, render
from domain.tickets.signing import KeyRing, sign
from domain.tickets.verification import Reason, verify_offline

T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
BOOKING = str(uuid.UUID("0b6b3f4e-5f0a-4c55-9a43-6d1c1b1f0a77")) + ":v01"
DRIVER = "drv_" + "9" * (ID_MAX_LENGTH - 4)


def ticket(key_id: str, booking_id: str, driver_id: str) -> tuple[str, KeyRing]:
    claims = TicketClaims(
        ticket_id=uuid.uuid4(),
        booking_id=booking_id,
        driver_id=driver_id,
        valid_from=T0,
        valid_until=T0 + timedelta(hours=1),
        key_id=key_id,
    )
    ring = KeyRing.generate(key_id)
    return sign(claims, ring), ring


def largest_ticket() -> tuple[str, KeyRing]:
    """A ticket as large as tickets get: 40-character ids and an 8-character key id."""
    assert len(BOOKING) == len(DRIVER) == ID_MAX_LENGTH
    payload, ring = ticket("K" * KEY_ID_MAX_LENGTH, BOOKING, DRIVER)
    claims_size = len(base45.decode(payload)) - SIGNATURE_SIZE
    assert claims_size == 1 + 16 + 8 + 1 + KEY_ID_MAX_LENGTH + 8 + 8 <= MAX_CLAIMS_BYTES
    assert len(payload) <= MAX_PAYLOAD_CHARS
    return payload, ring


PAYLOAD, RING = largest_ticket()
SMALLEST, _ = ticket("k", "b", "d")


def scan(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [b.format for b in found] == [zxingcpp.BarcodeFormat.QRCode]
    return found[0].text


@pytest.mark.parametrize("payload", [PAYLOAD, SMALLEST], ids=["largest", "smallest"])
def test_tickets_fit_qr_version_7_at_error_correction_m(payload: str) -> None:
    auto = segno.make(payload, error="m", micro=False)
    forced = segno.make(payload, error="m", micro=False, mode="alphanumeric", boost_error=False)
    for code in (auto, forced):
        assert code.mode == "alphanumeric"
        assert int(code.version) <= QR_MAX_VERSION == 7
    assert forced.error == "M"
    assert scan(render(payload, "png", 4)) == payload


def test_the_png_of_the_largest_ticket_scans_back_to_a_valid_ticket() -> None:
    png = render(PAYLOAD, "png", 4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == ((45 + 2 * 4) * 4,) * 2  # version 7 is 45 modules, plus the border
    scanned = scan(png)
    assert scanned == PAYLOAD
    verdict = verify_offline(scanned, RING.public_keys(), now=T0, driver_id=DRIVER)
    assert verdict.reason is Reason.VALID
    assert verdict.claims is not None and verdict.claims.is_for_booking(BOOKING)
    assert base45.decode(scanned)[:-SIGNATURE_SIZE] == encode_claims(
        TicketClaims(
            ticket_id=verdict.claims.ticket_id,
            booking_id=BOOKING,
            driver_id=DRIVER,
            valid_from=T0,
            valid_until=T0 + timedelta(hours=1),
            key_id="K" * KEY_ID_MAX_LENGTH,
        )
    )


def test_the_svg_is_an_svg_document() -> None:
    svg = render(PAYLOAD, "svg", 3)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == str((45 + 2 * 4) * 3)


def test_rendering_is_deterministic_and_the_etag_follows_its_inputs() -> None:
    assert render(PAYLOAD, "png", 4) == render(PAYLOAD, "png", 4)
    tag = etag(PAYLOAD, "png", 4)
    assert tag == etag(PAYLOAD, "png", 4)
    assert tag.startswith('"') and tag.endswith('"')
    others = {etag(PAYLOAD, "svg", 4), etag(PAYLOAD, "png", 5), etag(PAYLOAD[:-3], "png", 4)}
    assert tag not in others
    assert len(others) == 3


@pytest.mark.parametrize(("fmt", "scale"), [("png", 0), ("svg", 21), ("png", True), ("gif", 4)])
def test_format_and_scale_are_checked(fmt: str, scale: int) -> None:
    param = "format" if fmt == "gif" else "scale"
    for call in (render, etag):
        with pytest.raises(ValidationError) as caught:
            call(PAYLOAD, fmt, scale)  # type: ignore[arg-type]
        assert caught.value.param == param


@pytest.mark.parametrize("payload", ["", "not base45", "A" * 179])
def test_only_ticket_sized_alphanumeric_payloads_render(payload: str) -> None:
    with pytest.raises(ValidationError) as caught:
        render(payload, "png", 4)
    assert caught.value.param == "payload"

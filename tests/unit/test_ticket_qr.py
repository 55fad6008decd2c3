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
from domain.tickets.claims import MAX_CLAIMS_BYTES, MAX_PAYLOAD_BYTES, TicketClaims
from domain.tickets.qr import etag, render
from domain.tickets.signing import KeyRing, sign

T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def maximal_payload() -> str:
    """A ticket as large as the QR budget allows: a 16-character key id, text ids filling
    the rest."""
    key_id = "K" * 16
    room = MAX_CLAIMS_BYTES - (1 + 16 + 8) - (2 + len(key_id)) - 2 - 2
    ticket = TicketClaims(
        ticket_id=uuid.uuid4(),
        booking_id="b" * (room // 2),
        driver_id="d" * (room - room // 2),
        valid_from=T0,
        valid_until=T0 + timedelta(hours=1),
        key_id=key_id,
    )
    payload = sign(ticket, KeyRing.generate(key_id))
    assert len(base45.decode(payload)) == MAX_PAYLOAD_BYTES
    return payload


PAYLOAD = maximal_payload()


def test_a_maximal_ticket_fits_qr_version_7_at_error_correction_m() -> None:
    auto = segno.make(PAYLOAD, error="m", micro=False)
    forced = segno.make(PAYLOAD, error="m", micro=False, mode="alphanumeric", boost_error=False)
    for code in (auto, forced):
        assert code.mode == "alphanumeric"
        assert int(code.version) <= 7
    assert forced.error == "M"


def test_the_png_scans_back_to_the_payload() -> None:
    png = render(PAYLOAD, "png", 4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == ((45 + 2 * 4) * 4,) * 2  # version 7 is 45 modules, plus the border
    found = zxingcpp.read_barcodes(image)
    assert [(b.format, b.text) for b in found] == [(zxingcpp.BarcodeFormat.QRCode, PAYLOAD)]


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

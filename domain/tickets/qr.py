"""QR images of ticket payloads (segno): not part of verification, kept apart from it."""

import hashlib
import io
from typing import Literal, get_args

import segno

from domain.errors import ValidationError
from domain.tickets.claims import QR_ERROR, QR_MAX_VERSION

ImageFormat = Literal["png", "svg"]
BORDER = 4  # the quiet zone the QR standard asks for
MIN_SCALE, MAX_SCALE = 1, 20


def render(payload: str, fmt: ImageFormat, scale: int) -> bytes:
    """The QR image of ``payload``; ``scale`` is pixels (PNG) or units (SVG) per module."""
    _check(fmt, scale)
    try:
        # boost_error=False: the error correction level is M exactly, as specified, whatever
        # room the symbol has left.
        code = segno.make(
            payload, error=QR_ERROR, mode="alphanumeric", micro=False, boost_error=False
        )
    except ValueError as exc:
        raise ValidationError(f"Not a ticket payload: {exc}", param="payload") from exc
    version = int(code.version)  # a number, micro symbols being excluded
    if version > QR_MAX_VERSION:
        raise ValidationError(
            f"The payload needs a QR version {version} symbol; tickets fit version "
            f"{QR_MAX_VERSION}",
            param="payload",
        )
    out = io.BytesIO()
    code.save(out, kind=fmt, scale=scale, border=BORDER)
    return out.getvalue()


def etag(payload: str, fmt: ImageFormat, scale: int) -> str:
    """A strong HTTP ETag (quoted) of ``render(payload, fmt, scale)``, without rendering: the
    image is a function of these inputs and of segno's version."""
    _check(fmt, scale)
    inputs = f"{segno.__version__}|{QR_ERROR}|{BORDER}|{fmt}|{scale}|{payload}"
    return '"' + hashlib.sha256(inputs.encode()).hexdigest()[:32] + '"'


def _check(fmt: str, scale: int) -> None:
    if fmt not in get_args(ImageFormat):
        raise ValidationError(f"format must be one of {get_args(ImageFormat)}", param="format")
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValidationError(f"scale must be {MIN_SCALE} to {MAX_SCALE}", param="scale")

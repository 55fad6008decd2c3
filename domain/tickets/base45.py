"""Base45 (RFC 9285): bytes as characters of the QR alphanumeric alphabet."""

from domain.errors import ValidationError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {char: value for value, char in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    chars: list[str] = []
    for i in range(0, len(data) - 1, 2):
        rest, c = divmod(data[i] * 256 + data[i + 1], 45)
        e, d = divmod(rest, 45)
        chars += ALPHABET[c], ALPHABET[d], ALPHABET[e]
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        chars += ALPHABET[c], ALPHABET[d]
    return "".join(chars)


def decode(text: str) -> bytes:
    """The bytes ``text`` encodes; every string decodes to at most one byte string and back."""
    if len(text) % 3 == 1:
        raise ValidationError("Base45 text cannot have a length of 3n+1", param="payload")
    try:
        values = [_VALUES[char] for char in text]
    except KeyError as exc:
        raise ValidationError(f"Not a base45 character: {exc.args[0]!r}", param="payload") from exc
    out = bytearray()
    whole = len(values) - len(values) % 3
    for i in range(0, whole, 3):
        number = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        if number > 0xFFFF:
            raise ValidationError("Base45 group out of range", param="payload")
        out += number.to_bytes(2, "big")
    if whole < len(values):  # a last pair of characters carries one byte
        number = values[-2] + values[-1] * 45
        if number > 0xFF:
            raise ValidationError("Base45 group out of range", param="payload")
        out.append(number)
    return bytes(out)

"""EVM addresses given by people (payout destinations, settings), checked before money moves.

``eth_utils.is_address`` (and ``Web3.is_address``) accept a mixed-case address whose EIP-55
checksum is wrong, which is exactly what a mistyped address looks like: here a mixed-case
address must carry a valid checksum; an all-lowercase or all-uppercase one (no checksum to
check) is accepted and returned checksummed.
"""

import re

from eth_utils import is_checksum_address, to_checksum_address

from domain.errors import ValidationError

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
ZERO_ADDRESS = "0x" + "0" * 40


def checksum_address(value: object, *, param: str = "address", allow_zero: bool = False) -> str:
    """``value`` as an EIP-55 checksummed ``0x`` address; ``ValidationError`` otherwise.

    The zero address is refused unless ``allow_zero``: tokens sent there are burnt or refused.
    """
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        raise ValidationError(
            f"{param} must be a 0x-prefixed hex address of 20 bytes",
            code="invalid_address",
            param=param,
        )
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValidationError(
            f"{param} {value} has an invalid EIP-55 checksum (mistyped?)",
            code="invalid_address",
            param=param,
        )
    if not allow_zero and int(body, 16) == 0:
        raise ValidationError(f"{param} is the zero address", code="invalid_address", param=param)
    return str(to_checksum_address(value))

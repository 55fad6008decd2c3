"""Request fields shared by the escrow, payout and placement routers."""

from typing import Annotated

from pydantic import Field

from domain.errors import ValidationError
from domain.ledger import MAX_POSTING_AMOUNT
from domain.money import Money

# Strict: an amount is a JSON integer; not a boolean (true would be 1), a string or a float.
Amount = Annotated[int, Field(strict=True, ge=1, le=MAX_POSTING_AMOUNT, description="Minor units")]
Currency = Annotated[str, Field(min_length=3, max_length=8, description="ISO 4217")]
Party = Annotated[str, Field(min_length=1, max_length=200)]
PlacementId = Annotated[str, Field(min_length=1, max_length=100)]


def money(amount: int, currency: str) -> Money:
    """Money for a hold or a payout. Payouts leave through Stripe transfers, which take ISO
    4217 three-letter currencies: a longer code the ledger knows (USDC) is refused."""
    value = Money(amount, currency)
    if len(value.currency) != 3:
        raise ValidationError(
            f"escrow holds and payouts take three-letter currencies, not {value.currency}",
            code="invalid_currency",
            param="currency",
        )
    return value

"""Money as an integer count of minor units and an ISO 4217 currency; never a float."""

from dataclasses import dataclass

from domain.errors import ValidationError

# ISO 4217 currencies Tollgate accepts, with their minor-unit exponent.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
    "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KRW": 0, "KWD": 3,
    "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2, "RON": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "UGX": 0,
    "USD": 2, "USDC": 6, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
    "TOKEN": 0,  # prediction-market tokens: whole units, never money that leaves the platform
}  # fmt: skip


def validate_currency(code: str, *, param: str = "currency") -> str:
    """Return the canonical (upper-case) currency code or raise ``ValidationError``."""
    canonical = code.upper() if isinstance(code, str) else code
    if canonical not in CURRENCY_EXPONENTS:
        raise ValidationError(
            f"Unsupported currency {code!r}", code="invalid_currency", param=param
        )
    return canonical


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationError("Amounts are integers of minor units", param="amount")
        object.__setattr__(self, "currency", validate_currency(self.currency))

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def _same_currency(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise ValidationError(
                f"Cannot combine {self.currency} and {other.currency}", code="currency_mismatch"
            )

    def format(self) -> str:
        exponent = CURRENCY_EXPONENTS[self.currency]
        sign = "-" if self.amount < 0 else ""
        units, minor = divmod(abs(self.amount), 10**exponent)
        return (
            f"{sign}{units}.{minor:0{exponent}d} {self.currency}"
            if exponent
            else (f"{sign}{units} {self.currency}")
        )

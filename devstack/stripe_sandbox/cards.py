"""Stripe's documented test cards: magic payment method ids, tokens, and decline outcomes."""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    """How a charge on the card fails: Stripe's error ``code`` and ``decline_code``."""

    code: str
    decline_code: str
    message: str
    param: str | None = None


_DECLINED = "Your card was declined."

# https://docs.stripe.com/testing#declined-payments
DECLINES: dict[str, Decline] = {
    "4000000000000002": Decline("card_declined", "generic_decline", _DECLINED),
    "4000000000009995": Decline(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000009987": Decline("card_declined", "lost_card", _DECLINED),
    "4000000000009979": Decline("card_declined", "stolen_card", _DECLINED),
    "4000000000000069": Decline(
        "expired_card", "expired_card", "Your card has expired.", "exp_month"
    ),
    "4000000000000127": Decline(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"
    ),
    "4000000000000119": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "4000000000006975": Decline(
        "card_declined",
        "card_velocity_exceeded",
        "Your card was declined for making repeated attempts too frequently or exceeding its"
        " amount limit.",
    ),
    # Blocked by Radar: the charge is refused as fraudulent.
    "4100000000000019": Decline("card_declined", "fraudulent", _DECLINED),
    # Attaching to a customer succeeds, every charge fails.
    "4000000000000341": Decline("card_declined", "generic_decline", _DECLINED),
}

# Magic PaymentMethod ids (``pm_card_*``); each has a ``tok_*`` twin.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_mastercard_prepaid": "5105105105105100",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_diners": "3056930009020004",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_chargeCustomerFail": "4000000000000341",
}

_DEBIT = {"4000056655665556", "5200828282828210"}
_PREPAID = {"5105105105105100"}


def test_card_number(magic_id: str) -> str | None:
    """The card number behind ``pm_card_visa`` or ``tok_visa``, if it is a magic id."""
    if magic_id.startswith("tok_"):
        magic_id = "pm_card_" + magic_id.removeprefix("tok_")
    return TEST_PAYMENT_METHODS.get(magic_id)


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number.startswith(("6011", "65", "644", "645", "646", "647", "648", "649")):
        return "discover"
    if number[:2] in {"30", "36", "38", "39"}:
        return "diners"
    if number.startswith("35"):
        return "jcb"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"


def card_details(number: str, exp_month: int, exp_year: int) -> dict[str, object]:
    """The ``card`` hash of a PaymentMethod, as Stripe shows it (never the full number)."""
    card_brand = brand(number)
    funding = "debit" if number in _DEBIT else "prepaid" if number in _PREPAID else "credit"
    return {
        "brand": card_brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "unchecked",
        },
        "country": "US",
        "display_brand": card_brand,
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
        "funding": funding,
        "generated_from": None,
        "last4": number[-4:],
        "networks": {"available": [card_brand], "preferred": None},
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }

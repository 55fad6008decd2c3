"""Rails and the router that picks one for a transfer, with the reason it chose it.

Two rails carry money out of the platform:

- ``stripe``: a Stripe transfer of a fiat currency to a connected account (``acct_...``);
- ``chain``: an ERC-20 stablecoin transfer on the configured EVM chain to an address
  (``0x`` and 40 hex digits). It carries the chain currency (``USDC``) and the fiat
  currencies its stablecoin is pegged to (``USD``, paid 1:1).

``TOKEN`` (prediction-market tokens) never leaves the platform: no rail pays it.

The rules, in order:

1. The destination decides what can reach it: an ``acct_`` id only the Stripe rail, an
   address only the chain. Anything else is refused.
2. An override configured as data (``RoutingRules``: a partner's own first, then the
   default ones, each ``currency -> rail``) wins when the rail can carry the currency to the
   destination; when it cannot, the transfer is refused with the reason, never routed
   elsewhere behind the partner's back.
3. Otherwise a chain currency goes on the chain and a fiat one takes the rail its
   destination is reached by.
4. A rail not enabled in the rules refuses (``chain rail not available``).

The reason is stored with the transfer (``route_reason``), so an operator can read why a
transfer went where it went.

Routed today: the transfers of batch payouts (``services.transfers``). Still to route: the
vendor settlements' transfer requests (``settlement_transfers``, status ``requested``,
destination the vendor id, not an account): they need the vendor's payout account first.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.errors import ValidationError
from domain.money import CURRENCY_EXPONENTS, validate_currency


class Rail(StrEnum):
    STRIPE = "stripe"
    CHAIN = "chain"


# Currencies that exist only on the chain: never a Stripe transfer.
CHAIN_CURRENCIES = frozenset({"USDC"})
# Units of account inside the platform (prediction-market tokens): paying one out as a
# stablecoin would pay money that was never there.
NOT_PAYABLE = frozenset({"TOKEN"})
# Fiat currencies the chain's stablecoin is pegged to, paid 1:1 on the chain rail.
CHAIN_PEGGED_FIAT = frozenset({"USD"})
# Decimals of the chain rail's ERC-20 token (USDC, and the embedded chain's TestUSD: 6);
# configured as ``TOLLGATE_CHAIN_TOKEN_DECIMALS``.
CHAIN_TOKEN_DECIMALS = 6

STRIPE_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,96}")
CHAIN_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    rail: Rail
    reason: str


def _overrides(raw: object, where: str) -> dict[str, Rail]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} maps currencies to rails, e.g. {{'USD': 'stripe'}}")
    parsed: dict[str, Rail] = {}
    for currency, rail in raw.items():
        code = str(currency).upper()
        if code not in CURRENCY_EXPONENTS:
            raise ValueError(f"{where}: unknown currency {currency!r}")
        try:
            parsed[code] = Rail(rail)
        except ValueError:
            raise ValueError(
                f"{where}: unknown rail {rail!r} for {code}; expected one of {', '.join(Rail)}"
            ) from None
    return parsed


@dataclass(frozen=True)
class RoutingRules:
    """Overrides of the router as data (``TOLLGATE_RAIL_ROUTING``, JSON):
    ``{"default": {"USD": "stripe"}, "partners": {"partner-a": {"USD": "chain"}},
    "enabled": ["stripe", "chain"]}``. A partner's overrides come before the default ones;
    a rail left out of ``enabled`` refuses every transfer."""

    default: Mapping[str, str] = field(default_factory=dict)
    partners: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    enabled: tuple[str, ...] = (Rail.STRIPE.value, Rail.CHAIN.value)

    def __post_init__(self) -> None:
        # Normalized once, so routing a thousand items is dictionary lookups.
        object.__setattr__(self, "default", _overrides(self.default, "default"))
        if not isinstance(self.partners, Mapping):
            raise ValueError("partners maps partner ids to {currency: rail}")
        object.__setattr__(
            self,
            "partners",
            {
                str(partner): _overrides(rules, f"partners.{partner}")
                for partner, rules in self.partners.items()
            },
        )
        try:
            enabled = tuple(Rail(rail).value for rail in self.enabled)
        except ValueError:
            raise ValueError(f"enabled lists rails among {', '.join(Rail)}") from None
        object.__setattr__(self, "enabled", enabled)

    def override(self, partner_id: str, currency: str) -> tuple[Rail, str] | None:
        """The configured rail for this partner and currency, and whose rule it is."""
        own = self.partners.get(partner_id)
        if own is not None and currency in own:
            return Rail(own[currency]), f"partner {partner_id}"
        if currency in self.default:
            return Rail(self.default[currency]), "the default rules"
        return None


DEFAULT_RULES = RoutingRules()


def destination_rail(destination: str) -> Rail | None:
    """The only rail that reaches ``destination``, or None if it is neither form."""
    if STRIPE_ACCOUNT.fullmatch(destination):
        return Rail.STRIPE
    if CHAIN_ADDRESS.fullmatch(destination):
        return Rail.CHAIN
    return None


def carries(rail: Rail, currency: str) -> bool:
    """Whether ``rail`` can pay ``currency`` (an upper-case code Tollgate knows)."""
    if rail is Rail.CHAIN:
        return currency in CHAIN_CURRENCIES or currency in CHAIN_PEGGED_FIAT
    # Stripe transfers take ISO 4217 three-letter fiat currencies.
    return currency not in CHAIN_CURRENCIES and len(currency) == 3


def route(
    currency: str, destination: str, partner_id: str, rules: RoutingRules = DEFAULT_RULES
) -> RouteDecision:
    """The rail of one transfer and why; ``ValidationError`` (with ``param``) if none fits."""
    code = validate_currency(currency)
    if code in NOT_PAYABLE:
        raise ValidationError(
            f"{code} never leaves the platform: no rail pays it",
            code="currency_not_payable",
            param="currency",
        )
    if not isinstance(destination, str):
        raise ValidationError("destination must be a string", param="destination")
    reaches = destination_rail(destination)
    if reaches is None:
        raise ValidationError(
            "destination must be a Stripe connected account (acct_...) or a chain address "
            "(0x and 40 hex digits)",
            code="invalid_destination",
            param="destination",
        )
    configured = rules.override(partner_id, code)
    if configured is not None:
        rail, whose = configured
        if rail is not reaches:
            raise ValidationError(
                f"{whose} routes {code} to {rail}, which cannot reach {destination}"
                f" (only {reaches} does)",
                code="route_incompatible",
                param="destination",
            )
        if not carries(rail, code):
            raise ValidationError(
                f"{whose} routes {code} to {rail}, which does not carry {code}",
                code="route_incompatible",
                param="currency",
            )
        decision = RouteDecision(rail, f"{whose} routes {code} to {rail}")
    elif code in CHAIN_CURRENCIES:
        if reaches is not Rail.CHAIN:
            raise ValidationError(
                f"{code} is paid on the chain: the destination must be a 0x address",
                code="route_incompatible",
                param="destination",
            )
        decision = RouteDecision(Rail.CHAIN, f"{code} is a chain currency")
    elif reaches is Rail.CHAIN:
        if not carries(Rail.CHAIN, code):
            raise ValidationError(
                f"the chain rail pays a stablecoin pegged to {', '.join(sorted(CHAIN_PEGGED_FIAT))}"
                f": {code} cannot go to a chain address",
                code="route_incompatible",
                param="currency",
            )
        decision = RouteDecision(Rail.CHAIN, f"{code} to a chain address")
    else:
        decision = RouteDecision(Rail.STRIPE, f"{code} to a Stripe connected account")
    if decision.rail.value not in rules.enabled:
        raise ValidationError(
            f"{decision.rail} rail not available", code="rail_unavailable", param="destination"
        )
    return decision


def chain_amount(amount: int, currency: str, decimals: int = CHAIN_TOKEN_DECIMALS) -> int:
    """``amount`` minor units of ``currency`` in base units of the chain's token, 1:1 in
    value: 12.34 USD (1234) is 12,340,000 with 6 decimals; 1.5 USDC (1,500,000) stays
    1,500,000."""
    exponent = CURRENCY_EXPONENTS[validate_currency(currency)]
    if exponent > decimals:
        raise ValidationError(f"{currency} has more decimals than the chain token", param="amount")
    return amount * 10 ** (decimals - exponent)

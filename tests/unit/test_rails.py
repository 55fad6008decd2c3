"""The rail router: which rail a transfer takes and why, per-partner overrides, and the
refusals that explain themselves."""

import pytest
from pydantic import BaseModel, Field

from domain.errors import ValidationError
from domain.rails import Rail, RoutingRules, chain_amount, route

ACCOUNT = "acct_1PartnerPayee"
ADDRESS = "0x" + "ab" * 20
RULES = RoutingRules(
    default={"EUR": "stripe"},
    partners={"partner-a": {"USD": "chain"}, "partner-b": {"USD": "stripe", "EUR": "chain"}},
)


@pytest.mark.parametrize(
    ("currency", "destination", "partner", "rail", "reason"),
    [
        ("USD", ACCOUNT, "anyone", Rail.STRIPE, "USD to a Stripe connected account"),
        ("usd", ACCOUNT, "anyone", Rail.STRIPE, "USD to a Stripe connected account"),
        ("GBP", ACCOUNT, "anyone", Rail.STRIPE, "GBP to a Stripe connected account"),
        ("USDC", ADDRESS, "anyone", Rail.CHAIN, "USDC is a chain currency"),
        ("USD", ADDRESS, "anyone", Rail.CHAIN, "USD to a chain address"),
        ("USD", ADDRESS, "partner-a", Rail.CHAIN, "partner partner-a routes USD to chain"),
        ("USD", ACCOUNT, "partner-b", Rail.STRIPE, "partner partner-b routes USD to stripe"),
        ("EUR", ACCOUNT, "anyone", Rail.STRIPE, "the default rules routes EUR to stripe"),
        # A partner's own rules come before the default ones.
        ("GBP", ACCOUNT, "partner-a", Rail.STRIPE, "GBP to a Stripe connected account"),
    ],
)
def test_the_router_picks_a_rail_and_records_why(
    currency: str, destination: str, partner: str, rail: Rail, reason: str
) -> None:
    decision = route(currency, destination, partner, RULES)

    assert (decision.rail, decision.reason) == (rail, reason)


@pytest.mark.parametrize(
    ("currency", "destination", "partner", "code", "param", "says"),
    [
        # The override wins only when its rail reaches the destination.
        ("USD", ACCOUNT, "partner-a", "route_incompatible", "destination", "partner partner-a"),
        ("USD", ADDRESS, "partner-b", "route_incompatible", "destination", "only chain"),
        # partner-b routes EUR to the chain, which does not carry EUR.
        ("EUR", ADDRESS, "partner-b", "route_incompatible", "currency", "does not carry EUR"),
        ("USDC", ACCOUNT, "anyone", "route_incompatible", "destination", "0x address"),
        ("GBP", ADDRESS, "anyone", "route_incompatible", "currency", "pegged to USD"),
        ("USD", "bob@example.com", "anyone", "invalid_destination", "destination", "acct_"),
        ("USD", "0x1234", "anyone", "invalid_destination", "destination", "40 hex"),
        ("XYZ", ACCOUNT, "anyone", "invalid_currency", "currency", "XYZ"),
    ],
)
def test_a_route_that_cannot_work_is_refused_with_the_reason(
    currency: str, destination: str, partner: str, code: str, param: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        route(currency, destination, partner, RULES)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert says in refused.value.message


def test_a_rail_left_out_of_the_enabled_ones_is_not_available() -> None:
    stripe_only = RoutingRules(enabled=("stripe",))

    with pytest.raises(ValidationError, match="chain rail not available") as refused:
        route("USDC", ADDRESS, "anyone", stripe_only)
    assert refused.value.code == "rail_unavailable"
    assert route("USD", ACCOUNT, "anyone", stripe_only).rail is Rail.STRIPE


class Configured(BaseModel):
    rail_routing: RoutingRules = Field(default_factory=RoutingRules)


def test_rules_are_read_from_json_as_settings_read_them() -> None:
    configured = Configured.model_validate_json(
        '{"rail_routing": {"default": {"usd": "stripe"},'
        ' "partners": {"partner-a": {"USD": "chain"}}}}'
    ).rail_routing

    assert configured.override("partner-a", "USD") == (Rail.CHAIN, "partner partner-a")
    assert configured.override("partner-z", "USD") == (Rail.STRIPE, "the default rules")
    assert configured.override("partner-z", "EUR") is None


@pytest.mark.parametrize(
    "raw",
    [
        '{"partners": {"partner-a": {"USD": "wire"}}}',
        '{"default": {"ZZZ": "stripe"}}',
        '{"enabled": ["stripe", "carrier-pigeon"]}',
    ],
)
def test_bad_rules_are_refused_when_the_settings_load(raw: str) -> None:
    with pytest.raises(ValueError):
        Configured.model_validate_json(f'{{"rail_routing": {raw}}}')


@pytest.mark.parametrize(
    ("amount", "currency", "base_units"),
    [(1234, "USD", 12_340_000), (1_500_000, "USDC", 1_500_000)],
)
def test_chain_amounts_are_in_the_tokens_base_units(
    amount: int, currency: str, base_units: int
) -> None:
    assert chain_amount(amount, currency) == base_units


@pytest.mark.parametrize("destination", [ADDRESS, ACCOUNT])
def test_prediction_market_tokens_are_never_paid_out(destination: str) -> None:
    with pytest.raises(ValidationError) as refused:
        route("TOKEN", destination, "anyone", RULES)

    assert (refused.value.code, refused.value.param) == ("currency_not_payable", "currency")

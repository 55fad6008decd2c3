"""Liquidity positions, runway and alert crossings (``domain/liquidity.py``), and the Stripe
balance as ``integrations.stripe_balance`` reads it."""

from fractions import Fraction

import pytest
import stripe

from domain.errors import ValidationError
from domain.liquidity import (
    RUNWAY_LOW,
    RUNWAY_RECOVERED,
    Balance,
    Outflows,
    alert_for,
    alerts,
    assess,
    check_window_days,
    position,
    to_float_units,
    token_balance_to_minor,
)
from integrations.stripe_balance import balances_of


@pytest.mark.parametrize(
    ("available", "committed", "sent", "days", "free", "daily", "runway_days", "low"),
    [
        # 1,000 a day for 7 days: 10,000 lasts 10 days.
        (10_000, 0, 7_000, 7, 10_000, 1_000, 10.0, False),
        (1_500, 0, 7_000, 7, 1_500, 1_000, 1.5, True),
        # Exactly at the threshold is not under it.
        (2_000, 0, 7_000, 7, 2_000, 1_000, 2.0, False),
        # What queued transfers will take is not free.
        (5_000, 3_500, 7_000, 7, 1_500, 1_000, 1.5, True),
        # No recent volume: no end in sight.
        (100, 0, 0, 7, 100, 0, None, False),
        (0, 0, 0, 7, 0, 0, None, False),
        (1_000, 1_000, 0, 7, 0, 0, None, False),
        # Overcommitted: low whatever the volume.
        (100, 200, 0, 7, -100, 0, 0.0, True),
        (0, 500, 7_000, 7, -500, 1_000, 0.0, True),
        # Nothing free with volume: no runway.
        (1_000, 1_000, 700, 7, 0, 100, 0.0, True),
        # Daily volume rounds up to a minor unit; the runway is exact: 3 * 7 / 10 = 2.1 days.
        (3, 0, 10, 7, 3, 2, 2.1, False),
        # Shown rounded down: a third of a day is 0.33.
        (1, 0, 3, 1, 1, 3, 0.33, True),
        # One day's window.
        (2_500, 500, 1_000, 1, 2_000, 1_000, 2.0, False),
    ],
)
def test_a_position_runs_for_free_over_daily_volume(
    available: int,
    committed: int,
    sent: int,
    days: int,
    free: int,
    daily: int,
    runway_days: float | None,
    low: bool,
) -> None:
    found = position(
        "stripe",
        "USD",
        available=available,
        committed=committed,
        sent=sent,
        window_days=days,
        alert_days=2.0,
    )

    assert (found.free, found.daily_volume, found.runway_days, found.low) == (
        free,
        daily,
        runway_days,
        low,
    )
    assert found.overcommitted is (free < 0)


def test_the_threshold_is_a_setting() -> None:
    three = position(
        "stripe", "USD", available=2_500, committed=0, sent=700, window_days=7, alert_days=3
    )
    assert three.runway == Fraction(25) and not three.low
    assert position(
        "stripe", "USD", available=2_500, committed=0, sent=7_000, window_days=7, alert_days=3
    ).low


def test_positions_per_rail_and_currency_with_the_chain_as_one_usdc_float() -> None:
    balances = [
        Balance("stripe", "USD", available=10_000, pending=300),
        Balance("stripe", "EUR", available=50),
        # A currency with a balance and nothing else.
        Balance("stripe", "GBP", available=7),
        Balance("chain", "USDC", available=3_000_000),
    ]
    flows = [
        Outflows("stripe", "USD", committed=2_000, sent=14_000),
        Outflows("stripe", "EUR", committed=500, sent=0),
        # Outflows in a currency Stripe holds none of: nothing available.
        Outflows("stripe", "SEK", committed=0, sent=700),
        # USD on the chain counts 1:1 in the USDC float: 1.00 USD is 1,000,000.
        Outflows("chain", "USD", committed=100, sent=70),
        Outflows("chain", "USDC", committed=500_000, sent=6_300_000),
    ]

    found = assess(balances, flows, rails={"stripe", "chain"}, window_days=7, alert_days=2)

    assert [
        (p.rail, p.currency, p.available, p.pending, p.committed, p.free, p.daily_volume)
        for p in found
    ] == [
        ("chain", "USDC", 3_000_000, 0, 1_500_000, 1_500_000, 1_000_000),
        ("stripe", "EUR", 50, 0, 500, -450, 0),
        ("stripe", "GBP", 7, 0, 0, 7, 0),
        ("stripe", "SEK", 0, 0, 0, 0, 100),
        ("stripe", "USD", 10_000, 300, 2_000, 8_000, 2_000),
    ]
    assert [(p.entity_id, p.runway_days, p.low) for p in found] == [
        ("chain:USDC", 1.5, True),
        ("stripe:EUR", 0.0, True),
        ("stripe:GBP", None, False),
        ("stripe:SEK", 0.0, True),
        ("stripe:USD", 4.0, False),
    ]


def test_a_rail_whose_balance_was_not_read_is_left_out() -> None:
    found = assess(
        [Balance("stripe", "USD", available=1)],
        [Outflows("chain", "USDC", committed=5), Outflows("stripe", "USD", committed=1)],
        rails={"stripe"},
        window_days=7,
        alert_days=2,
    )
    assert [(p.rail, p.currency) for p in found] == [("stripe", "USD")]


@pytest.mark.parametrize(
    ("previous", "low", "event"),
    [
        (None, True, RUNWAY_LOW),
        (None, False, None),
        (RUNWAY_LOW, True, None),
        (RUNWAY_LOW, False, RUNWAY_RECOVERED),
        (RUNWAY_RECOVERED, True, RUNWAY_LOW),
        (RUNWAY_RECOVERED, False, None),
    ],
)
def test_an_alert_once_per_crossing(previous: str | None, low: bool, event: str | None) -> None:
    assert alert_for(previous, low) == event


def test_alerts_by_entity_id() -> None:
    low = position("stripe", "USD", available=0, committed=1, sent=0, window_days=7, alert_days=2)
    fine = position("chain", "USDC", available=1, committed=0, sent=0, window_days=7, alert_days=2)
    assert alerts([low, fine], {"chain:USDC": RUNWAY_LOW}) == [
        (low, RUNWAY_LOW),
        (fine, RUNWAY_RECOVERED),
    ]
    assert alerts([low, fine], {"stripe:USD": RUNWAY_LOW}) == []


@pytest.mark.parametrize(
    ("base_units", "decimals", "minor"),
    [(1_500_000, 6, 1_500_000), (10**18, 18, 10**6), (10**12 - 1, 18, 0), (5, 4, 500)],
)
def test_token_balances_in_usdc_minor_units(base_units: int, decimals: int, minor: int) -> None:
    assert token_balance_to_minor(base_units, decimals) == minor


def test_only_currencies_the_chain_float_can_count_go_on_the_chain() -> None:
    assert to_float_units("chain", "usd", 1234) == ("USDC", 12_340_000)
    assert to_float_units("stripe", "usd", 1234) == ("USD", 1234)
    with pytest.raises(ValueError, match="cannot be counted"):
        to_float_units("chain", "XYZ", 1)


@pytest.mark.parametrize("days", [0, 91, -1, True])
def test_the_volume_window_is_1_to_90_days(days: int) -> None:
    with pytest.raises(ValidationError) as refused:
        check_window_days(days)
    assert refused.value.param == "days"


def test_the_stripe_balance_is_summed_per_currency_upper_cased() -> None:
    balance = stripe.Balance.construct_from(
        {
            "object": "balance",
            "livemode": False,
            "available": [
                {"amount": 1_000, "currency": "usd", "source_types": {"card": 1_000}},
                {"amount": 250, "currency": "usd", "source_types": {"bank_account": 250}},
                {"amount": -40, "currency": "eur", "source_types": {"card": -40}},
            ],
            "pending": [{"amount": 90, "currency": "gbp", "source_types": {"card": 90}}],
        },
        "sk_test_x",
    )

    assert balances_of(balance) == [
        Balance("stripe", "EUR", available=-40),
        Balance("stripe", "GBP", available=0, pending=90),
        Balance("stripe", "USD", available=1_250),
    ]

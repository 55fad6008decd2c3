"""The rules-based fraud score: each rule on its own, the levels its thresholds give, the cap
at 100, the validation of the rules, and their configuration through the settings."""

import json
from dataclasses import replace

import pydantic
import pytest
from pydantic_settings import SettingsError

from domain.fraud import (
    MAX_SCORE,
    FraudRules,
    FraudSignals,
    RiskLevel,
    RuleHit,
    assess,
)
from settings import Settings

RULES = FraudRules()
QUIET = FraudSignals(
    amount=1_000,
    customer_payments_recent=0,
    card_payments_recent=0,
    country=None,
    card_country=None,
    new_payment_method=False,
    previous_declines=0,
)


def only(signals: FraudSignals, rules: FraudRules = RULES) -> RuleHit:
    assessment = assess(signals, rules)
    assert len(assessment.hits) == 1, assessment.hits
    assert assessment.score == assessment.hits[0].points
    return assessment.hits[0]


def test_nothing_suspicious_scores_zero_and_is_low() -> None:
    assessment = assess(QUIET, RULES)
    assert (assessment.score, assessment.level, assessment.hits) == (0, RiskLevel.LOW, ())


def test_a_large_amount_fires_alone() -> None:
    assert only(replace(QUIET, amount=100_000)) == RuleHit("amount", 20, "amount 100000 >= 100000")
    assert assess(replace(QUIET, amount=99_999), RULES).hits == ()


def test_a_very_large_amount_replaces_the_large_amount_rule() -> None:
    assert only(replace(QUIET, amount=500_000)) == RuleHit("amount", 40, "amount 500000 >= 500000")


def test_customer_velocity_fires_at_its_limit() -> None:
    assert only(replace(QUIET, customer_payments_recent=5)) == RuleHit(
        "customer_velocity", 20, "5 payments in 60 min"
    )
    assert assess(replace(QUIET, customer_payments_recent=4), RULES).hits == ()


def test_card_velocity_fires_at_its_limit() -> None:
    assert only(replace(QUIET, card_payments_recent=3)) == RuleHit(
        "card_velocity", 25, "3 payments with this card in 60 min"
    )
    assert assess(replace(QUIET, card_payments_recent=2), RULES).hits == ()


def test_a_country_mismatch_fires_case_insensitively() -> None:
    assert only(replace(QUIET, country="fr", card_country="US")) == RuleHit(
        "country_mismatch", 20, "customer in FR, card from US"
    )
    assert assess(replace(QUIET, country="us", card_country="US"), RULES).hits == ()
    # Not knowing one of the two countries is not a mismatch.
    assert assess(replace(QUIET, country="FR", card_country=None), RULES).hits == ()
    assert assess(replace(QUIET, country=None, card_country="US"), RULES).hits == ()


def test_a_new_payment_method_fires() -> None:
    assert only(replace(QUIET, new_payment_method=True)) == RuleHit(
        "new_payment_method", 10, "payment method added less than 24 h ago"
    )


def test_previous_declines_add_points_each_up_to_a_maximum() -> None:
    assert only(replace(QUIET, previous_declines=1)) == RuleHit(
        "previous_declines", 15, "1 declined payments in 30 days"
    )
    assert only(replace(QUIET, previous_declines=2)).points == 30
    assert only(replace(QUIET, previous_declines=3)).points == 45
    assert only(replace(QUIET, previous_declines=10)).points == 45


def test_thresholds_give_the_levels() -> None:
    rules = FraudRules(
        medium_threshold=30,
        high_threshold=70,
        previous_decline_points=1,
        previous_decline_max_points=100,
    )

    def level(score: int) -> RiskLevel:
        assessment = assess(replace(QUIET, previous_declines=score), rules)
        assert assessment.score == score
        return assessment.level

    assert [level(score) for score in (1, 29, 30, 69, 70, 100)] == [
        RiskLevel.LOW,
        RiskLevel.LOW,
        RiskLevel.MEDIUM,
        RiskLevel.MEDIUM,
        RiskLevel.HIGH,
        RiskLevel.HIGH,
    ]


def test_default_rules_combined() -> None:
    # large amount 20 + new method 10 = 30: MEDIUM under the defaults.
    medium = assess(replace(QUIET, amount=150_000, new_payment_method=True), RULES)
    assert (medium.score, medium.level) == (30, RiskLevel.MEDIUM)
    assert [hit.rule for hit in medium.hits] == ["amount", "new_payment_method"]
    # + card velocity 25 + country 20 = 75: HIGH.
    high = assess(
        replace(
            QUIET,
            amount=150_000,
            new_payment_method=True,
            card_payments_recent=4,
            country="DE",
            card_country="US",
        ),
        RULES,
    )
    assert (high.score, high.level) == (75, RiskLevel.HIGH)


def test_the_score_is_capped_at_100() -> None:
    everything = FraudSignals(
        amount=1_000_000,
        customer_payments_recent=50,
        card_payments_recent=50,
        country="FR",
        card_country="US",
        new_payment_method=True,
        previous_declines=5,
    )
    assessment = assess(everything, RULES)
    assert sum(hit.points for hit in assessment.hits) == 40 + 20 + 25 + 20 + 10 + 45
    assert assessment.score == MAX_SCORE
    assert assessment.level is RiskLevel.HIGH
    assert len(assessment.hits) == 6


@pytest.mark.parametrize(
    "bad",
    [
        {"medium_threshold": 0},
        {"medium_threshold": -5},
        {"medium_threshold": 80, "high_threshold": 70},
        {"high_threshold": 101},
        {"large_amount": 600_000, "very_large_amount": 500_000},
    ],
)
def test_bad_rules_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        FraudRules(**bad)


def test_equal_thresholds_are_allowed() -> None:
    rules = FraudRules(medium_threshold=50, high_threshold=50)
    assert assess(replace(QUIET, previous_declines=3), rules).level is RiskLevel.LOW
    hits = replace(QUIET, previous_declines=3, amount=500_000)  # 45 + 40 = 85
    assert assess(hits, rules).level is RiskLevel.HIGH


def test_rules_are_configured_through_settings() -> None:
    settings = Settings(
        fraud_rules=FraudRules(new_payment_method_points=35, medium_threshold=35),
        _env_file=None,
    )
    assessment = assess(replace(QUIET, new_payment_method=True), settings.fraud_rules)
    assert (assessment.score, assessment.level) == (35, RiskLevel.MEDIUM)
    assert Settings(_env_file=None).fraud_rules == FraudRules()


def test_rules_are_configured_by_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TOLLGATE_FRAUD_RULES",
        json.dumps({"card_velocity_limit": 1, "card_velocity_points": 80, "high_threshold": 80}),
    )
    rules = Settings(_env_file=None).fraud_rules
    assert isinstance(rules, FraudRules)
    assert (rules.card_velocity_limit, rules.card_velocity_points, rules.high_threshold) == (
        1,
        80,
        80,
    )
    assert rules.medium_threshold == FraudRules().medium_threshold  # the rest keeps defaults
    assessment = assess(replace(QUIET, card_payments_recent=1), rules)
    assert (assessment.score, assessment.level) == (80, RiskLevel.HIGH)


def test_bad_rules_in_the_environment_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_FRAUD_RULES", json.dumps({"medium_threshold": 90}))
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None)
    monkeypatch.setenv("TOLLGATE_FRAUD_RULES", "not json")
    with pytest.raises(SettingsError):
        Settings(_env_file=None)

"""Rules-based fraud scoring: each rule that fires adds points, the score (0-100) gives the
risk level. LOW proceeds, MEDIUM waits for a person's review, HIGH is refused."""

from dataclasses import dataclass
from enum import StrEnum

from domain.errors import Conflict

MAX_SCORE = 100


class RiskLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class FraudCheckStatus(StrEnum):
    PASSED = "passed"  # LOW: the payment went on
    PENDING_REVIEW = "pending_review"  # MEDIUM: waits for a decision
    APPROVED = "approved"  # a reviewer let it through
    REJECTED = "rejected"  # a reviewer refused it
    BLOCKED = "blocked"  # HIGH: refused without review


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class FraudRules:
    """Thresholds and points; amounts are minor units of the payment's currency. Configured
    through ``TOLLGATE_FRAUD_RULES`` (JSON)."""

    large_amount: int = 100_000
    large_amount_points: int = 20
    very_large_amount: int = 500_000
    very_large_amount_points: int = 40
    velocity_window_minutes: int = 60
    customer_velocity_limit: int = 5
    customer_velocity_points: int = 20
    card_velocity_limit: int = 3
    card_velocity_points: int = 25
    country_mismatch_points: int = 20
    new_payment_method_hours: int = 24
    new_payment_method_points: int = 10
    decline_window_days: int = 30
    previous_decline_points: int = 15
    previous_decline_max_points: int = 45
    medium_threshold: int = 30
    high_threshold: int = 70

    def __post_init__(self) -> None:
        if not 0 < self.medium_threshold <= self.high_threshold <= MAX_SCORE:
            raise ValueError("fraud thresholds need 0 < medium_threshold <= high_threshold <= 100")
        if self.large_amount > self.very_large_amount:
            raise ValueError("large_amount cannot exceed very_large_amount")


@dataclass(frozen=True)
class FraudSignals:
    """What is known about a payment when it is checked."""

    amount: int
    customer_payments_recent: int  # this customer's other payments in the velocity window
    card_payments_recent: int  # other payments with the same card in the velocity window
    country: str | None  # where the customer is, as the merchant sent it
    card_country: str | None  # where the card was issued
    new_payment_method: bool  # added within ``new_payment_method_hours``
    previous_declines: int  # this customer's declined payments in the decline window


@dataclass(frozen=True)
class RuleHit:
    rule: str
    points: int
    detail: str


@dataclass(frozen=True)
class Assessment:
    score: int
    level: RiskLevel
    hits: tuple[RuleHit, ...]


def _hits(signals: FraudSignals, rules: FraudRules) -> list[RuleHit]:
    hits: list[RuleHit] = []
    amount, window = signals.amount, rules.velocity_window_minutes
    if amount >= rules.very_large_amount:
        detail = f"amount {amount} >= {rules.very_large_amount}"
        hits.append(RuleHit("amount", rules.very_large_amount_points, detail))
    elif amount >= rules.large_amount:
        detail = f"amount {amount} >= {rules.large_amount}"
        hits.append(RuleHit("amount", rules.large_amount_points, detail))
    if signals.customer_payments_recent >= rules.customer_velocity_limit:
        detail = f"{signals.customer_payments_recent} payments in {window} min"
        hits.append(RuleHit("customer_velocity", rules.customer_velocity_points, detail))
    if signals.card_payments_recent >= rules.card_velocity_limit:
        detail = f"{signals.card_payments_recent} payments with this card in {window} min"
        hits.append(RuleHit("card_velocity", rules.card_velocity_points, detail))
    country, card_country = (signals.country or "").upper(), (signals.card_country or "").upper()
    if country and card_country and country != card_country:
        detail = f"customer in {country}, card from {card_country}"
        hits.append(RuleHit("country_mismatch", rules.country_mismatch_points, detail))
    if signals.new_payment_method:
        detail = f"payment method added less than {rules.new_payment_method_hours} h ago"
        hits.append(RuleHit("new_payment_method", rules.new_payment_method_points, detail))
    if signals.previous_declines:
        points = min(
            rules.previous_decline_max_points,
            signals.previous_declines * rules.previous_decline_points,
        )
        detail = (
            f"{signals.previous_declines} declined payments in {rules.decline_window_days} days"
        )
        hits.append(RuleHit("previous_declines", points, detail))
    return hits


def assess(signals: FraudSignals, rules: FraudRules) -> Assessment:
    hits = _hits(signals, rules)
    score = min(MAX_SCORE, sum(hit.points for hit in hits))
    if score >= rules.high_threshold:
        level = RiskLevel.HIGH
    elif score >= rules.medium_threshold:
        level = RiskLevel.MEDIUM
    else:
        level = RiskLevel.LOW
    return Assessment(score=score, level=level, hits=tuple(hits))


def initial_status(level: RiskLevel) -> FraudCheckStatus:
    return {
        RiskLevel.LOW: FraudCheckStatus.PASSED,
        RiskLevel.MEDIUM: FraudCheckStatus.PENDING_REVIEW,
        RiskLevel.HIGH: FraudCheckStatus.BLOCKED,
    }[level]


def check_reviewable(status: FraudCheckStatus) -> None:
    if status is not FraudCheckStatus.PENDING_REVIEW:
        raise Conflict(
            f"the fraud check is {status.value}: only a check pending review takes a decision",
            status=status.value,
        )


def review_status(decision: ReviewDecision) -> FraudCheckStatus:
    if decision is ReviewDecision.APPROVE:
        return FraudCheckStatus.APPROVED
    return FraudCheckStatus.REJECTED

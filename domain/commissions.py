"""Commission rules, with no I/O: which rule applies to a vendor's sale, what it takes, and
which rules would compete with each other.

The rules:

- A rule has a scope: ``vendor`` (one vendor, by ``vendor_id``), ``category`` (every vendor
  of a category, by ``category``) or ``default`` (everyone). Its key is the vendor id, the
  category, or nothing.
- A rule is in force from ``effective_from`` (inclusive) to ``effective_to`` (exclusive;
  None: open-ended): the half-open interval ``[from, to)``. A rule ending at 00:00 and its
  successor starting at 00:00 touch and never overlap.
- A rule is in one currency: its fixed part is minor units of that currency, so it applies
  only to amounts in that currency.
- **Precedence** (``best_applicable``): a vendor rule that applies wins over any category
  rule, which wins over any default rule, whatever their priorities. Within the winning
  scope the highest ``priority`` wins; among equal priorities the rule that started last
  (latest ``effective_from``), then, for determinism only, the smallest ``id``.
- **Commission** (``calculate``): the percentage part is ``amount * bps / 10,000`` rounded
  half up, plus the fixed part, capped at the amount: never negative, never more than the
  sale. Integers only.
- **Conflicts** (``conflicts``): two active rules of the same scope, key and currency with
  the same priority whose effective intervals overlap would leave the choice between them
  to chance: the second is refused (or cannot be activated).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import ValidationError
from domain.money import validate_currency
from domain.payments import BPS, commission

MAX_PRIORITY = 1_000_000
MAX_KEY_LENGTH = 200
MAX_FIXED_AMOUNT = 2**62  # the ledger's largest posting


class RuleScope(StrEnum):
    VENDOR = "vendor"
    CATEGORY = "category"
    DEFAULT = "default"


# Most specific first: the order in which scopes are tried.
PRECEDENCE = (RuleScope.VENDOR, RuleScope.CATEGORY, RuleScope.DEFAULT)


def _check_key(value: str | None, param: str) -> str:
    if value is None or not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a {param.split('_')[0]} rule names its {param}", param=param)
    if value != value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"{param} is 1 to {MAX_KEY_LENGTH} characters without surrounding spaces",
            param=param,
        )
    return value


def _aware(value: datetime, param: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{param} needs a time zone (e.g. ...Z)", param=param)
    return value


@dataclass(frozen=True)
class CommissionRule:
    """One rule; constructing it validates it (``ValidationError`` naming the field)."""

    scope: RuleScope
    vendor_id: str | None
    category: str | None
    priority: int
    effective_from: datetime
    effective_to: datetime | None
    percentage_bps: int
    fixed_amount: int
    currency: str
    active: bool = True
    id: Any = None  # the stored rule's id; None before it is stored

    def __post_init__(self) -> None:
        try:
            scope = RuleScope(self.scope)
        except ValueError as exc:
            raise ValidationError(
                f"scope is one of {', '.join(s.value for s in RuleScope)}", param="scope"
            ) from exc
        object.__setattr__(self, "scope", scope)
        if scope is RuleScope.VENDOR:
            _check_key(self.vendor_id, "vendor_id")
            if self.category is not None:
                raise ValidationError("a vendor rule has no category", param="category")
        elif scope is RuleScope.CATEGORY:
            _check_key(self.category, "category")
            if self.vendor_id is not None:
                raise ValidationError("a category rule has no vendor_id", param="vendor_id")
        else:
            for param in ("vendor_id", "category"):
                if getattr(self, param) is not None:
                    raise ValidationError(f"a default rule has no {param}", param=param)
        if _not_int(self.priority) or not 0 <= self.priority <= MAX_PRIORITY:
            raise ValidationError(
                f"priority is an integer from 0 to {MAX_PRIORITY}", param="priority"
            )
        if _not_int(self.percentage_bps) or not 0 <= self.percentage_bps <= BPS:
            raise ValidationError(
                f"percentage_bps is 0 to {BPS} basis points", param="percentage_bps"
            )
        if _not_int(self.fixed_amount) or not 0 <= self.fixed_amount <= MAX_FIXED_AMOUNT:
            raise ValidationError(
                "fixed_amount is a non-negative integer of minor units", param="fixed_amount"
            )
        object.__setattr__(self, "currency", validate_currency(self.currency))
        _aware(self.effective_from, "effective_from")
        if self.effective_to is not None:
            _aware(self.effective_to, "effective_to")
            if self.effective_to <= self.effective_from:
                raise ValidationError(
                    "effective_to (exclusive) comes after effective_from", param="effective_to"
                )

    @property
    def key(self) -> str | None:
        """What the rule is for within its scope: the vendor, the category, or nothing."""
        if self.scope is RuleScope.VENDOR:
            return self.vendor_id
        if self.scope is RuleScope.CATEGORY:
            return self.category
        return None


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def in_force(rule: CommissionRule, at: datetime) -> bool:
    """``at`` falls in ``[effective_from, effective_to)``."""
    _aware(at, "at")
    return rule.effective_from <= at and (rule.effective_to is None or at < rule.effective_to)


def applies(
    rule: CommissionRule,
    vendor_id: str | None,
    category: str | None,
    at: datetime,
    currency: str | None = None,
) -> bool:
    """The rule is active, in force at ``at``, for this vendor or category (a default rule
    is for everyone), and, when ``currency`` is given, in that currency."""
    if not rule.active or not in_force(rule, at):
        return False
    if currency is not None and rule.currency != currency.upper():
        return False
    if rule.scope is RuleScope.VENDOR:
        return vendor_id is not None and rule.vendor_id == vendor_id
    if rule.scope is RuleScope.CATEGORY:
        return category is not None and rule.category == category
    return True


def _rank(rule: CommissionRule) -> tuple[int, datetime]:
    return rule.priority, rule.effective_from


def best_applicable(
    rules: Iterable[CommissionRule],
    vendor_id: str | None,
    category: str | None,
    at: datetime,
    currency: str | None = None,
) -> CommissionRule | None:
    """The rule that sets the commission (see the module's precedence), or None."""
    candidates = [rule for rule in rules if applies(rule, vendor_id, category, at, currency)]
    for scope in PRECEDENCE:
        in_scope = [rule for rule in candidates if rule.scope is scope]
        if in_scope:
            # Highest priority, then latest start; the smallest id only breaks exact ties.
            in_scope.sort(key=lambda rule: str(rule.id))
            return max(in_scope, key=_rank)
    return None


def percentage_part(amount: int, bps: int) -> int:
    """``amount * bps / 10,000``, rounded half up."""
    return (amount * bps + BPS // 2) // BPS


def calculate(rule: CommissionRule, amount: int) -> int:
    """The commission on ``amount`` (minor units of the rule's currency): the percentage
    part rounded half up plus the fixed part, capped at the amount."""
    if _not_int(amount) or amount < 0:
        raise ValidationError("a commission is taken on a non-negative amount", param="amount")
    return commission(amount, rule.percentage_bps, rule.fixed_amount)


def overlap(
    a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None
) -> bool:
    """Two half-open intervals (None: no end) share an instant."""
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def conflicts(new: CommissionRule, existing: Sequence[CommissionRule]) -> list[CommissionRule]:
    """The rules of ``existing`` that ``new`` conflicts with: both active, same scope, key,
    currency and priority, overlapping in time. A rule never conflicts with itself (same
    ``id``); an inactive ``new`` conflicts with nothing."""
    if not new.active:
        return []
    return [
        rule
        for rule in existing
        if rule.active
        and (new.id is None or rule.id != new.id)
        and rule.scope is new.scope
        and rule.key == new.key
        and rule.currency == new.currency
        and rule.priority == new.priority
        and overlap(new.effective_from, new.effective_to, rule.effective_from, rule.effective_to)
    ]

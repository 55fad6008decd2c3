"""Liquidity, the pure part: how much money the platform holds on each rail, how much of it
is already promised, and how many days the rest lasts at the recent daily volume.

Per rail and currency (a *position*):

- ``available``: the provider's spendable balance (Stripe's available balance of the
  currency; the chain sender's token balance). ``pending`` is Stripe's incoming balance, shown
  but not counted: it cannot be spent yet.
- ``committed``: money promised and not sent yet: transfers ``pending``, ``queued`` (waiting
  for their settlement window) or ``processing``, and on Stripe the payee payouts
  ``pending`` or ``processing``.
- ``free`` = ``available`` - ``committed``; negative when the rail is *overcommitted*.
- ``daily_volume``: what left on the rail over the last ``window_days`` (transfers that
  succeeded, and on Stripe the payees' payouts), divided by ``window_days``, rounded up to a
  whole minor unit.
- ``runway_days`` = ``free`` / daily volume; ``None`` (no end in sight) without recent volume;
  0 when overcommitted, whatever the volume.
- ``low``: the runway is under the alert threshold (2 days by default,
  ``TOLLGATE_LIQUIDITY_RUNWAY_ALERT_DAYS``); an overcommitted rail is always low.

The chain rail holds one float, its ERC-20 stablecoin, which pays ``USDC`` and ``USD`` 1:1:
its position is one, in ``USDC`` minor units (6 decimals, the token's base units for USDC),
and USD amounts count 1:1 (12.34 USD is 12,340,000).

Alerts are events of the outbox, one per crossing: ``liquidity.runway_low`` when a position
becomes low (its last liquidity event is not a ``runway_low``), ``liquidity.runway_recovered``
when a low one is not low any more; nothing while it stays as it was.

All amounts are integers of minor units; ratios (runway) are exact fractions until shown.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from domain.errors import ValidationError
from domain.money import CURRENCY_EXPONENTS
from domain.rails import Rail

DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 90
DEFAULT_ALERT_DAYS = 2.0

# The currency the chain rail's one float is shown in (its token pays USDC and USD 1:1).
CHAIN_FLOAT_CURRENCY = "USDC"

# Outbox events of the liquidity check: entity type ``liquidity``, entity id ``rail:currency``.
ENTITY_TYPE = "liquidity"
RUNWAY_LOW = "liquidity.runway_low"
RUNWAY_RECOVERED = "liquidity.runway_recovered"
EVENT_TYPES = (RUNWAY_LOW, RUNWAY_RECOVERED)

# Statuses whose transfers still have to be paid, and the one of money that left.
COMMITTED_TRANSFER_STATUSES = ("pending", "queued", "processing")
SENT_TRANSFER_STATUS = "succeeded"
COMMITTED_PAYOUT_STATUSES = ("pending", "processing")

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Balance:
    """A provider's balance of one currency on a rail, in minor units."""

    rail: str
    currency: str
    available: int
    pending: int = 0


@dataclass(frozen=True, slots=True)
class Outflows:
    """What is promised on a rail in a currency (``committed``) and what left it over the
    volume window (``sent``), in minor units of that currency, as the database has it."""

    rail: str
    currency: str
    committed: int = 0
    sent: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    rail: str
    currency: str
    available: int
    pending: int
    committed: int
    free: int
    sent: int
    window_days: int
    daily_volume: int
    runway: Fraction | None
    low: bool

    @property
    def key(self) -> Key:
        return (self.rail, self.currency)

    @property
    def entity_id(self) -> str:
        return entity_id(self.rail, self.currency)

    @property
    def overcommitted(self) -> bool:
        return self.free < 0

    @property
    def runway_days(self) -> float | None:
        """The runway in days to two decimals, rounded down (never shown longer than it
        is); ``None`` without recent volume."""
        if self.runway is None:
            return None
        return float(Fraction(int(self.runway * 100), 100))


def entity_id(rail: str, currency: str) -> str:
    """The outbox entity id of a position: ``stripe:USD``, ``chain:USDC``."""
    return f"{rail}:{currency}"


def check_window_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValidationError(f"days is 1 to {MAX_WINDOW_DAYS}", param="days")
    return days


def check_alert_days(days: float) -> float:
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 365:
        raise ValidationError("the runway alert threshold is more than 0 and at most 365 days")
    return float(days)


def to_float_units(rail: str, currency: str, amount: int) -> tuple[str, int]:
    """Where an amount of ``currency`` on ``rail`` counts: the chain's one float (``USDC``
    minor units, USD 1:1), else its own currency."""
    code = currency.upper()
    if rail != Rail.CHAIN:
        return code, amount
    exponent = CURRENCY_EXPONENTS.get(code)
    target = CURRENCY_EXPONENTS[CHAIN_FLOAT_CURRENCY]
    if exponent is None or exponent > target:
        raise ValueError(f"{code} cannot be counted in the chain's {CHAIN_FLOAT_CURRENCY} float")
    return CHAIN_FLOAT_CURRENCY, amount * 10 ** (target - exponent)


def token_balance_to_minor(base_units: int, decimals: int) -> int:
    """A balance of the chain token (``decimals``) in ``USDC`` minor units, rounded down."""
    if base_units < 0 or decimals < 0:
        raise ValueError("a token balance and its decimals are not negative")
    target = CURRENCY_EXPONENTS[CHAIN_FLOAT_CURRENCY]
    if decimals >= target:
        return base_units // 10 ** (decimals - target)
    return base_units * 10 ** (target - decimals)


def runway(free: int, sent: int, window_days: int) -> Fraction | None:
    """Days ``free`` lasts at ``sent`` per ``window_days``: 0 when overcommitted, ``None``
    when nothing was sent (and nothing is overcommitted)."""
    if free < 0:
        return Fraction(0)
    if sent <= 0:
        return None
    return Fraction(free * window_days, sent)


def position(
    rail: str,
    currency: str,
    *,
    available: int,
    committed: int,
    sent: int,
    window_days: int,
    alert_days: float,
    pending: int = 0,
) -> Position:
    window_days = check_window_days(window_days)
    free = available - committed
    days = runway(free, sent, window_days)
    return Position(
        rail=rail,
        currency=currency,
        available=available,
        pending=pending,
        committed=committed,
        free=free,
        sent=sent,
        window_days=window_days,
        daily_volume=-(-sent // window_days),
        runway=days,
        low=days is not None and days < Fraction(check_alert_days(alert_days)),
    )


def assess(
    balances: Iterable[Balance],
    outflows: Iterable[Outflows],
    *,
    rails: Collection[str],
    window_days: int,
    alert_days: float,
) -> list[Position]:
    """The positions of ``rails`` (those whose balances were read; a provider that did not
    answer leaves its rail out), from the providers' balances and the database's outflows,
    by rail then currency. A currency with outflows but no balance has 0 available."""
    available: dict[Key, int] = {}
    pending: dict[Key, int] = {}
    committed: dict[Key, int] = {}
    sent: dict[Key, int] = {}
    for balance in balances:
        if balance.rail not in rails:
            continue
        code, amount = to_float_units(balance.rail, balance.currency, balance.available)
        incoming = to_float_units(balance.rail, balance.currency, balance.pending)[1]
        key = (balance.rail, code)
        available[key] = available.get(key, 0) + amount
        pending[key] = pending.get(key, 0) + incoming
    for flow in outflows:
        if flow.rail not in rails:
            continue
        code, promised = to_float_units(flow.rail, flow.currency, flow.committed)
        gone = to_float_units(flow.rail, flow.currency, flow.sent)[1]
        key = (flow.rail, code)
        committed[key] = committed.get(key, 0) + promised
        sent[key] = sent.get(key, 0) + gone
    keys = sorted({*available, *committed, *sent})
    return [
        position(
            rail,
            currency,
            available=available.get((rail, currency), 0),
            pending=pending.get((rail, currency), 0),
            committed=committed.get((rail, currency), 0),
            sent=sent.get((rail, currency), 0),
            window_days=window_days,
            alert_days=alert_days,
        )
        for rail, currency in keys
    ]


def alert_for(previous: str | None, low: bool) -> str | None:
    """The event a check records for a position, given the last liquidity event recorded for
    it (``None``: never): ``runway_low`` when it became low, ``runway_recovered`` when it was
    low and is not any more, nothing when it is as it was."""
    if low and previous != RUNWAY_LOW:
        return RUNWAY_LOW
    if not low and previous == RUNWAY_LOW:
        return RUNWAY_RECOVERED
    return None


def alerts(positions: Iterable[Position], last: Mapping[str, str]) -> list[tuple[Position, str]]:
    """Each position whose state crossed the threshold since its last event (``last``: event
    type by entity id), with the event to record."""
    found = []
    for item in positions:
        event = alert_for(last.get(item.entity_id), item.low)
        if event is not None:
            found.append((item, event))
    return found

"""Business-day calendars of the settlement rails: the US Federal Reserve's (USD), TARGET's
(EUR) and one that never closes (the chain rail runs every day). Holiday dates come from the
`holidays` package, computed once per year and cached."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

import holidays

from domain.errors import ValidationError


@cache
def _fed_closures(year: int) -> frozenset[date]:
    """The Fed's holiday closures: the federal holidays (the package's public US holidays,
    without Inauguration Day or one-off executive-order closures), a Sunday holiday observed
    on the Monday. Unlike the federal government, the Fed does not close on the Friday
    before a Saturday holiday, so observance is added here rather than taken from the
    package. (So Juneteenth 2021, a Saturday the government observed on the Friday, left
    the Fed open, as it was: the Fed first closed for it in 2022.)"""
    return frozenset(
        day + timedelta(days=1) if day.weekday() == 6 else day
        for day in holidays.country_holidays("US", years=year, observed=False)
    )


@cache
def _target_closures(year: int) -> frozenset[date]:
    # TARGET2 has no observance rule: a closing day on a weekend is simply lost.
    return frozenset(holidays.financial_holidays("ECB", years=year))


def _no_closures(year: int) -> frozenset[date]:
    return frozenset()


@dataclass(frozen=True)
class BusinessCalendar:
    """The days a rail settles on: not a holiday of ``closures`` (the closing days of a year)
    and, if ``closed_on_weekends``, not a Saturday or Sunday."""

    name: str
    closed_on_weekends: bool
    closures: Callable[[int], frozenset[date]]

    def is_business_day(self, day: date) -> bool:
        # A datetime is a date to Python but never equal to one: it would pass every
        # holiday, and its date depends on a time zone only the caller knows.
        if isinstance(day, datetime):
            raise ValidationError("A business day is a date, not a datetime", param="day")
        if self.closed_on_weekends and day.weekday() >= 5:
            return False
        return day not in self.closures(day.year)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day


_CALENDARS = {
    cal.name: cal
    for cal in (
        BusinessCalendar("us_fed", closed_on_weekends=True, closures=_fed_closures),
        BusinessCalendar("target", closed_on_weekends=True, closures=_target_closures),
        BusinessCalendar("none", closed_on_weekends=False, closures=_no_closures),
    )
}


def calendar(name: str) -> BusinessCalendar:
    if not isinstance(name, str) or name not in _CALENDARS:
        raise ValidationError(
            f"Unknown calendar {name!r}; expected one of {', '.join(sorted(_CALENDARS))}",
            param="calendar",
        )
    return _CALENDARS[name]

"""Settlement windows of a rail, configured as data: when a rail settles the transfers queued
for it (every hour, at fixed local times of day, or once at the end of the day), on the
business days of its holiday calendar, in its time zone.

The rules:

- A window falls on a business day of the calendar, judged by its local date in the rail's
  time zone (a 20:00 New York window on a Friday is a Friday window, though Saturday in UTC).
- A fixed local time that does not exist on a spring-forward day is shifted forward by the
  gap: 02:30 in New York on 2026-03-08 settles at 03:30 EDT. A local time that happens twice
  on a fall-back day settles once, at its first occurrence (fold=0): 01:30 in New York on
  2026-11-01 is 01:30 EDT. Both are what ``zoneinfo`` does with fold=0.
- Hourly windows are the instants whose local time is on the hour: a fall-back day has 25,
  a spring-forward day 23 (the hour that does not exist has no window).
- The cut-off is elapsed time before a window: a transfer received at or before
  ``window - cutoff_minutes`` settles in that window; one received later waits for the next.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.calendars import BusinessCalendar, calendar
from domain.errors import ValidationError


class Frequency(StrEnum):
    HOURLY = "hourly"
    FIXED_TIMES = "fixed_times"
    END_OF_DAY = "end_of_day"


# The rail names a workflow (`settlement-window-{rail}`), so it stays an identifier.
_RAIL = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# A queue that closes more than a day before its window is a misconfiguration, not a policy.
MAX_CUTOFF_MINUTES = 24 * 60
_FIELDS = ("rail", "frequency", "times", "cutoff_minutes", "time_zone", "calendar")


@dataclass(frozen=True)
class WindowConfig:
    """One rail's windows. ``times`` are local times of day, whole minutes, strictly
    increasing: several for ``fixed_times``, exactly one for ``end_of_day``, none for
    ``hourly``. ``time_zone`` is an IANA name; ``calendar`` names a business calendar."""

    rail: str
    frequency: Frequency
    times: tuple[time, ...]
    cutoff_minutes: int
    time_zone: str
    calendar: str

    def __post_init__(self) -> None:
        if not isinstance(self.rail, str) or not _RAIL.fullmatch(self.rail):
            raise ValidationError(
                "A rail is 1 to 64 lowercase letters, digits, '-' or '_'", param="rail"
            )
        try:
            # A stored config gives the frequency as its string.
            object.__setattr__(self, "frequency", Frequency(self.frequency))
        except ValueError:
            raise ValidationError(
                f"Unknown frequency {self.frequency!r}; expected one of {', '.join(Frequency)}",
                param="frequency",
            ) from None
        self._check_times()
        if (
            not isinstance(self.cutoff_minutes, int)
            or isinstance(self.cutoff_minutes, bool)
            or not 0 <= self.cutoff_minutes <= MAX_CUTOFF_MINUTES
        ):
            raise ValidationError(
                f"A cut-off is a whole number of minutes from 0 to {MAX_CUTOFF_MINUTES}",
                param="cutoff_minutes",
            )
        try:
            if not isinstance(self.time_zone, str):
                raise ValueError(self.time_zone)
            ZoneInfo(self.time_zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValidationError(
                f"Unknown time zone {self.time_zone!r}; expected an IANA name",
                param="time_zone",
            ) from None
        calendar(self.calendar)

    def _check_times(self) -> None:
        times = self.times
        if not isinstance(times, tuple) or not all(
            isinstance(t, time) and t.tzinfo is None and t.second == t.microsecond == 0
            for t in times
        ):
            raise ValidationError(
                "Window times are a tuple of local times of day in whole minutes, "
                "without a time zone",
                param="times",
            )
        if any(a >= b for a, b in pairwise(times)):
            raise ValidationError("Window times are strictly increasing", param="times")
        if self.frequency is Frequency.HOURLY and times:
            raise ValidationError("An hourly window has no times", param="times")
        if self.frequency is Frequency.FIXED_TIMES and not times:
            raise ValidationError("A fixed_times window has at least one time", param="times")
        if self.frequency is Frequency.END_OF_DAY and len(times) != 1:
            raise ValidationError("An end_of_day window has exactly one time", param="times")

    @property
    def cutoff_delta(self) -> timedelta:
        return timedelta(minutes=self.cutoff_minutes)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def business_calendar(self) -> BusinessCalendar:
        return calendar(self.calendar)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WindowConfig":
        """The config from its JSON form (see ``to_dict``); every key is required and an
        unknown key is refused, so a misspelt setting cannot pass unnoticed."""
        if not isinstance(data, Mapping):
            raise ValidationError("A window config is a JSON object")
        for key in data:
            if key not in _FIELDS:
                raise ValidationError(f"Unknown window setting {key!r}", param=key)
        for key in _FIELDS:
            if key not in data:
                raise ValidationError(f"Missing window setting {key!r}", param=key)
        raw_times = data["times"]
        if not isinstance(raw_times, list | tuple) or not all(
            isinstance(t, str) for t in raw_times
        ):
            raise ValidationError('Window times are a list of "HH:MM" strings', param="times")
        try:
            times = tuple(time.fromisoformat(t) for t in raw_times)
        except ValueError:
            raise ValidationError(
                'Window times are a list of "HH:MM" strings', param="times"
            ) from None
        return cls(
            rail=data["rail"],
            frequency=data["frequency"],
            times=times,
            cutoff_minutes=data["cutoff_minutes"],
            time_zone=data["time_zone"],
            calendar=data["calendar"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rail": self.rail,
            "frequency": self.frequency.value,
            "times": [t.strftime("%H:%M") for t in self.times],
            "cutoff_minutes": self.cutoff_minutes,
            "time_zone": self.time_zone,
            "calendar": self.calendar,
        }


def _require_aware(value: datetime, param: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(f"{param} is a datetime with a time zone", param=param)


def _day_windows(config: WindowConfig, zone: ZoneInfo, day: date) -> list[datetime]:
    """The windows of one local day, in order, as UTC instants."""
    if config.frequency is Frequency.HOURLY:
        instants = set()
        for hour in range(24):
            wall = datetime.combine(day, time(hour))
            # Both folds: a repeated hour is two hours; a wall time that converts back to
            # another one is in a spring-forward gap and has no window.
            for fold in (0, 1):
                instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if instant.astimezone(zone).replace(tzinfo=None) == wall:
                    instants.add(instant)
    else:
        # A set: two times shifted out of a gap onto the same instant make one window.
        instants = {datetime.combine(day, t, tzinfo=zone).astimezone(UTC) for t in config.times}
    return sorted(instants)


def _windows(config: WindowConfig, start: datetime) -> Iterator[datetime]:
    """Every window from the local day of ``start`` on, in order."""
    zone = config.zone
    business = config.business_calendar
    day = start.astimezone(zone).date()
    while True:
        if business.is_business_day(day):
            yield from _day_windows(config, zone, day)
        day += timedelta(days=1)


def next_window(config: WindowConfig, after: datetime) -> datetime:
    """The first window strictly after ``after``, in UTC."""
    _require_aware(after, "after")
    after = after.astimezone(UTC)
    return next(w for w in _windows(config, after) if w > after)


def window_for(config: WindowConfig, received_at: datetime) -> datetime:
    """The window, in UTC, that settles a transfer received at ``received_at``: the first
    whose cut-off (``window - cutoff_minutes``) is at or after it."""
    _require_aware(received_at, "received_at")
    # In UTC: adding to a zoned datetime would add wall-clock time, wrong across a DST change.
    closes_by = received_at.astimezone(UTC) + config.cutoff_delta
    return next(w for w in _windows(config, closes_by) if w >= closes_by)

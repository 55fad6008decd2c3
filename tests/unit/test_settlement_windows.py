"""Settlement window arithmetic: the next window of a rail and the window a transfer settles
in, across time zones, DST changes and holidays; the cut-off (at it is in, after it is out);
and the window config as JSON data, with its validation."""

import json
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import ValidationError
from domain.settlement_windows import (
    MAX_CUTOFF_MINUTES,
    Frequency,
    WindowConfig,
    next_window,
    window_for,
)

NEW_YORK = ZoneInfo("America/New_York")
US = timedelta(microseconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def config(
    zone: str,
    *times: str,
    calendar: str = "none",
    cutoff: int = 0,
    frequency: Frequency = Frequency.FIXED_TIMES,
) -> WindowConfig:
    return WindowConfig(
        rail="test",
        frequency=frequency,
        times=tuple(time.fromisoformat(t) for t in times),
        cutoff_minutes=cutoff,
        time_zone=zone,
        calendar=calendar,
    )


def hourly(zone: str, calendar: str = "none", cutoff: int = 0) -> WindowConfig:
    return config(zone, calendar=calendar, cutoff=cutoff, frequency=Frequency.HOURLY)


# A USD rail settling at the end of the New York day, its queue closing half an hour before.
ACH = config(
    "America/New_York", "17:00", calendar="us_fed", cutoff=30, frequency=Frequency.END_OF_DAY
)
# A EUR rail settling twice a day in Frankfurt, its queue closing an hour before.
SEPA = config("Europe/Berlin", "10:00", "16:00", calendar="target", cutoff=60)


def windows_between(cfg: WindowConfig, start: datetime, end: datetime) -> list[datetime]:
    """The windows in [start, end)."""
    found = []
    window = next_window(cfg, start - US)
    while window < end:
        found.append(window)
        window = next_window(cfg, window)
    return found


# next_window: DST change days (on the "none" calendar: clocks change on Sundays)


@pytest.mark.parametrize(
    ("cfg", "after", "expected"),
    [
        # New York springs forward on 2026-03-08 at 02:00 EST -> 03:00 EDT: 02:30 does not
        # exist and is shifted forward by the gap to 03:30 EDT (07:30Z, as 02:30 EST was)
        (config("America/New_York", "02:30"), utc(2026, 3, 7), utc(2026, 3, 7, 7, 30)),
        (config("America/New_York", "02:30"), utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30)),
        (config("America/New_York", "02:30"), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)),
        # New York falls back on 2026-11-01 at 02:00 EDT -> 01:00 EST: 02:30 happens once
        (config("America/New_York", "02:30"), utc(2026, 10, 31), utc(2026, 10, 31, 6, 30)),
        (config("America/New_York", "02:30"), utc(2026, 10, 31, 12), utc(2026, 11, 1, 7, 30)),
        # ... and 01:30 twice: the first (EDT) is the window, the second (EST) is not
        (config("America/New_York", "01:30"), utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30)),
        (config("America/New_York", "01:30"), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),
        # 17:00 New York across both changes
        (config("America/New_York", "17:00"), utc(2026, 3, 7, 12), utc(2026, 3, 7, 22)),
        (config("America/New_York", "17:00"), utc(2026, 3, 7, 22), utc(2026, 3, 8, 21)),
        (config("America/New_York", "17:00"), utc(2026, 10, 31, 12), utc(2026, 10, 31, 21)),
        (config("America/New_York", "17:00"), utc(2026, 10, 31, 21), utc(2026, 11, 1, 22)),
        # Berlin springs forward on 2026-03-29 at 02:00 CET -> 03:00 CEST
        (config("Europe/Berlin", "02:30"), utc(2026, 3, 28), utc(2026, 3, 28, 1, 30)),
        (config("Europe/Berlin", "02:30"), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30)),
        (config("Europe/Berlin", "02:30"), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)),
        # Berlin falls back on 2026-10-25 at 03:00 CEST -> 02:00 CET: 02:30 is ambiguous and
        # settles once, at 02:30 CEST
        (config("Europe/Berlin", "02:30"), utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        (config("Europe/Berlin", "02:30"), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        # 17:00 Berlin across both changes
        (config("Europe/Berlin", "17:00"), utc(2026, 3, 28, 12), utc(2026, 3, 28, 16)),
        (config("Europe/Berlin", "17:00"), utc(2026, 3, 28, 16), utc(2026, 3, 29, 15)),
        (config("Europe/Berlin", "17:00"), utc(2026, 10, 24, 12), utc(2026, 10, 24, 15)),
        (config("Europe/Berlin", "17:00"), utc(2026, 10, 24, 15), utc(2026, 10, 25, 16)),
        # two times in the gap: 03:00 EDT comes before 02:30 shifted to 03:30 EDT
        (config("America/New_York", "02:30", "03:00"), utc(2026, 3, 8, 6), utc(2026, 3, 8, 7)),
        (
            config("America/New_York", "02:30", "03:00"),
            utc(2026, 3, 8, 7),
            utc(2026, 3, 8, 7, 30),
        ),
        # 02:30 shifted onto 03:30: one window, not two
        (
            config("America/New_York", "02:30", "03:30"),
            utc(2026, 3, 8, 7, 30),
            utc(2026, 3, 9, 6, 30),
        ),
    ],
)
def test_next_window_across_dst_changes(
    cfg: WindowConfig, after: datetime, expected: datetime
) -> None:
    window = next_window(cfg, after)
    assert window == expected
    assert window.tzinfo is UTC


# next_window: business days, judged in local time


@pytest.mark.parametrize(
    ("cfg", "after", "expected"),
    [
        # New York: Friday 17:00 EST, then Monday 17:00 EDT across the spring-forward weekend
        (ACH, utc(2026, 3, 6, 12), utc(2026, 3, 6, 22)),
        (ACH, utc(2026, 3, 6, 22), utc(2026, 3, 9, 21)),
        (ACH, utc(2026, 10, 30, 21), utc(2026, 11, 2, 22)),
        # July 4 on a Saturday: Friday the 3rd settles; Christmas 2022 on a Sunday: not the 26th
        (ACH, utc(2026, 7, 2, 21), utc(2026, 7, 3, 21)),
        (ACH, utc(2022, 12, 23, 22), utc(2022, 12, 27, 22)),
        # strictly after: from a window instant, the next one
        (ACH, utc(2026, 3, 11, 21), utc(2026, 3, 12, 21)),
        # a late New York window on a Friday is a Friday window, though Saturday in UTC
        (
            config("America/New_York", "20:00", calendar="us_fed"),
            utc(2026, 3, 6, 12),
            utc(2026, 3, 7, 1),
        ),
        # Frankfurt: Good Friday and Easter Monday closed
        (SEPA, utc(2026, 4, 1, 8, 30), utc(2026, 4, 1, 14)),
        (SEPA, utc(2026, 4, 2, 14), utc(2026, 4, 7, 8)),
        (SEPA, utc(2026, 4, 30, 14), utc(2026, 5, 4, 8)),
        # Tokyo (+9, no DST): Monday 08:00 is Sunday 23:00 UTC
        (
            config("Asia/Tokyo", "08:00", "17:00", calendar="target"),
            utc(2026, 3, 1, 22),
            utc(2026, 3, 1, 23),
        ),
        (
            config("Asia/Tokyo", "08:00", "17:00", calendar="target"),
            utc(2026, 3, 6, 8),
            utc(2026, 3, 8, 23),
        ),
        (
            config("Asia/Tokyo", "08:00", "17:00", calendar="target"),
            utc(2026, 3, 2, 0),
            utc(2026, 3, 2, 8),
        ),
        # UTC
        (config("UTC", "00:00", "12:00", calendar="target"), utc(2026, 4, 1), utc(2026, 4, 1, 12)),
        (config("UTC", "00:00", "12:00", calendar="target"), utc(2026, 4, 2, 12), utc(2026, 4, 7)),
        (
            config("UTC", "00:00", "12:00", calendar="target"),
            utc(2026, 12, 31, 12),
            utc(2027, 1, 4),
        ),
        # the "after" may be in any zone
        (ACH, datetime(2026, 3, 6, 16, 59, tzinfo=NEW_YORK), utc(2026, 3, 6, 22)),
    ],
)
def test_next_window_on_business_days(
    cfg: WindowConfig, after: datetime, expected: datetime
) -> None:
    assert next_window(cfg, after) == expected


# hourly windows


@pytest.mark.parametrize(
    ("cfg", "after", "expected"),
    [
        (hourly("America/New_York", "us_fed"), utc(2026, 3, 11, 18, 20), utc(2026, 3, 11, 19)),
        (hourly("America/New_York", "us_fed"), utc(2026, 3, 11, 19), utc(2026, 3, 11, 20)),
        # Friday 23:30 EST -> Monday 00:00 EDT
        (hourly("America/New_York", "us_fed"), utc(2026, 3, 7, 4, 30), utc(2026, 3, 9, 4)),
        # Friday before Labor Day -> Tuesday 00:00 EDT
        (hourly("America/New_York", "us_fed"), utc(2026, 9, 5, 3, 30), utc(2026, 9, 8, 4)),
        # every hour for the chain, weekends and holidays too
        (hourly("UTC"), utc(2026, 7, 4, 10, 59, 59), utc(2026, 7, 4, 11)),
        # spring forward: 01:30 EST -> 03:00 EDT (02:00 does not exist)
        (hourly("America/New_York"), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7)),
        # fall back: 01:00 EDT, then 01:00 EST an hour later
        (hourly("America/New_York"), utc(2026, 11, 1, 5), utc(2026, 11, 1, 6)),
        # on the local hour where the offset is not whole hours: Kathmandu is +05:45
        (hourly("Asia/Kathmandu"), utc(2026, 1, 1), utc(2026, 1, 1, 0, 15)),
    ],
)
def test_hourly_windows(cfg: WindowConfig, after: datetime, expected: datetime) -> None:
    assert next_window(cfg, after) == expected


@pytest.mark.parametrize(
    ("zone", "day", "count"),
    [
        ("America/New_York", (2026, 3, 8), 23),
        ("America/New_York", (2026, 11, 1), 25),
        ("America/New_York", (2026, 11, 2), 24),
        ("Europe/Berlin", (2026, 3, 29), 23),
        ("Europe/Berlin", (2026, 10, 25), 25),
        ("Asia/Tokyo", (2026, 3, 29), 24),
    ],
)
def test_hourly_windows_of_a_dst_change_day(
    zone: str, day: tuple[int, int, int], count: int
) -> None:
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz)
    end = start.replace(tzinfo=None) + timedelta(days=1)
    windows = windows_between(hourly(zone), start, end.replace(tzinfo=tz))
    assert len(windows) == len(set(windows)) == count
    assert all(w.astimezone(tz).minute == 0 for w in windows)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(windows))


def test_an_ambiguous_time_settles_once_on_the_fall_back_day() -> None:
    cfg = config("America/New_York", "01:30", "02:30")
    assert windows_between(cfg, utc(2026, 11, 1, 4), utc(2026, 11, 2, 4)) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; 01:30 EST an hour later is not a window
        utc(2026, 11, 1, 7, 30),  # 02:30 EST
    ]


# window_for: the cut-off


@pytest.mark.parametrize(
    ("cfg", "received_at", "expected"),
    [
        # Wednesday 2026-03-11: window 17:00 EDT (21:00Z), cut-off 16:30 EDT (20:30Z)
        (ACH, utc(2026, 3, 11, 20, 30) - US, utc(2026, 3, 11, 21)),
        (ACH, utc(2026, 3, 11, 20, 30), utc(2026, 3, 11, 21)),  # at the cut-off: in
        (ACH, utc(2026, 3, 11, 20, 30) + US, utc(2026, 3, 12, 21)),  # after it: next window
        (ACH, utc(2026, 3, 11, 21), utc(2026, 3, 12, 21)),
        (ACH, datetime(2026, 3, 11, 16, 30, tzinfo=NEW_YORK), utc(2026, 3, 11, 21)),
        # Friday after the cut-off before a Monday holiday waits for Tuesday
        (ACH, utc(2026, 9, 4, 20, 31), utc(2026, 9, 8, 21)),  # Labor Day
        (ACH, utc(2026, 1, 16, 21, 31), utc(2026, 1, 20, 22)),  # MLK Day, EST
        (ACH, utc(2022, 12, 23, 21, 31), utc(2022, 12, 27, 22)),  # Christmas observed
        # before a Saturday holiday the Friday settles
        (ACH, utc(2026, 7, 2, 20, 31), utc(2026, 7, 3, 21)),
        # received on a weekend: Monday, after the clocks changed
        (ACH, utc(2026, 3, 7, 15), utc(2026, 3, 9, 21)),
        # Frankfurt: 10:00 CEST window, cut-off 09:00 CEST (07:00Z)
        (SEPA, utc(2026, 4, 1, 7), utc(2026, 4, 1, 8)),
        (SEPA, utc(2026, 4, 1, 7) + US, utc(2026, 4, 1, 14)),
        (SEPA, utc(2026, 4, 2, 13) + US, utc(2026, 4, 7, 8)),  # before Easter
        # hourly with a 10-minute cut-off
        (hourly("America/New_York", "us_fed", 10), utc(2026, 3, 11, 18, 50), utc(2026, 3, 11, 19)),
        (
            hourly("America/New_York", "us_fed", 10),
            utc(2026, 3, 11, 18, 50) + US,
            utc(2026, 3, 11, 20),
        ),
        (hourly("America/New_York", "us_fed", 10), utc(2026, 3, 7, 4, 50) + US, utc(2026, 3, 9, 4)),
        # no cut-off: a transfer received at the window's instant is in it
        (config("UTC", "12:00"), utc(2026, 5, 5, 12), utc(2026, 5, 5, 12)),
        (config("UTC", "12:00"), utc(2026, 5, 5, 12) + US, utc(2026, 5, 6, 12)),
        # the cut-off is elapsed time: 03:00 EDT on the spring-forward day is 07:00Z, so a
        # 2-hour cut-off is 05:00Z (00:00 EST), not 01:00 on the wall clock
        (config("America/New_York", "03:00", cutoff=120), utc(2026, 3, 8, 5), utc(2026, 3, 8, 7)),
        (
            config("America/New_York", "03:00", cutoff=120),
            utc(2026, 3, 8, 5) + US,
            utc(2026, 3, 9, 7),
        ),
        # and on the fall-back day: 00:30 EDT plus 2 hours is 01:30 EST, before 02:00 EST
        (
            config("America/New_York", "02:00", cutoff=120),
            datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK),
            utc(2026, 11, 1, 7),
        ),
    ],
)
def test_window_for_a_transfer(
    cfg: WindowConfig, received_at: datetime, expected: datetime
) -> None:
    assert window_for(cfg, received_at) == expected


@pytest.mark.parametrize("call", [next_window, window_for])
def test_a_naive_datetime_is_refused(call: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        call(ACH, datetime(2026, 3, 11, 12))
    assert raised.value.param in {"after", "received_at"}


# the config as data


BASE = {
    "rail": "ach",
    "frequency": "end_of_day",
    "times": ["17:00"],
    "cutoff_minutes": 30,
    "time_zone": "America/New_York",
    "calendar": "us_fed",
}


@pytest.mark.parametrize(
    "data",
    [
        BASE,
        {
            **BASE,
            "rail": "sepa",
            "frequency": "fixed_times",
            "times": ["10:00", "16:00"],
            "time_zone": "Europe/Berlin",
            "calendar": "target",
            "cutoff_minutes": 0,
        },
        {
            **BASE,
            "rail": "chain",
            "frequency": "hourly",
            "times": [],
            "time_zone": "UTC",
            "calendar": "none",
            "cutoff_minutes": MAX_CUTOFF_MINUTES,
        },
    ],
)
def test_the_config_round_trips_through_json(data: dict[str, Any]) -> None:
    cfg = WindowConfig.from_dict(json.loads(json.dumps(data)))
    assert cfg.to_dict() == data
    assert WindowConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.frequency is Frequency(data["frequency"])


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"rail": ""}, "rail"),
        ({"rail": "ACH"}, "rail"),
        ({"rail": "a b"}, "rail"),
        ({"rail": "x" * 65}, "rail"),
        ({"rail": 5}, "rail"),
        ({"frequency": "daily"}, "frequency"),
        ({"frequency": None}, "frequency"),
        ({"frequency": "hourly"}, "times"),  # with a time
        ({"frequency": "fixed_times", "times": []}, "times"),
        ({"times": []}, "times"),  # end of day without its time
        ({"times": ["10:00", "17:00"]}, "times"),  # end of day with two
        ({"frequency": "fixed_times", "times": ["17:00", "10:00"]}, "times"),
        ({"frequency": "fixed_times", "times": ["10:00", "10:00"]}, "times"),
        ({"times": ["25:00"]}, "times"),
        ({"times": ["17:00:30"]}, "times"),
        ({"times": ["17:00+01:00"]}, "times"),
        ({"times": "17:00"}, "times"),
        ({"times": [1700]}, "times"),
        ({"cutoff_minutes": -1}, "cutoff_minutes"),
        ({"cutoff_minutes": MAX_CUTOFF_MINUTES + 1}, "cutoff_minutes"),
        ({"cutoff_minutes": "30"}, "cutoff_minutes"),
        ({"cutoff_minutes": 1.5}, "cutoff_minutes"),
        ({"cutoff_minutes": True}, "cutoff_minutes"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "/etc/localtime"}, "time_zone"),
        ({"time_zone": "../zoneinfo/UTC"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"calendar": "nyse"}, "calendar"),
        ({"calendar": None}, "calendar"),
        ({"cutoff": 30}, "cutoff"),  # a misspelt key
    ],
)
def test_an_invalid_config_is_refused(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WindowConfig.from_dict({**BASE, **changes})
    assert raised.value.param == param


@pytest.mark.parametrize("key", sorted(BASE))
def test_every_setting_is_required(key: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WindowConfig.from_dict({k: v for k, v in BASE.items() if k != key})
    assert raised.value.param == key


def test_a_config_is_a_json_object() -> None:
    with pytest.raises(ValidationError):
        WindowConfig.from_dict(["ach"])  # type: ignore[arg-type]


@pytest.mark.parametrize("times", [[time(17)], (time(17, tzinfo=UTC),), (time(17, 0, 0, 1),)])
def test_times_are_a_tuple_of_naive_whole_minutes(times: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        WindowConfig(
            rail="ach",
            frequency=Frequency.END_OF_DAY,
            times=times,
            cutoff_minutes=0,
            time_zone="UTC",
            calendar="none",
        )
    assert raised.value.param == "times"


# properties, over zones with odd offsets and DST steps (Lord Howe moves by 30 minutes)

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "UTC",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
]


@st.composite
def configs(draw: st.DrawFn) -> WindowConfig:
    frequency = draw(st.sampled_from(Frequency))
    minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
    if frequency is Frequency.HOURLY:
        picked: list[int] = []
    elif frequency is Frequency.END_OF_DAY:
        picked = [draw(minutes)]
    else:
        picked = sorted(draw(st.sets(minutes, min_size=1, max_size=4)))
    return WindowConfig(
        rail="prop",
        frequency=frequency,
        times=tuple(time(m // 60, m % 60) for m in picked),
        cutoff_minutes=draw(st.integers(min_value=0, max_value=MAX_CUTOFF_MINUTES)),
        time_zone=draw(st.sampled_from(ZONES)),
        calendar=draw(st.sampled_from(["us_fed", "target", "none"])),
    )


instants = st.sampled_from(ZONES).flatmap(
    lambda zone: st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2040, 12, 31),
        timezones=st.just(ZoneInfo(zone)),
    )
)


def is_a_window(cfg: WindowConfig, instant: datetime) -> bool:
    """Independently of the search: the instant is on a business day and at a configured
    time of that local day (a time in a gap shifted forward, as zoneinfo's fold=0 does)."""
    local = instant.astimezone(cfg.zone)
    if not cfg.business_calendar.is_business_day(local.date()):
        return False
    if cfg.frequency is Frequency.HOURLY:
        return local.minute == local.second == local.microsecond == 0
    # Compared in UTC: an ambiguous or imaginary local time never equals another zone's.
    return any(
        datetime.combine(local.date(), t, tzinfo=cfg.zone).astimezone(UTC) == instant
        for t in cfg.times
    )


@given(configs(), instants)
def test_next_window_is_the_first_window_after(cfg: WindowConfig, after: datetime) -> None:
    # In UTC: a zoned datetime plus a timedelta moves the wall clock, not the instant.
    after = after.astimezone(UTC)
    window = next_window(cfg, after)
    assert window > after
    assert window.tzinfo is UTC
    assert is_a_window(cfg, window)
    # nothing skipped: from any instant in between, the same window is next
    assert next_window(cfg, window - US) == window
    assert next_window(cfg, after + (window - after) / 2) == window


@given(configs(), instants, st.integers(min_value=0, max_value=3 * 24 * 3600))
def test_window_for_keeps_the_cut_off(cfg: WindowConfig, received_at: datetime, later: int) -> None:
    received_at = received_at.astimezone(UTC)
    window = window_for(cfg, received_at)
    assert window - timedelta(minutes=cfg.cutoff_minutes) >= received_at
    assert is_a_window(cfg, window)
    # a later transfer never settles in an earlier window
    assert window_for(cfg, received_at + timedelta(seconds=later)) >= window

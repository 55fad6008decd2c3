"""The business-day calendars of the rails: the Federal Reserve's (a Sunday holiday observed
on the Monday, a Saturday holiday not moved to the Friday, Juneteenth from 2022), TARGET's
(Good Friday, Easter Monday, 1 May, 25 and 26 December, never moved) and the one that never
closes."""

from datetime import date, datetime, timedelta

import pytest

from domain.calendars import calendar
from domain.errors import ValidationError


def weekday_closures(name: str, year: int) -> list[date]:
    """The weekdays of ``year`` a calendar is closed on: its holidays as a rail sees them."""
    cal = calendar(name)
    day, end = date(year, 1, 1), date(year + 1, 1, 1)
    closed = []
    while day < end:
        if day.weekday() < 5 and not cal.is_business_day(day):
            closed.append(day)
        day += timedelta(days=1)
    return closed


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        # Independence Day 2026 is a Saturday: the Friday stays open, the Monday too
        (date(2026, 7, 3), True),
        (date(2026, 7, 4), False),
        (date(2026, 7, 6), True),
        # Christmas 2027 and New Year 2022 on a Saturday: the Friday before stays open
        (date(2027, 12, 24), True),
        (date(2027, 12, 27), True),
        (date(2021, 12, 31), True),
        (date(2022, 1, 3), True),
        # New Year 2023 and Christmas 2022 on a Sunday: the Monday is closed
        (date(2023, 1, 2), False),
        (date(2022, 12, 26), False),
        # Juneteenth: the Fed stayed open in 2021 (Saturday, observed Friday by the
        # government), and closes from 2022 (a Sunday, so the Monday)
        (date(2021, 6, 18), True),
        (date(2021, 6, 21), True),
        (date(2022, 6, 20), False),
        (date(2023, 6, 19), False),
        (date(2026, 6, 19), False),
        # Veterans Day: on a weekday, on a Saturday (Friday open), on a Sunday (Monday shut)
        (date(2026, 11, 11), False),
        (date(2023, 11, 10), True),
        (date(2029, 11, 12), False),
        # Thanksgiving closes; the Friday after is open
        (date(2026, 11, 26), False),
        (date(2026, 11, 27), True),
        # the Monday holidays
        (date(2026, 1, 19), False),
        (date(2026, 2, 16), False),
        (date(2026, 5, 25), False),
        (date(2026, 9, 7), False),
        (date(2026, 10, 12), False),
        # MLK Day only from 1986
        (date(1985, 1, 21), True),
        (date(1986, 1, 20), False),
        # Good Friday and Easter Monday are open at the Fed
        (date(2026, 4, 3), True),
        (date(2026, 4, 6), True),
        # Inauguration Day and executive-order closures of the government do not close it
        (date(2021, 1, 20), True),
        (date(2020, 12, 24), True),
        # weekends
        (date(2026, 3, 7), False),
        (date(2026, 3, 8), False),
        (date(2026, 3, 9), True),
    ],
)
def test_fed_business_days(day: date, open_: bool) -> None:
    assert calendar("us_fed").is_business_day(day) is open_


@pytest.mark.parametrize(
    ("year", "closed"),
    [
        # July 4 on a Saturday: no weekday closure for it
        (
            2026,
            [
                date(2026, 1, 1),
                date(2026, 1, 19),
                date(2026, 2, 16),
                date(2026, 5, 25),
                date(2026, 6, 19),
                date(2026, 9, 7),
                date(2026, 10, 12),
                date(2026, 11, 11),
                date(2026, 11, 26),
                date(2026, 12, 25),
            ],
        ),
        # Juneteenth and Christmas on a Saturday, Independence Day on a Sunday
        (
            2021,
            [
                date(2021, 1, 1),
                date(2021, 1, 18),
                date(2021, 2, 15),
                date(2021, 5, 31),
                date(2021, 7, 5),
                date(2021, 9, 6),
                date(2021, 10, 11),
                date(2021, 11, 11),
                date(2021, 11, 25),
            ],
        ),
        # New Year on a Saturday, Juneteenth and Christmas on a Sunday
        (
            2022,
            [
                date(2022, 1, 17),
                date(2022, 2, 21),
                date(2022, 5, 30),
                date(2022, 6, 20),
                date(2022, 7, 4),
                date(2022, 9, 5),
                date(2022, 10, 10),
                date(2022, 11, 11),
                date(2022, 11, 24),
                date(2022, 12, 26),
            ],
        ),
        # Inauguration Day falls on MLK Day: one closure, nothing else added
        (
            2025,
            [
                date(2025, 1, 1),
                date(2025, 1, 20),
                date(2025, 2, 17),
                date(2025, 5, 26),
                date(2025, 6, 19),
                date(2025, 7, 4),
                date(2025, 9, 1),
                date(2025, 10, 13),
                date(2025, 11, 11),
                date(2025, 11, 27),
                date(2025, 12, 25),
            ],
        ),
    ],
)
def test_fed_closures_of_a_whole_year(year: int, closed: list[date]) -> None:
    assert weekday_closures("us_fed", year) == closed


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 1, 1), False),
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
        (date(2026, 4, 7), True),
        (date(2026, 5, 1), False),
        (date(2026, 12, 24), True),
        (date(2026, 12, 25), False),
        (date(2025, 12, 26), False),  # a Friday
        # US holidays are not TARGET's
        (date(2026, 7, 3), True),
        (date(2026, 11, 26), True),
        (date(2026, 1, 19), True),
        # 1 May and 26 December on a weekend are not moved to a weekday
        (date(2027, 4, 30), True),
        (date(2027, 5, 3), True),
        (date(2027, 12, 27), True),
        (date(2027, 12, 24), True),
        # weekends
        (date(2026, 3, 28), False),
        (date(2026, 3, 29), False),
    ],
)
def test_target_business_days(day: date, open_: bool) -> None:
    assert calendar("target").is_business_day(day) is open_


def test_target_closures_of_a_whole_year() -> None:
    assert weekday_closures("target", 2026) == [
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 12, 25),
    ]


@pytest.mark.parametrize(
    "day", [date(2026, 1, 1), date(2026, 7, 4), date(2026, 12, 25), date(2026, 3, 8)]
)
def test_the_none_calendar_never_closes(day: date) -> None:
    assert calendar("none").is_business_day(day)


@pytest.mark.parametrize(
    ("name", "day", "expected"),
    [
        ("us_fed", date(2026, 7, 2), date(2026, 7, 3)),
        ("us_fed", date(2026, 7, 3), date(2026, 7, 6)),
        # strictly after: an open day's next business day is a later one
        ("us_fed", date(2026, 3, 10), date(2026, 3, 11)),
        # Friday before Labor Day, and before MLK Day
        ("us_fed", date(2026, 9, 4), date(2026, 9, 8)),
        ("us_fed", date(2026, 1, 16), date(2026, 1, 20)),
        # from a closed day
        ("us_fed", date(2022, 12, 24), date(2022, 12, 27)),
        ("target", date(2026, 4, 2), date(2026, 4, 7)),
        ("target", date(2026, 12, 24), date(2026, 12, 28)),
        ("target", date(2026, 12, 31), date(2027, 1, 4)),
        ("none", date(2026, 7, 3), date(2026, 7, 4)),
        ("none", date(2026, 12, 31), date(2027, 1, 1)),
    ],
)
def test_next_business_day(name: str, day: date, expected: date) -> None:
    assert calendar(name).next_business_day(day) == expected


@pytest.mark.parametrize("name", ["", "US_FED", "nyse", "ecb"])
def test_an_unknown_calendar_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        calendar(name)
    assert raised.value.param == "calendar"


def test_a_datetime_is_not_a_business_day_argument() -> None:
    # It would never equal a holiday's date, so every holiday would look open.
    with pytest.raises(ValidationError) as raised:
        calendar("us_fed").is_business_day(datetime(2026, 12, 25, 12))
    assert raised.value.param == "day"


def test_closures_are_computed_once_per_year() -> None:
    closures = calendar("us_fed").closures
    assert closures(2030) is closures(2030)

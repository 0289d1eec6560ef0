"""EPCIS query schedules (GS1 EPCIS 2.0 REST bindings, ``query-schedule.json``). Pure.

A schedule names the times a scheduled subscription fires, like cron: ``second``, ``minute``,
``hour``, ``dayOfMonth``, ``month`` and ``dayOfWeek`` (1 = Monday … 7 = Sunday), each a string
of comma-separated numbers and ``[low-high]`` ranges. An omitted field matches every value,
except ``second``, which is 0 when omitted (``{"hour": "1", "minute": "5"}`` is 01:05:00 each
day). Times are UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

FIELDS: dict[str, tuple[int, int]] = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (1, 7),
}
_ELEMENT = re.compile(r"(\d{1,2})|\[(\d{1,2})-(\d{1,2})\]")
_SEARCH_DAYS = 366 * 8  # long enough to meet any real date (29 February comes every 4 years)


class ScheduleError(ValueError):
    """A schedule that cannot fire as given; the message names the field."""


@dataclass(frozen=True, slots=True)
class Schedule:
    second: frozenset[int]
    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]

    def matches_day(self, day: date) -> bool:
        return (
            day.day in self.day_of_month
            and day.month in self.month
            and day.isoweekday() in self.day_of_week
        )


def _values(name: str, text: object) -> frozenset[int]:
    low, high = FIELDS[name]
    if text is None:
        return frozenset({0}) if name == "second" else frozenset(range(low, high + 1))
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(f"schedule.{name}: give numbers and [low-high] ranges as a string")
    found: set[int] = set()
    for element in text.split(","):
        match = _ELEMENT.fullmatch(element.strip())
        if match is None:
            raise ScheduleError(f"schedule.{name}: {element.strip()!r} is not a number or a range")
        if match.group(1) is not None:
            first = last = int(match.group(1))
        else:
            first, last = int(match.group(2)), int(match.group(3))
        if not low <= first <= last <= high:
            raise ScheduleError(f"schedule.{name}: {element.strip()!r} is outside {low}–{high}")
        found.update(range(first, last + 1))
    return frozenset(found)


def parse_schedule(fields: Mapping[str, object]) -> Schedule:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ScheduleError(f"schedule: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    schedule = Schedule(
        *(_values(name, fields.get(name)) for name in FIELDS)  # in Schedule's field order
    )
    if next_fire(schedule, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ScheduleError("schedule: no date has that day of the month in those months")
    return schedule


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first time the schedule names strictly after ``after`` (None: it never fires)."""
    start = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    day = start.date()
    for _ in range(_SEARCH_DAYS):
        if schedule.matches_day(day):
            floor = start.time() if day == start.date() else time(0)
            for hour in sorted(schedule.hour):
                for minute in sorted(schedule.minute):
                    for second in sorted(schedule.second):
                        candidate = time(hour, minute, second)
                        if candidate >= floor:
                            return datetime.combine(day, candidate, UTC)
        day += timedelta(days=1)
    return None

"""Pure presentation helpers for the auditor UI: text forms, chart geometry, cursors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from services.contract.events import (
    Correction,
    CustodyEvent,
    Dropoff,
    Handoff,
    Incident,
    Intake,
    Pickup,
    Processed,
    ReceiptAck,
    Sealed,
)
from services.web.cursors import BadCursor, decode_container_cursor

# --- text -------------------------------------------------------------------------------------


def instant(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(moment: datetime | None, now: datetime) -> str:
    """A short 'how long ago' text: '42 s', '7 min', '3 h 5 min', '12 d'."""
    if moment is None:
        return "—"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86_400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"
    return f"{seconds // 86_400} d"


def number(value: float | int) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _short_kg_text(value: float) -> str:
    """A weight in an event summary: at most six significant digits, no trailing zeros
    (``120 kg``, ``119.55 kg``), unlike the reports' ``weights.kg_text`` (``120.0 kg``)."""
    return f"{value:g} kg"


def event_summary(event: CustodyEvent) -> str:
    """The type-specific fields of an event in one line."""
    if isinstance(event, Dropoff):
        parts = [event.chemistry.value]
        if event.battery_count is not None:
            parts.append(f"{event.battery_count} batteries")
        if event.weight_kg is not None:
            parts.append(_short_kg_text(event.weight_kg))
        return ", ".join(parts)
    if isinstance(event, Sealed):
        parts = [_short_kg_text(event.weight_kg), " ".join(event.un_numbers)]
        if event.ddr:
            parts.append("DDR: " + ", ".join(item.value for item in event.ddr))
        if event.seal_id:
            parts.append(f"seal {event.seal_id}")
        return ", ".join(parts)
    if isinstance(event, Pickup):
        text = f"{event.from_party} → {event.to_party}, shipment {event.shipment_id}"
        if event.destination_party:
            text += f", for {event.destination_party}"
        return text
    if isinstance(event, Handoff):
        text = f"{event.from_party} → {event.to_party}"
        return text + (f", shipment {event.shipment_id}" if event.shipment_id else "")
    if isinstance(event, Intake):
        return f"{event.from_party} → {event.to_party}, {_short_kg_text(event.weight_kg)}"
    if isinstance(event, ReceiptAck):
        return (
            f"accepted {_short_kg_text(event.accepted_weight_kg)}, {event.condition.value}, "
            f"ref {event.plant_reference}"
        )
    if isinstance(event, Processed):
        text = event.method.value
        return text + (
            f", {_short_kg_text(event.input_weight_kg)}" if event.input_weight_kg else ""
        )
    if isinstance(event, Incident):
        return f"{event.kind.value}: {event.description}"
    if isinstance(event, Correction):
        return f"corrects {event.corrects_event_id} ({event.reason.value})"
    return ""


def query_string(**params: Any) -> str:
    """'?a=1&b=x' from the params that are not None or empty; '' when none are."""
    kept = {key: str(value) for key, value in params.items() if value not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


def decode_cursor(cursor: str | None) -> str | None:
    """The container id a UI page continues after: None (the first page) for a missing, empty
    or foreign cursor, where the API would answer 400."""
    try:
        return decode_container_cursor(cursor or None)
    except BadCursor:
        return None


REPORT_DAYS = 7


def report_window(
    start: str | None, end: str | None, now: datetime
) -> tuple[tuple[datetime, datetime], str | None]:
    """A report window of whole UTC days from ``YYYY-MM-DD`` texts, ``end`` inclusive.

    Defaults: the last ``REPORT_DAYS`` days up to and including today. Returns the half-open
    window ``[start 00:00, day after end 00:00)`` and an error text (the defaults are kept).
    """
    today = now.astimezone(UTC).date()
    default = (today - timedelta(days=REPORT_DAYS - 1), today)
    try:
        first = date.fromisoformat(start) if start else default[0]
        last = date.fromisoformat(end) if end else default[1]
    except ValueError:
        first, last = default
        error: str | None = "dates must be given as YYYY-MM-DD"
    else:
        error = None if first <= last else "the first day must not be after the last"
        if error:
            first, last = default

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    return (midnight(first), midnight(last + timedelta(days=1))), error


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path inside the UI, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


# --- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HBar:
    label: str
    value: float
    width: float
    """Bar width in percent of the widest (0-100)."""


def hbars(items: Iterable[tuple[str, float]]) -> list[HBar]:
    pairs = list(items)
    top = max((value for _, value in pairs), default=0)
    return [
        HBar(label, value, round(100.0 * value / top, 2) if top > 0 else 0.0)
        for label, value in pairs
    ]


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    title: str


@dataclass(frozen=True, slots=True)
class ColumnChart:
    width: float
    height: float
    base: float
    top_value: int
    columns: tuple[Column, ...]


def hourly_chart(
    hours: Sequence[tuple[datetime, int]], *, width: float = 480, height: float = 140
) -> ColumnChart:
    """A column per hour; every sixth column is labelled with its hour (UTC)."""
    base = height - 18
    top = max((count for _, count in hours), default=0)
    step = width / max(len(hours), 1)
    columns = []
    for index, (start, count) in enumerate(hours):
        tall = (base - 8) * count / top if top else 0.0
        end = start + timedelta(hours=1)
        columns.append(
            Column(
                x=round(index * step + 1, 2),
                y=round(base - tall, 2),
                width=round(max(step - 2, 1), 2),
                height=round(tall, 2),
                value=count,
                label=start.astimezone(UTC).strftime("%H:00") if index % 6 == 0 else "",
                title=f"{start.astimezone(UTC):%Y-%m-%d %H:%M}–{end.astimezone(UTC):%H:%M} UTC: "
                f"{count} events",
            )
        )
    return ColumnChart(width, height, base, top, tuple(columns))


# --- mass balance -----------------------------------------------------------------------------

MASS_BALANCE_FIGURES = (
    ("sealed_kg", "shipped_containers", "shipped (sealed weight)"),
    ("intake_kg", "taken_in_containers", "taken in at a plant"),
    ("accepted_kg", "accepted_containers", "accepted by the plant"),
    ("not_taken_in_kg", "not_taken_in_containers", "shipped, not taken in"),
)
"""(weight field, container count field, label) of ``GET /v1/reports/mass-balance`` figures."""


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    value: float
    width: float
    """Percent of the largest value in the whole chart (0-100)."""
    count: int | None = None


@dataclass(frozen=True, slots=True)
class MeasureGroup:
    label: str
    measures: tuple[Measure, ...]


@dataclass(frozen=True, slots=True)
class DiscrepancyRow:
    container_id: str
    kind: str
    occurred_at: str
    sealed_kg: float | None
    weight_kg: float | None
    difference_kg: float | None
    limit_kg: float | None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _scaled(raw: list[tuple[str, list[tuple[str, float, int | None]]]]) -> list[MeasureGroup]:
    biggest = max((abs(value) for _, values in raw for _, value, _ in values), default=0.0)
    return [
        MeasureGroup(
            label,
            tuple(
                Measure(name, value, round(100 * abs(value) / biggest, 2) if biggest else 0.0, n)
                for name, value, n in values
            ),
        )
        for label, values in raw
    ]


def _figures(item: Mapping[str, Any]) -> list[tuple[str, float, int | None]]:
    found = []
    for weight, count, label in MASS_BALANCE_FIGURES:
        kg = _number(item.get(weight))
        if kg is not None:
            containers = _number(item.get(count))
            found.append((label, kg, int(containers) if containers is not None else None))
    return found


def _label_of(item: Mapping[str, Any], index: int) -> str:
    for key in ("key", "label", "name", "party_id", "plant", "site", "id"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return f"#{index + 1}"


def _numbers(item: Mapping[str, Any]) -> list[tuple[str, float, int | None]]:
    return [
        (str(key), number, None)
        for key, value in item.items()
        if (number := _number(value)) is not None
    ]


def mass_balance_groups(document: Any) -> list[MeasureGroup]:
    """Chart groups from the mass-balance report: the totals, then one group per ``groups`` item.

    Each group holds the four weights (shipped, taken in, accepted, not taken in) with their
    container counts, all on one kg scale. A document of another shape is charted generically:
    top-level numbers, then every object in a list, by its numeric fields.
    """
    if isinstance(document, Mapping) and isinstance(document.get("totals"), Mapping):
        raw = [("all containers", _figures(document["totals"]))]
        for index, group in enumerate(document.get("groups") or []):
            if isinstance(group, Mapping):
                label = _label_of(group, index) if group.get("key") is not None else "unknown"
                raw.append((label, _figures(group)))
        return _scaled([(label, values) for label, values in raw if values])
    generic: list[tuple[str, list[tuple[str, float, int | None]]]] = []
    if isinstance(document, Mapping):
        if top := _numbers(document):
            generic.append(("total", top))
        for key, value in document.items():
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, Mapping) and (numbers := _numbers(item)):
                        generic.append((_label_of(item, index), numbers))
            elif isinstance(value, Mapping) and (numbers := _numbers(value)):
                generic.append((str(key), numbers))
    elif isinstance(document, list):
        for index, item in enumerate(document):
            if isinstance(item, Mapping) and (numbers := _numbers(item)):
                generic.append((_label_of(item, index), numbers))
    return _scaled(generic)


def mass_balance_discrepancies(document: Any) -> list[DiscrepancyRow]:
    """The totals' discrepancies, oldest first, as the report lists them."""
    if not isinstance(document, Mapping) or not isinstance(document.get("totals"), Mapping):
        return []
    rows = []
    for item in document["totals"].get("discrepancies") or []:
        if isinstance(item, Mapping):
            rows.append(
                DiscrepancyRow(
                    container_id=str(item.get("container_id", "")),
                    kind=str(item.get("kind", "")),
                    occurred_at=str(item.get("occurred_at") or ""),
                    sealed_kg=_number(item.get("sealed_kg")),
                    weight_kg=_number(item.get("weight_kg")),
                    difference_kg=_number(item.get("difference_kg")),
                    limit_kg=_number(item.get("limit_kg")),
                )
            )
    return rows

"""The custody timeline of one container as drawing coordinates. Pure: no I/O, no templates.

One lane per custodian, in custody order (the order in which each first took the container);
one marker per recorded event, placed in the lane of whoever held the container when it
happened (a transfer sits in the receiving lane); one bar per custody interval; one connector
between each pair of consecutive intervals (the handoff), drawn at the transfer's x.

Time runs left to right. Every gap between consecutive events gets a fixed minimum width plus
a share of the remaining width proportional to the time between them, so that events a few
seconds apart stay distinguishable while long waits still look long. Axis ticks sit at evenly
spaced x positions and are labelled with the time interpolated there.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.ledger.domain.custody import CustodyTrail

LABEL_WIDTH = 150.0
"""Room for the lane labels, left of the plot."""
PLOT_WIDTH = 640.0
"""The plot's width when the events fit in it with their minimum gaps."""
TAIL = 36.0
"""Room right of the last event, where an ongoing custody interval keeps going."""
MIN_GAP = 16.0
LANE_HEIGHT = 44.0
TOP = 12.0
AXIS_HEIGHT = 34.0
TICKS = 5
MAX_LABEL = 20


@dataclass(frozen=True, slots=True)
class Lane:
    index: int
    custodian: str
    label: str
    title: str
    y: float


@dataclass(frozen=True, slots=True)
class Bar:
    """A custody interval: its custodian's lane from its opening to its closing event."""

    lane: int
    custodian: str
    x1: float
    x2: float
    y: float
    ongoing: bool
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Marker:
    event_id: UUID
    seq: int
    event_type: str
    lane: int
    x: float
    y: float
    occurred_at: datetime
    corrected: bool
    effective: bool
    anomalies: tuple[str, ...]
    title: str


@dataclass(frozen=True, slots=True)
class Connector:
    """A handoff: from the lane of one interval to the lane of the next."""

    from_lane: int
    to_lane: int
    x: float
    y1: float
    y2: float
    event_id: UUID | None


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    width: float
    height: float
    plot_left: float
    plot_right: float
    axis_y: float
    lanes: tuple[Lane, ...]
    bars: tuple[Bar, ...]
    markers: tuple[Marker, ...]
    connectors: tuple[Connector, ...]
    ticks: tuple[Tick, ...]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _positions(times: list[datetime], left: float) -> tuple[list[float], float]:
    """x of each event (times in trail order) and the plot's right edge."""
    if not times:
        return [], left + PLOT_WIDTH
    gaps = [max((b - a).total_seconds(), 0.0) for a, b in itertools.pairwise(times)]
    spare = max(PLOT_WIDTH - MIN_GAP * len(gaps), 0.0)
    total = sum(gaps)
    xs = [left]
    for gap in gaps:
        share = spare * gap / total if total > 0 else spare / len(gaps)
        xs.append(xs[-1] + MIN_GAP + share)
    return xs, max(xs[-1], left + PLOT_WIDTH)


def _tick_label(moment: datetime, span: timedelta) -> str:
    if span < timedelta(days=2):
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d")


def _ticks(times: list[datetime], xs: list[float], left: float, right: float) -> list[Tick]:
    """Evenly spaced x positions, each labelled with the time interpolated between events."""
    if not times:
        return []
    span = times[-1] - times[0]
    if len(times) == 1 or span <= timedelta(0):
        return [Tick(xs[0], _tick_label(times[0], span))]
    ticks = []
    for number in range(TICKS):
        x = left + (right - left) * number / (TICKS - 1)
        x = min(max(x, xs[0]), xs[-1])
        index = 0
        while index < len(xs) - 2 and xs[index + 1] < x:
            index += 1
        x0, x1 = xs[index], xs[index + 1]
        fraction = (x - x0) / (x1 - x0) if x1 > x0 else 0.0
        moment = times[index] + (times[index + 1] - times[index]) * fraction
        ticks.append(Tick(round(x, 1), _tick_label(moment, span)))
    return ticks


def _describe(
    event_type: str, occurred_at: datetime, corrected: bool, anomalies: tuple[str, ...]
) -> str:
    parts = [f"{event_type} at {occurred_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"]
    if corrected:
        parts.append("corrected (voided)")
    if anomalies:
        parts.append("anomalies: " + ", ".join(anomalies))
    return "; ".join(parts)


def build_timeline(trail: CustodyTrail, *, labels: Mapping[str, str] | None = None) -> Timeline:
    """Lanes, bars, markers, connectors and ticks of ``trail``; ``labels`` names parties."""
    labels = labels or {}
    events = trail.events
    times = [_utc(item.entry.event.occurred_at) for item in events]
    left = LABEL_WIDTH
    xs, right = _positions(times, left)
    x_of = {item.entry.event_id: x for item, x in zip(events, xs, strict=True)}

    # Lanes: custodians in the order they first took the container; parties that only posted
    # events while nobody held the container (none in a normal life) come after them.
    order: list[str] = []
    for interval in trail.intervals:
        if interval.custodian not in order:
            order.append(interval.custodian)
    opened = {interval.opened_by: interval.custodian for interval in trail.intervals}
    placed: list[str] = []
    holder: str | None = None
    for item in events:
        holder = opened.get(item.entry.event_id, holder)
        lane_party = holder or (order[0] if order else item.entry.origin.party_id)
        if lane_party not in order:
            order.append(lane_party)
        placed.append(lane_party)
    lane_index = {party: index for index, party in enumerate(order)}

    def lane_y(index: int) -> float:
        return TOP + LANE_HEIGHT * index + LANE_HEIGHT / 2

    lanes = tuple(
        Lane(
            index,
            party,
            _short(labels.get(party, party)),
            f"{labels[party]} ({party})" if party in labels else party,
            lane_y(index),
        )
        for index, party in enumerate(order)
    )

    codes: dict[UUID, list[str]] = {}
    for anomaly in trail.anomalies:
        if anomaly.event_id is not None:
            codes.setdefault(anomaly.event_id, [])
            if anomaly.code.value not in codes[anomaly.event_id]:
                codes[anomaly.event_id].append(anomaly.code.value)

    markers = []
    for item, party, x, moment in zip(events, placed, xs, times, strict=True):
        found = tuple(codes.get(item.entry.event_id, ()))
        index = lane_index[party]
        markers.append(
            Marker(
                event_id=item.entry.event_id,
                seq=item.entry.seq,
                event_type=item.entry.event.type,
                lane=index,
                x=round(x, 1),
                y=lane_y(index),
                occurred_at=moment,
                corrected=item.corrected,
                effective=item.effective,
                anomalies=found,
                title=_describe(item.entry.event.type, moment, item.corrected, found),
            )
        )

    bars = []
    for interval in trail.intervals:
        index = lane_index[interval.custodian]
        x1 = x_of.get(interval.opened_by, left)
        ongoing = interval.closed_by is None
        x2 = right + TAIL if interval.closed_by is None else x_of.get(interval.closed_by, x1)
        bars.append(
            Bar(
                index,
                interval.custodian,
                round(x1, 1),
                round(x2, 1),
                lane_y(index),
                ongoing,
                _utc(interval.start),
                _utc(interval.end) if interval.end is not None else None,
            )
        )

    connectors = []
    for before, after in itertools.pairwise(trail.intervals):
        source, target = lane_index[before.custodian], lane_index[after.custodian]
        x = x_of.get(after.opened_by, x_of.get(before.closed_by or after.opened_by, left))
        connectors.append(
            Connector(source, target, round(x, 1), lane_y(source), lane_y(target), after.opened_by)
        )

    axis_y = TOP + LANE_HEIGHT * max(len(lanes), 1) + 4
    return Timeline(
        width=right + TAIL + 12,
        height=axis_y + AXIS_HEIGHT,
        plot_left=left,
        plot_right=right,
        axis_y=axis_y,
        lanes=lanes,
        bars=tuple(bars),
        markers=tuple(markers),
        connectors=tuple(connectors),
        ticks=tuple(_ticks(times, xs, left, right)),
    )

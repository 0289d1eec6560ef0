"""The 40 CFR 273 shipment log: one row per shipment (pure; docs/reports.md).

Large quantity universal-waste handlers keep a record of each shipment sent (to whom, quantity
of each type, date it left) and received (from whom, quantity of each type, date of receipt),
40 CFR 273.39; destination facilities of each shipment received, 273.62.

A shipment is a ``shipment_id`` (bill of lading) of a container's first effective pickup
(its report facts: report_facts.py). A shipment whose containers came from several sites or
went to several plants is split into one row per (shipper, receiving party) pair, so each row is
one handler-to-handler movement.

From the point of view of ``party``: a row is ``sent`` when the party is its shipper and its
ship date is in the window, ``received`` when the party is its receiving party and its receipt
date is in the window; parties that only carried it (haulers, hubs) get no rows. Without a
party every row whose ship date is in the window is listed and ``direction`` is empty.

Its CSV form is ``services/ledger/rendering/shipment_log_csv.py``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.contract.events import Chemistry
from services.ledger.domain.mass_balance import Window
from services.ledger.domain.report_facts import ContainerFacts

UNKNOWN_CHEMISTRY = "unknown"
CHEMISTRY_TYPES: tuple[str, ...] = (*(c.value for c in Chemistry), UNKNOWN_CHEMISTRY)


@dataclass(frozen=True)
class ShipmentRow:
    shipment_id: str
    shipper: str | None
    receiving_party: str | None
    haulers: tuple[str, ...]
    ship_date: datetime
    receipt_date: datetime | None
    containers: tuple[ContainerFacts, ...]

    @property
    def received(self) -> tuple[ContainerFacts, ...]:
        return tuple(c for c in self.containers if c.intake is not None)

    def by_type(self) -> dict[str, tuple[int, float]]:
        """Battery chemistry → (containers, sealed kg); types without containers left out."""
        found: dict[str, list[float]] = defaultdict(list)
        for facts in self.containers:
            found[facts.chemistry or UNKNOWN_CHEMISTRY].append(facts.sealed_kg or 0.0)
        return {kind: (len(kgs), math.fsum(kgs)) for kind, kgs in found.items()}


@dataclass(frozen=True)
class LogLine:
    row: ShipmentRow
    direction: str  # "sent", "received" or "" (no party)
    party: str | None

    @property
    def other_party(self) -> str | None:
        if self.direction == "sent":
            return self.row.receiving_party
        if self.direction == "received":
            return self.row.shipper
        return None


def shipment_rows(facts: Iterable[ContainerFacts]) -> list[ShipmentRow]:
    """Every shipment (per shipper and receiving party) of containers with a pickup."""
    grouped: dict[tuple[str, str | None, str | None], list[ContainerFacts]] = defaultdict(list)
    for item in facts:
        if item.pickup is not None:
            grouped[(item.pickup.shipment_id, item.site, item.plant)].append(item)
    rows = []
    for (shipment_id, shipper, receiver), members in grouped.items():
        members.sort(key=lambda f: f.container_id)
        pickups = [f.pickup for f in members if f.pickup is not None]
        intakes = [f.intake.at for f in members if f.intake is not None]
        rows.append(
            ShipmentRow(
                shipment_id=shipment_id,
                shipper=shipper,
                receiving_party=receiver,
                haulers=tuple(sorted({p.to_party for p in pickups})),
                ship_date=min(p.at for p in pickups),
                receipt_date=min(intakes) if intakes else None,
                containers=tuple(members),
            )
        )
    rows.sort(key=lambda r: (r.ship_date, r.shipment_id, r.shipper or "", r.receiving_party or ""))
    return rows


def shipment_log(
    facts: Iterable[ContainerFacts], window: Window, *, party: str | None = None
) -> list[LogLine]:
    """The log lines of ``party`` (or of every shipment) whose date is in ``window``.

    ``facts`` must hold every container of each shipment picked up or taken in in the window.
    """
    lines = []
    for row in shipment_rows(facts):
        if party is None:
            if row.ship_date in window:
                lines.append(LogLine(row, "", None))
        elif party == row.shipper:
            if row.ship_date in window:
                lines.append(LogLine(row, "sent", party))
        elif party == row.receiving_party and row.receipt_date in window:
            lines.append(LogLine(row, "received", party))
    lines.sort(key=lambda line: (_log_date(line), line.row.shipment_id))
    return lines


def _log_date(line: LogLine) -> datetime:
    if line.direction == "received" and line.row.receipt_date is not None:
        return line.row.receipt_date
    return line.row.ship_date

"""The 40 CFR 273 shipment log as CSV (docs/reports.md).

``SHIPMENT_LOG_COLUMNS`` is the contract: columns are only ever appended, never renamed,
removed or reordered. Instants are UTC (``…Z``); weights in kg, rounded to 3 decimals.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence

from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.shipment_log import CHEMISTRY_TYPES, LogLine
from services.ledger.domain.weights import rounded_kg
from services.ledger.rendering.csv_export import inert_text

SHIPMENT_LOG_COLUMNS: tuple[str, ...] = (
    "shipment_id",  # bill of lading of the pickups
    "direction",  # sent or received, from the point of view of `party`; empty without one
    "party",  # the party whose log this is; empty without one
    "other_party",  # sent: the receiving party; received: the shipper
    "shipper",  # the site the containers were dropped off at (their first custodian)
    "receiving_party",  # the intake's to_party; the pickup's destination_party before intake
    "haulers",  # to_party of the pickups, ';'-joined
    "ship_date",  # earliest pickup occurred_at (UTC)
    "receipt_date",  # earliest intake occurred_at at the receiving party (UTC); empty if none
    "containers",  # containers in the row
    "containers_received",  # of those, taken in by the receiving party
    "sealed_kg",  # sum of the sealed weights (as shipped)
    "intake_kg",  # sum of the intake weights (as weighed on receipt)
    *(f"{kind}_{unit}" for kind in CHEMISTRY_TYPES for unit in ("containers", "kg")),
    # per battery chemistry (of the first dropoff): container count and sealed weight
    "container_ids",  # ';'-joined
)


def log_row(line: LogLine) -> dict[str, str]:
    row = line.row
    received = row.received
    cells: dict[str, str] = {
        "shipment_id": inert_text(row.shipment_id),
        "direction": line.direction,
        "party": line.party or "",
        "other_party": line.other_party or "",
        "shipper": row.shipper or "",
        "receiving_party": row.receiving_party or "",
        "haulers": ";".join(row.haulers),
        "ship_date": format_instant(row.ship_date),
        "receipt_date": format_instant(row.receipt_date) if row.receipt_date else "",
        "containers": str(len(row.containers)),
        "containers_received": str(len(received)),
        "sealed_kg": str(rounded_kg(math.fsum(c.sealed_kg or 0.0 for c in row.containers))),
        "intake_kg": str(
            rounded_kg(math.fsum(c.intake.weight_kg for c in received if c.intake is not None))
        ),
        "container_ids": ";".join(c.container_id for c in row.containers),
    }
    by_type = row.by_type()
    for kind in CHEMISTRY_TYPES:
        count, kg = by_type.get(kind, (0, 0.0))
        cells[f"{kind}_containers"] = str(count)
        cells[f"{kind}_kg"] = str(rounded_kg(kg))
    return cells


def write_log_csv(lines: Iterable[LogLine], columns: Sequence[str] = SHIPMENT_LOG_COLUMNS) -> str:
    """RFC 4180 CSV text: a header row, then one row per log line; CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="raise")
    writer.writeheader()
    rows: Iterable[Mapping[str, str]] = (log_row(line) for line in lines)
    writer.writerows(rows)
    return buffer.getvalue()

"""CSV exports of custody trails (services/ledger/domain/csv_export.py)."""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import UUID

import pytest

from services.contract.events import Correction
from services.ledger.domain.custody import CustodyTrail
from services.ledger.rendering.csv_export import (
    TRAIL_COLUMNS,
    search_rows,
    trail_rows,
    write_csv,
)
from services.simulation.scenario import ScenarioConfig, build_scenario
from tests.unit.test_epcis import NOW, body, full_life, one_trail, scenario_trails

# The published column contract (docs/exports.md): append only, never rename or reorder.
PUBLISHED = (
    "container_id,seq,event_id,type,occurred_at,received_at,recorded_at,location_id,origin_kind,"
    "origin_party,origin_device,device_seq,from_party,to_party,destination_party,shipment_id,"
    "weight_kg,chemistry,battery_count,un_numbers,ddr,seal_id,condition,plant_reference,method,"
    "incident_kind,description,corrects_event_id,correction_reason,corrective_event_ids,note,"
    "effective,corrected,corrected_by,anomalies,prev_hash,entry_hash"
)


@pytest.fixture(scope="module")
def trails() -> list[CustodyTrail]:
    return scenario_trails(build_scenario(ScenarioConfig(run_id="csv1", now=NOW, containers=150)))


def parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_the_columns_are_the_published_ones() -> None:
    assert ",".join(TRAIL_COLUMNS) == PUBLISHED
    assert len(set(TRAIL_COLUMNS)) == len(TRAIL_COLUMNS)


def test_one_row_per_event_in_trail_order_with_every_column() -> None:
    trail, bodies = full_life()
    rows = trail_rows(trail)
    assert len(rows) == len(bodies) == len(trail.events)
    assert [row["event_id"] for row in rows] == [str(item.entry.event_id) for item in trail.events]
    assert [int(row["seq"]) for row in rows] == [item.entry.seq for item in trail.events]
    assert all(tuple(row) == TRAIL_COLUMNS for row in rows)
    header, parsed = parse(write_csv(rows, TRAIL_COLUMNS))
    assert header == list(TRAIL_COLUMNS)
    assert parsed == rows


def test_fields_per_type() -> None:
    trail, bodies = full_life()
    rows = {row["event_id"]: row for row in trail_rows(trail)}

    def of(name: str) -> dict[str, str]:
        return rows[bodies[name]["event_id"]]

    assert of("dropoff")["chemistry"] == "li_ion"
    assert of("dropoff")["battery_count"] == "40"
    assert of("dropoff")["weight_kg"] == "9.5"
    assert of("sealed")["un_numbers"] == "UN3480"
    assert of("sealed")["ddr"] == "damaged"
    assert of("sealed")["seal_id"] == "S 1/2"
    pickup = of("pickup")
    assert (pickup["from_party"], pickup["to_party"], pickup["destination_party"]) == (
        "site-01",
        "hauler-01",
        "plant-01",
    )
    assert pickup["shipment_id"] == "BOL 7/é"
    assert pickup["weight_kg"] == ""
    assert of("intake")["weight_kg"] == "121.0"
    receipt = of("receipt_ack")
    assert (receipt["condition"], receipt["plant_reference"], receipt["weight_kg"]) == (
        "ok",
        "GR-2026/0042",
        "119.0",
    )
    assert (receipt["origin_kind"], receipt["origin_party"], receipt["origin_device"]) == (
        "webhook",
        "plant-01",
        "",
    )
    assert of("processed")["method"] == "shredding"
    assert of("incident")["incident_kind"] == "leak"
    assert of("incident")["occurred_at"].endswith("Z")  # +14:30 on the device, UTC here
    correction = of("correction")
    assert correction["corrects_event_id"] == bodies["dropoff2"]["event_id"]
    assert correction["correction_reason"] == "incorrect_data"
    assert correction["corrective_event_ids"] == bodies["dropoff"]["event_id"]
    assert correction["effective"] == "true"
    assert all(len(row["entry_hash"]) == 64 for row in rows.values())
    assert all(row["origin_kind"] == "device" for key, row in rows.items() if row is not receipt)


def test_a_corrected_event_is_flagged_and_names_its_correction() -> None:
    trail, bodies = full_life()
    rows = {row["event_id"]: row for row in trail_rows(trail)}
    voided = rows[bodies["dropoff2"]["event_id"]]
    assert voided["corrected"] == "true"
    assert voided["effective"] == "false"
    assert voided["corrected_by"] == bodies["correction"]["event_id"]
    others = [row for key, row in rows.items() if key != bodies["dropoff2"]["event_id"]]
    assert all(row["corrected"] == "false" and row["corrected_by"] == "" for row in others)


def test_anomaly_codes_are_semicolon_joined() -> None:
    sealed = body("sealed", 1, weight_kg=100.0, un_numbers=["UN3480", "UN3090"])
    pickup = body(
        "pickup", 2, from_party="site-02", to_party="hauler-01", shipment_id="B-1", device_seq=3
    )
    trail = one_trail(
        [
            (body("dropoff", 0, chemistry="mixed"), "site-01", "d1"),
            (sealed, "site-01", "d1"),
            (pickup, "hauler-01", "d2"),
        ]
    )
    rows = trail_rows(trail)
    assert rows[1]["un_numbers"] == "UN3480;UN3090"
    assert rows[2]["anomalies"] == "custody_mismatch;late_arrival"
    assert rows[2]["device_seq"] == "3"
    assert rows[0]["device_seq"] == ""


@pytest.mark.parametrize(
    "note",
    [
        "plain",
        "a, b and c",
        'she said "sealed"',
        "line one\nline two",
        "windows\r\nline",
        "trailing comma,",
        " leading space",
        "ünïcödé, ok",
    ],
)
def test_notes_with_commas_quotes_and_newlines_round_trip(note: str) -> None:
    trail = one_trail([(body("dropoff", 0, chemistry="li_ion", note=note), "site-01", "d1")])
    text = write_csv(trail_rows(trail), TRAIL_COLUMNS)
    _, (row,) = parse(text)
    assert row["note"] == note
    assert text.count("\r\n") >= 2  # RFC 4180 line ends
    if "," in note or "\n" in note or '"' in note:
        assert f'"{note.replace(chr(34), chr(34) * 2)}"' in text


@pytest.mark.parametrize("text", ["=HYPERLINK(1)", "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_formula_like_free_text_is_made_inert(text: str) -> None:
    incident = body("incident", 1, kind="damaged", description=text, note=text)
    trail = one_trail(
        [(body("dropoff", 0, chemistry="li_ion"), "site-01", "d1"), (incident, "site-01", "d1")]
    )
    _, rows = parse(write_csv(trail_rows(trail), TRAIL_COLUMNS))
    assert rows[1]["note"] == rows[1]["description"] == f"'{text}"


def test_search_rows_are_the_trails_one_after_the_other(trails: list[CustodyTrail]) -> None:
    chosen = trails[:25]
    rows = search_rows(chosen)
    assert len(rows) == sum(len(trail.events) for trail in chosen)
    assert [row["container_id"] for row in rows] == [
        trail.container_id for trail in chosen for _ in trail.events
    ]
    _, parsed = parse(write_csv(rows, TRAIL_COLUMNS))
    assert parsed == rows


def test_a_simulated_network_flags_every_correction(trails: list[CustodyTrail]) -> None:
    rows = search_rows(trails)
    ids = [row["event_id"] for row in rows]
    assert len(ids) == len(set(ids))
    corrections = [row for row in rows if row["type"] == "correction"]
    corrected = {row["event_id"]: row for row in rows if row["corrected"] == "true"}
    assert corrections
    assert {row["corrects_event_id"] for row in corrections} == set(corrected)
    for row in corrections:
        assert corrected[row["corrects_event_id"]]["corrected_by"] == row["event_id"]
    corrected_total = sum(
        item.corrected
        for trail in trails
        for item in trail.events
        if not isinstance(item.entry.event, Correction)
    )
    assert len(corrected) == corrected_total


def test_write_csv_takes_any_columns_and_refuses_unknown_keys() -> None:
    rows: list[dict[str, Any]] = [{"a": 1, "b": "x,y"}]
    assert write_csv(rows, ("a", "b")) == 'a,b\r\n1,"x,y"\r\n'
    with pytest.raises(ValueError, match="c"):
        write_csv([{"a": 1, "c": 2}], ("a", "b"))
    assert write_csv([], ("a",)) == "a\r\n"


def test_empty_trail_gives_no_rows() -> None:
    assert trail_rows(one_trail([])) == []
    assert UUID(trail_rows(full_life()[0])[0]["event_id"])

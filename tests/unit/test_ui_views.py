"""Presentation helpers of the auditor UI (services/ledger/ui/views.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from services.contract import parse_event
from services.ledger.ui import views
from services.web.cursors import encode_container_cursor

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_next_targets_stay_inside_the_ui() -> None:
    assert views.safe_next("/ui/containers?state=open") == "/ui/containers?state=open"
    for hostile in (None, "", "https://evil.example/", "//evil.example/ui/", "/v1/anomalies"):
        assert views.safe_next(hostile) == "/ui/"
    assert views.safe_next("/ui/\\evil") == "/ui/"


def test_query_strings_drop_empty_values() -> None:
    assert views.query_string(state="open", custodian=None, q="") == "?state=open"
    assert views.query_string() == ""
    assert views.query_string(q="BX 1&2") == "?q=BX+1%262"


def test_cursors_round_trip_and_bad_ones_mean_the_first_page() -> None:
    assert views.decode_cursor(encode_container_cursor("BX-ui-00050")) == "BX-ui-00050"
    assert views.decode_cursor(None) is None
    assert views.decode_cursor("%%%") is None


def test_ages_and_instants() -> None:
    assert views.age(T0, T0 + timedelta(seconds=42)) == "42 s"
    assert views.age(T0, T0 + timedelta(minutes=7, seconds=5)) == "7 min"
    assert views.age(T0, T0 + timedelta(hours=3, minutes=5)) == "3 h 5 min"
    assert views.age(T0, T0 + timedelta(days=12, hours=1)) == "12 d"
    assert views.age(None, T0) == "—"
    assert views.instant(T0) == "2026-11-02 08:00:00 UTC"
    assert views.number(12345) == "12,345"
    assert views.number(2.5) == "2.50"


def test_event_summaries_name_the_type_specific_fields() -> None:
    common = {
        "event_id": str(uuid4()),
        "container_id": "BX-0001",
        "occurred_at": T0.isoformat(),
        "location_id": "loc",
    }
    intake = parse_event(
        {
            **common,
            "type": "intake",
            "from_party": "hauler-a",
            "to_party": "plant-a",
            "weight_kg": 100.5,
        }
    )
    assert views.event_summary(intake) == "hauler-a → plant-a, 100.5 kg"
    sealed = parse_event(
        {**common, "type": "sealed", "weight_kg": 120, "un_numbers": ["UN3480", "UN3090"]}
    )
    assert views.event_summary(sealed) == "120 kg, UN3480 UN3090"


def test_bars_scale_to_the_largest_value() -> None:
    bars = views.hbars([("open", 5), ("sealed", 20), ("acknowledged", 0)])
    assert [(bar.label, bar.width) for bar in bars] == [
        ("open", 25.0),
        ("sealed", 100.0),
        ("acknowledged", 0.0),
    ]
    assert views.hbars([("a", 0)])[0].width == 0.0


def test_hourly_chart_has_a_column_per_hour_and_labels_every_sixth() -> None:
    hours = [(T0 + timedelta(hours=i), i * 10) for i in range(24)]
    chart = views.hourly_chart(hours, width=480, height=140)
    assert len(chart.columns) == 24
    assert chart.top_value == 230
    tallest = chart.columns[-1]
    assert tallest.y + tallest.height == chart.base
    assert chart.columns[0].height == 0
    assert [c.label for c in chart.columns if c.label] == ["08:00", "14:00", "20:00", "02:00"]
    assert "230 events" in tallest.title


def test_mass_balance_chart_from_the_report() -> None:
    figures = {
        "containers": 3,
        "shipped_containers": 3,
        "sealed_kg": 300.0,
        "taken_in_containers": 2,
        "intake_kg": 190.5,
        "accepted_containers": 1,
        "accepted_kg": 95.0,
        "not_taken_in_containers": 1,
        "not_taken_in_kg": 100.0,
        "discrepancy_count": 1,
        "discrepancies": [
            {
                "container_id": "BX-1",
                "kind": "intake",
                "event_id": "e",
                "occurred_at": "2026-11-02T08:00:00.000000Z",
                "sealed_kg": 100.0,
                "weight_kg": 90.5,
                "difference_kg": -9.5,
                "limit_kg": 2.0,
            }
        ],
    }
    document = {
        "from": "2026-11-01T00:00:00.000000Z",
        "to": "2026-11-08T00:00:00.000000Z",
        "group_by": "plant",
        "tolerance": {"kg": 1.0, "pct": 2.0},
        "groups": [{"key": "plant-a", **figures}, {"key": None, **figures, "sealed_kg": 0}],
        "totals": figures,
    }
    groups = views.mass_balance_groups(document)
    assert [group.label for group in groups] == ["all containers", "plant-a", "unknown"]
    total = groups[0]
    assert [(m.name, m.value, m.width, m.count) for m in total.measures] == [
        ("shipped (sealed weight)", 300.0, 100.0, 3),
        ("taken in at a plant", 190.5, 63.5, 2),
        ("accepted by the plant", 95.0, 31.67, 1),
        ("shipped, not taken in", 100.0, 33.33, 1),
    ]
    rows = views.mass_balance_discrepancies(document)
    assert [(r.container_id, r.kind, r.difference_kg) for r in rows] == [("BX-1", "intake", -9.5)]
    assert views.mass_balance_discrepancies({"totals": {}}) == []


def test_mass_balance_chart_of_another_shape_is_generic() -> None:
    groups = views.mass_balance_groups({"sealed_kg": 10, "by_plant": [{"plant": "p", "kg": 5}]})
    assert [(g.label, [m.name for m in g.measures]) for g in groups] == [
        ("total", ["sealed_kg"]),
        ("p", ["kg"]),
    ]
    assert views.mass_balance_groups([{"name": "x", "kg": 2}])[0].label == "x"
    assert views.mass_balance_groups({"note": "nothing"}) == []


def test_report_windows_are_whole_utc_days() -> None:
    now = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    (start, end), error = views.report_window(None, None, now)
    assert error is None
    assert (start, end) == (
        datetime(2026, 11, 22, tzinfo=UTC),
        datetime(2026, 11, 29, tzinfo=UTC),
    )
    (start, end), error = views.report_window("2026-11-01", "2026-11-01", now)
    assert (start, end, error) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 2, tzinfo=UTC),
        None,
    )
    assert views.report_window("2026-11-05", "2026-11-01", now)[1] is not None
    assert views.report_window("yesterday", None, now)[1] == "dates must be given as YYYY-MM-DD"

"""JSON log lines: one object a line, with ingest's and the consumer's per-event fields."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from services.contract import parse_event
from services.ingest.domain.errors import Forbidden, Invalid
from services.ingest.service.event_log import log_accepted, log_refused
from services.logging_setup import JsonLineFormatter, log_formatter
from services.registry.principals import Device, PartyRole
from tests.support import events as ev

SITE = Device("site-a-dev", "site-a", PartyRole.SITE)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the ``custody.ingest`` logger writes, formatted as in production JSON mode."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("custody.ingest")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_extra_fields() -> None:
    record = logging.LogRecord(
        "custody.consumer", logging.WARNING, __file__, 1, "x %s", ("y",), None
    )
    record.event_id = "0b7c…"
    record.container_id = "BX-1"
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert list(document)[:4] == ["time", "level", "logger", "message"]
    assert document["level"] == "WARNING"
    assert document["logger"] == "custody.consumer"
    assert document["message"] == "x y"
    assert document["event_id"] == "0b7c…"
    assert document["container_id"] == "BX-1"
    assert str(document["time"]).endswith("Z")


def test_an_exception_stays_inside_its_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "custody", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonLineFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert "ValueError: boom" in json.loads(line)["exc_info"]


def test_text_format_is_the_human_one() -> None:
    assert not isinstance(log_formatter("text"), JsonLineFormatter)
    assert isinstance(log_formatter("json"), JsonLineFormatter)


def test_ingest_logs_accepted_events_with_their_ids(json_lines: io.StringIO) -> None:
    event = parse_event(ev.dropoff("BX-LOG-1"))
    log_accepted(SITE, [event])
    [line] = lines(json_lines)
    assert line["level"] == "DEBUG"
    assert line["event_id"] == str(event.event_id)
    assert line["container_id"] == "BX-LOG-1"
    assert line["device_id"] == "site-a-dev"


def test_ingest_logs_refused_events_with_the_ids_the_body_had(json_lines: io.StringIO) -> None:
    raw = ev.dropoff("BX-LOG-2\nforged line")
    log_refused(SITE, raw, Forbidden("not yours"))
    log_refused(SITE, ["not", "an", "object"], Invalid.at("x", "no"))
    first, second = lines(json_lines)
    assert first["level"] == "INFO"
    assert first["event_id"] == raw["event_id"]
    assert first["container_id"] == "BX-LOG-2\nforged line"
    assert first["status"] == 403
    assert first["errors"] is None
    assert second["event_id"] is None
    assert second["container_id"] is None
    assert second["status"] == 422
    assert second["errors"] == [{"path": "x", "message": "no"}]


def test_accepted_events_cost_nothing_when_debug_is_off(json_lines: io.StringIO) -> None:
    logging.getLogger("custody.ingest").setLevel(logging.INFO)
    log_accepted(SITE, [parse_event(ev.dropoff("BX-LOG-3"))])
    assert lines(json_lines) == []

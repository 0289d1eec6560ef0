"""JSON Schemas (draft 2020-12) generated from the contract models, checked in under ``schemas/``.

``custody schemas`` writes them; a unit test fails when the checked-in files drift from
``render_schemas()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.contract.envelope import Envelope
from services.contract.events import ScanEvent, event_json_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://battery-custody.example/schemas/"
MAX_BATCH_EVENTS = 500  # docs/architecture.md §5: POST /v1/events/batch takes 1 to 500 events


class BatchRequest(BaseModel):
    """The body of ``POST /v1/events/batch``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: Annotated[list[ScanEvent], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


def _document(file_name: str, title: str, description: str, schema: dict[str, Any]) -> str:
    document = {
        **schema,
        "$schema": DIALECT,
        "$id": BASE_ID + file_name,
        "title": title,
        "description": description,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_schemas() -> dict[str, str]:
    """File name → file text of every published schema; deterministic."""
    return {
        "scan-event.schema.json": _document(
            "scan-event.schema.json",
            "Battery Custody scan event",
            "One scan event, as posted to POST /v1/events; a union discriminated on `type`.",
            event_json_schema(),
        ),
        "envelope.schema.json": _document(
            "envelope.schema.json",
            "Battery Custody envelope",
            "One Kafka message on custody.events (key = container_id): the event plus what "
            "only ingest states about it.",
            Envelope.model_json_schema(),
        ),
        "batch-request.schema.json": _document(
            "batch-request.schema.json",
            "Battery Custody batch request",
            f"The body of POST /v1/events/batch: 1-{MAX_BATCH_EVENTS} scan events.",
            BatchRequest.model_json_schema(),
        ),
    }


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` (created if missing); returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written

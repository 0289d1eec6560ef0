"""GS1's EPCIS 2.0 JSON Schemas (draft-07, shipped in ``gs1/``), with the formats they rely on.

The schemas say ``"format": "uri"`` / ``"date-time"`` for every identifier and time. The
validator is ``jsonschema-rs`` (Rust; about 50 times faster than the pure-Python ``jsonschema``
on a capture document) with format assertion on and our own RFC 3986 / RFC 3339 checks below in
place of its built-in ones, so a document full of bad URIs fails and the checks stay as strict as
they were. Patterns are ECMA-262 regular expressions, as JSON Schema says: ``$`` is the end of the
string (``"ADD\\n"`` does not match ``^ADD$``) and ``\\d`` is an ASCII digit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

GS1_FILES = Path(__file__).resolve().parent / "gs1"
DOCUMENT_SCHEMA = GS1_FILES / "EPCIS-JSON-Schema.json"
QUERY_SCHEMA = GS1_FILES / "query-schema.json"
"""The EPCIS query language (a named query's ``query``); answers validate as documents."""

_URI_CHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})"
_URI = re.compile(rf"^[A-Za-z][A-Za-z0-9+.\-]*:{_URI_CHAR}*(?:#{_URI_CHAR}*)?$")
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$"
)


def is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986): a scheme, then only URI characters and %-escapes."""
    return not isinstance(value, str) or bool(_URI.match(value))


def is_date_time(value: object) -> bool:
    """An RFC 3339 date-time with a real date, a real time and an offset."""
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.match(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    offset_hours, offset_minutes = match.group(8), match.group(9)
    return offset_hours is None or (int(offset_hours) <= 23 and int(offset_minutes) <= 59)


FORMATS: dict[str, Callable[[object], bool]] = {"uri": is_uri, "date-time": is_date_time}
"""The only formats the GS1 schemas use; any other format stays an annotation."""


@cache
def validator(schema_file: Path = DOCUMENT_SCHEMA) -> jsonschema_rs.Draft7Validator:
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    jsonschema_rs.meta.validate(schema)
    return jsonschema_rs.Draft7Validator(
        schema, formats=FORMATS, validate_formats=True, offline=True
    )


def schema_errors(document: Any, schema_file: Path = DOCUMENT_SCHEMA) -> list[tuple[str, str]]:
    """(JSON path, message) for each way ``document`` breaks the schema; empty when valid."""
    found = []
    for error in validator(schema_file).iter_errors(document):
        path = "/".join(str(step) for step in error.instance_path)
        found.append((path, error.message))
    return sorted(found)

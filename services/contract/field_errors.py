"""Validation errors of the contract as ``{"path", "message"}`` pairs, and their one-line summary.

Paths are dotted and JSON-pointer-like (``events.3.occurred_at``; ``(root)`` for the document).
Shared by ingest's 422 refusals and the HTTP layer's request validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FieldError = dict[str, str]


def field_errors(problems: Iterable[Mapping[str, Any]], prefix: str = "") -> list[FieldError]:
    """Pydantic's ``error.errors()`` items, each path put under ``prefix``."""
    found: list[FieldError] = []
    for item in problems:
        steps = [str(step) for step in item["loc"]]
        path = ".".join([prefix, *steps] if prefix else steps)
        found.append({"path": path or "(root)", "message": item["msg"]})
    return found


def summary(errors: Sequence[Mapping[str, Any]]) -> str:
    """The first error, and how many more there are."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['path']}: {first['message']}{more}"

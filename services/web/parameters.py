"""Constraints on query parameters that every HTTP service shares."""

from __future__ import annotations

#: Query text: no control characters. No recorded id or location has one, and PostgreSQL
#: cannot even be asked about U+0000.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

#: The largest integer PostgreSQL's ``bigint`` holds (every seq, id and tree size is one). An
#: integer parameter, or a number decoded from a cursor, beyond it is refused before any query:
#: PostgreSQL would fail on it, and nothing recorded can be that large.
MAX_BIGINT = 2**63 - 1

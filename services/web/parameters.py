"""Constraints on query parameters that every HTTP service shares."""

from __future__ import annotations

#: Query text: no control characters. No recorded id or location has one, and PostgreSQL
#: cannot even be asked about U+0000.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

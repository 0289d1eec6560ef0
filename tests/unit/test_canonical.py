"""The fast canonical JSON encoder is byte-identical to the reference rfc8785 package."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.integrity.canonical import canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def outcome(encode: Any, value: Any) -> bytes | str:
    """The bytes, or the error type when the value is outside RFC 8785's domain."""
    try:
        encoded: bytes = encode(value)
    except Exception as error:
        return type(error).__name__
    return encoded


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_identical_to_the_reference_encoder(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(rfc8785.dumps, value)


def test_known_edges() -> None:
    for value in (
        [1e-7, 1e21, 1e16, 0.1, 120.0, -0.0, 1e-5, 123456789012345680.0, 2**53 - 1],
        {"é": 1, "a": {"\u2028": '\x00\x1f"\\'}, "B": [True, None]},
        {"weight_kg": 79.5, "un_numbers": ["UN3480"], "occurred_at": "2026-11-02T08:00:00+01:00"},
    ):
        assert canonical_json(value) == rfc8785.dumps(value)
    assert outcome(canonical_json, [2**53]) == "IntegerDomainError"

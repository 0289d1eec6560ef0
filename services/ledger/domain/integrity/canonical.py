"""RFC 8785 canonical JSON, fast for the values the ledger hashes.

The reference ``rfc8785`` package is pure Python and was the largest cost per appended entry.
For the common shape — ASCII keys, strings, integers below 2^53, floats whose shortest repr is
plain decimal — orjson with sorted keys writes the same bytes once integral floats are made
integers (ECMAScript prints 120.0 as 120). Anything else goes to ``rfc8785``. A property test
holds the two byte-identical.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

_SAFE_INTEGER = 2**53


class _NeedsReference(Exception):
    pass


def canonical_json(value: Any) -> bytes:
    try:
        return orjson.dumps(_prepared(value), option=orjson.OPT_SORT_KEYS)
    except (_NeedsReference, orjson.JSONEncodeError):
        encoded: bytes = rfc8785.dumps(value)
        return encoded


def _prepared(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        prepared = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii():  # UTF-16 order ≠ code-point order
                raise _NeedsReference
            # Strings, the bulk of every document, are taken as they are without a call.
            prepared[key] = item if type(item) is str else _prepared(item)
        return prepared
    if kind is int:
        if -_SAFE_INTEGER < value < _SAFE_INTEGER:
            return value
        raise _NeedsReference
    if kind is float:
        if value.is_integer():
            if -_SAFE_INTEGER < value < _SAFE_INTEGER:
                return int(value)
            raise _NeedsReference
        text = repr(value)
        if "e" in text or "n" in text:  # exponent form, inf, nan: ECMAScript differs
            raise _NeedsReference
        return value
    if kind is list or kind is tuple:
        return [_prepared(item) for item in value]
    raise _NeedsReference

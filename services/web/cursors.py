"""The page cursors of the ledger's listings: opaque to clients, the key of a page's last item.

A cursor is that key as unpadded base64url: a container id for the container pages
(``GET /v1/containers``, ``/v1/containers.csv``, ``/v1/anomalies`` and the UI's container and
anomaly pages), preceded on the API by ``~<tag>~``, the tag naming the token it was issued to,
so another token's cursor is refused (the UI's are plain); ``d:<id>`` for
``GET /v1/webhook-deliveries``; ``GET /v1/events`` pages by the ledger seq in plain decimal.
Decoding a cursor this service did not issue raises ``BadCursor``, which the API answers as a
400 problem; the UI shows the first page instead. A number in a cursor is ASCII digits no
larger than ``MAX_BIGINT``, as every issued one is, so a forged one never reaches PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import re

from services.contract.events import CONTAINER_ID_PATTERN
from services.web.parameters import MAX_BIGINT
from services.web.problems import Problem

_DELIVERY_PREFIX = "d:"
_DIGITS = re.compile(r"[0-9]{1,19}")


class BadCursor(Problem):
    """A cursor that is not one this service issued (400 "Bad cursor")."""

    def __init__(self) -> None:
        super().__init__(400, "Bad cursor", "the cursor is not one this API issued")


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _bigint(text: str) -> int:
    """``text`` as a seq or id PostgreSQL can compare with, or ``BadCursor``."""
    if _DIGITS.fullmatch(text) is None or int(text) > MAX_BIGINT:
        raise BadCursor()
    return int(text)


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as error:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadCursor() from error


def _owner_tag(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:12]


def encode_container_cursor(container_id: str, owner: str | None = None) -> str:
    """``owner``: the token id of a scoped reader, whose cursors no other token may use."""
    if owner is None:
        return _encode(container_id)
    return _encode(f"~{_owner_tag(owner)}~{container_id}")


def decode_container_cursor(cursor: str | None, owner: str | None = None) -> str | None:
    """The container id a page continues after; None (the first page) without a cursor.
    A cursor issued to another owner (or to none, when there is one now) is a BadCursor."""
    if cursor is None:
        return None
    text = _decode(cursor)
    expected = f"~{_owner_tag(owner)}~" if owner is not None else ""
    if not text.startswith(expected) or (not expected and text.startswith("~")):
        raise BadCursor()
    container_id = text[len(expected) :]
    if not re.match(CONTAINER_ID_PATTERN, container_id):
        raise BadCursor()
    return container_id


def encode_delivery_cursor(delivery_id: int) -> str:
    return _encode(f"{_DELIVERY_PREFIX}{delivery_id}")


def decode_delivery_cursor(cursor: str | None) -> int | None:
    """The delivery id a page continues after; None (the first page) without a cursor."""
    if cursor is None:
        return None
    text = _decode(cursor)
    if not text.startswith(_DELIVERY_PREFIX):
        raise BadCursor()
    return _bigint(text.removeprefix(_DELIVERY_PREFIX))


def decode_seq_cursor(cursor: str | None) -> int | None:
    """The ledger seq an event page continues after; None (the first page) without a cursor."""
    if cursor is None:
        return None
    return _bigint(cursor)

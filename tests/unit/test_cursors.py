"""Page cursors (services/web/cursors.py): the strings issued, and the ones refused."""

from __future__ import annotations

import pytest

from services.web.cursors import (
    BadCursor,
    decode_container_cursor,
    decode_delivery_cursor,
    encode_container_cursor,
    encode_delivery_cursor,
)


def test_container_cursors_are_the_id_as_unpadded_base64url() -> None:
    assert encode_container_cursor("BX-ui-00050") == "QlgtdWktMDAwNTA"
    assert encode_container_cursor("BX:a.b_c") == "Qlg6YS5iX2M"
    assert decode_container_cursor("QlgtdWktMDAwNTA") == "BX-ui-00050"
    assert decode_container_cursor(None) is None


def test_delivery_cursors_carry_their_prefix() -> None:
    assert encode_delivery_cursor(42) == "ZDo0Mg"
    assert decode_delivery_cursor("ZDo0Mg") == 42
    assert decode_delivery_cursor(None) is None


@pytest.mark.parametrize(
    "cursor",
    ["", "%%%", "é", "IGJhZCBpZA", encode_container_cursor("x")],
)
def test_foreign_container_cursors_are_bad(cursor: str) -> None:
    with pytest.raises(BadCursor) as raised:
        decode_container_cursor(cursor)
    assert (raised.value.status, raised.value.title) == (400, "Bad cursor")
    assert raised.value.detail == "the cursor is not one this API issued"


@pytest.mark.parametrize(
    "cursor", ["", "%%%", encode_container_cursor("BX-ui-00050"), encode_container_cursor("d:x")]
)
def test_foreign_delivery_cursors_are_bad(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_delivery_cursor(cursor)

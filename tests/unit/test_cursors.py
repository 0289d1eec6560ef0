"""Page cursors (services/web/cursors.py): the strings issued, and the ones refused."""

from __future__ import annotations

import pytest

from services.web.cursors import (
    BadCursor,
    decode_container_cursor,
    decode_delivery_cursor,
    decode_seq_cursor,
    encode_container_cursor,
    encode_delivery_cursor,
)
from services.web.parameters import MAX_BIGINT


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


def test_numbers_in_cursors_go_up_to_what_postgresql_holds() -> None:
    assert decode_delivery_cursor(encode_delivery_cursor(MAX_BIGINT)) == MAX_BIGINT
    assert decode_seq_cursor(str(MAX_BIGINT)) == MAX_BIGINT
    assert decode_seq_cursor("0") == 0
    assert decode_seq_cursor(None) is None


#: Not a number PostgreSQL's bigint holds, or not one written as issued (plain ASCII digits).
FOREIGN_NUMBERS = ["", "x", "-1", "+1", " 1", "1 ", "1_000", "1e3", "²", "٣", str(MAX_BIGINT + 1)]
FOREIGN_NUMBERS += ["9" * 20, "-" + "9" * 19]


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        encode_container_cursor("BX-ui-00050"),
        encode_container_cursor("d:x"),
        *(encode_container_cursor(f"d:{number}") for number in FOREIGN_NUMBERS),
    ],
)
def test_foreign_delivery_cursors_are_bad(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_delivery_cursor(cursor)


@pytest.mark.parametrize("cursor", FOREIGN_NUMBERS)
def test_foreign_seq_cursors_are_bad(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_seq_cursor(cursor)

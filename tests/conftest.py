from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import LiveStack, start_test_stack, stop_ephemeral_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[LiveStack]:
    test_stack, root = start_test_stack()
    try:
        yield test_stack
    finally:
        stop_ephemeral_stack(test_stack, root)

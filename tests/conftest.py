from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.stack import LiveStack, start_test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[LiveStack]:
    test_stack, root = start_test_stack()
    try:
        yield test_stack
    finally:
        test_stack.kafka.stop()
        test_stack.postgres.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)

"""Rate-limit buckets shared by ingest's worker processes (services/ingest/shared_buckets.py)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from services.ingest.adapters.shared_buckets import SharedBucketTable, device_key
from services.ingest.domain.rate_limit import DeviceRateLimiter, RateLimit

LIMIT = RateLimit(per_second=1.0, burst=10)


def test_two_openers_of_one_table_hold_a_device_to_one_bucket(tmp_path: Path) -> None:
    now = [100.0]
    first = DeviceRateLimiter(LIMIT, lambda: now[0], SharedBucketTable(tmp_path / "b"))
    second = DeviceRateLimiter(LIMIT, lambda: now[0], SharedBucketTable(tmp_path / "b"))
    assert first.admit("dev-1", 7) == 0.0
    assert second.admit("dev-1", 4) == 1.0  # 3 left, one more a second
    assert second.admit("dev-1", 3) == 0.0
    assert first.admit("dev-1", 1) == 1.0
    assert first.admit("dev-2", 10) == 0.0, "another device has its own bucket"
    now[0] += 2
    assert second.admit("dev-1", 2) == 0.0


def _take_the_burst(path: Path) -> None:
    limiter = DeviceRateLimiter(LIMIT, time.monotonic, SharedBucketTable(path))
    assert limiter.admit("dev-1", LIMIT.burst) == 0.0


def test_another_process_spending_the_burst_leaves_nothing_here(tmp_path: Path) -> None:
    path = tmp_path / "b"
    table = SharedBucketTable(path)
    child = multiprocessing.get_context("spawn").Process(target=_take_the_burst, args=(path,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    limiter = DeviceRateLimiter(LIMIT, time.monotonic, table)
    assert limiter.admit("dev-1", 1) > 0.5


def test_a_full_table_reuses_the_slot_untouched_longest(tmp_path: Path) -> None:
    now = [0.0]
    limiter = DeviceRateLimiter(LIMIT, lambda: now[0], SharedBucketTable(tmp_path / "b", slots=4))
    for number in range(4):
        now[0] = float(number)
        assert limiter.admit(f"dev-{number}", 10) == 0.0
    now[0] = 4.0
    assert limiter.admit("dev-new", 10) == 0.0  # takes the slot of dev-0 (used at t=0)
    assert limiter.admit("dev-0", 10) == 0.0, "an evicted device starts from a full bucket"
    assert limiter.admit("dev-3", 2) == 1.0, "devices used later keep their buckets"


def test_no_device_key_is_the_empty_slot_marker() -> None:
    assert all(device_key(f"dev-{n}") != bytes(16) for n in range(1000))

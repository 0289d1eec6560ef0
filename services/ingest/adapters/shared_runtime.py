"""The state ingest's worker processes (``worker_pool``) share.

What the workers must share lives under one runtime directory that the supervising process
makes before they start and names to them by environment variables (spawned workers inherit
them):

- the per-device rate-limit buckets (``shared_buckets``), so a device is held to its limit
  whichever worker its connections reach;
- Prometheus metrics in the client's multiprocess mode, so /metrics on any worker counts the
  requests of all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.ingest.adapters.shared_buckets import SharedBucketTable
from services.web.ops import METRICS_DIR_ENV

RUNTIME_DIR_ENV = "CUSTODY_INGEST_RUNTIME_DIR"


@contextmanager
def shared_runtime() -> Iterator[Path]:
    """Make the runtime directory and announce it for the workers; removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="custody-ingest-"))
    (root / "metrics").mkdir()
    os.environ[RUNTIME_DIR_ENV] = str(root)
    os.environ[METRICS_DIR_ENV] = str(root / "metrics")
    try:
        yield root
    finally:
        os.environ.pop(RUNTIME_DIR_ENV, None)
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(root, ignore_errors=True)


def shared_bucket_table() -> SharedBucketTable | None:
    """The workers' common bucket table, or None outside a served ingest (tests, one process)."""
    root = os.environ.get(RUNTIME_DIR_ENV)
    return SharedBucketTable(Path(root) / "rate-limit.buckets") if root else None
